//! Rollback latency on the local stack: how long after a failing gate the alias is back on the old version, and
//! how long a bad version keeps its traffic after its alarm goes to ALARM mid-bake (time to revert), with the
//! alarms watched through the bake next to a check at the bake's end.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use aws_sdk_cloudwatch::types::StateValue;
use aws_sdk_sfn::types::ExecutionStatus;
use safeshift_local::LocalStack;
use safeshift_local::executions::history;
use safeshift_local::fixtures::Fixtures;
use serde_json::json;

use crate::measure::{median, quantile};
use crate::transitions::finish;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rollback {
    pub runs: usize,
    pub median: Duration,
    pub p90: Duration,
    pub max: Duration,
}

/// `runs` deployments whose target version fails its metric analysis at the first step's check: from the failing
/// CheckGates task's end to the RollBack task's end, by the execution history's timestamps.
pub async fn measure(stack: &LocalStack, runs: usize) -> anyhow::Result<Rollback> {
    let fx = Fixtures::new(stack);
    let sfn = aws_sdk_sfn::Client::new(&stack.config);
    eprintln!("rollback latency: {runs} rolled-back deployments");
    let mut latencies = Vec::new();
    for i in 0..runs {
        let function = format!("rollback{i}");
        fx.function(&function, 2).await?;
        let input = json!({"functionName": function, "alias": "live", "targetVersion": "2",
            "strategy": {"steps": [{"percent": 10, "bakeSeconds": 3}]},
            "analysis": {"maxErrorRate": 0.05, "minInvocations": 100, "metricDelaySeconds": 0}});
        let arn = stack
            .start_execution(&format!("{function}-live-2"), &input)
            .await?;
        fx.wait_for_split(&function).await?;
        // The new version fails 15% of its calls; the stable one 0.5%.
        for (version, counts) in [("2", [200, 30, 0]), ("1", [1800, 9, 0])] {
            fx.put_version_metrics(&function, "live", version, counts)
                .await?;
        }
        ensure!(
            finish(&sfn, &arn).await? == ExecutionStatus::Failed,
            "{function} was not rolled back"
        );
        ensure!(
            fx.routing(&function).await? == ("1".to_owned(), vec![]),
            "{function}: the alias is not back on version 1"
        );
        let events = history(&sfn, &arn).await?;
        let exited = |state: &str| {
            events
                .iter()
                .filter(|e| {
                    e.state_exited_event_details()
                        .is_some_and(|d| d.name() == state)
                })
                .map(|e| e.timestamp().as_secs_f64())
                .next_back()
        };
        let (Some(gate), Some(restored)) = (exited("CheckGates"), exited("RollBack")) else {
            bail!("{function}: no CheckGates or RollBack in the history");
        };
        latencies.push(Duration::from_secs_f64((restored - gate).max(0.0)));
    }
    Ok(Rollback {
        runs,
        median: median(&latencies),
        p90: quantile(&latencies, 0.9),
        max: quantile(&latencies, 1.0),
    })
}

/// The step of the time-to-revert runs: 10% held for this long.
pub const REVERT_BAKE: Duration = Duration::from_secs(120);
/// When the alarm goes to ALARM, after the shift.
pub const ALARM_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq)]
pub struct Revert {
    /// From the alarm's state change to the alias routing only the stable version, per run.
    pub watched: Vec<Duration>,
}

/// `runs` deployments at 10% with a [`REVERT_BAKE`] bake whose alarm goes to ALARM [`ALARM_AFTER`] the shift:
/// from just before the SetAlarmState call to the first read of the alias that routes only version 1 (read every
/// 20 ms), by this process's clock.
pub async fn time_to_revert(stack: &LocalStack, runs: usize) -> anyhow::Result<Revert> {
    let fx = Fixtures::new(stack);
    let sfn = aws_sdk_sfn::Client::new(&stack.config);
    eprintln!("time to revert: {runs} deployments whose alarm fires mid-bake");
    let mut watched = Vec::new();
    for i in 0..runs {
        let function = format!("revert{i}");
        let alarm = format!("{function}-errors");
        fx.function(&function, 2).await?;
        fx.alarm(&alarm).await?;
        let input = json!({"functionName": function, "alias": "live", "targetVersion": "2",
            "strategy": {"steps": [{"percent": 10, "bakeSeconds": REVERT_BAKE.as_secs()}]},
            "alarms": [alarm]});
        let arn = stack
            .start_execution(&format!("{function}-live-2"), &input)
            .await?;
        fx.wait_for_split(&function).await?;
        tokio::time::sleep(ALARM_AFTER).await;
        let fired = Instant::now();
        fx.set_alarm(&alarm, StateValue::Alarm, "the benchmark's bad version")
            .await?;
        loop {
            if fx.routing(&function).await? == ("1".to_owned(), vec![]) {
                break;
            }
            ensure!(
                fired.elapsed() < REVERT_BAKE,
                "{function}: still split after the whole bake"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        watched.push(fired.elapsed());
        ensure!(
            finish(&sfn, &arn).await? == ExecutionStatus::Failed,
            "{function} did not end FAILED"
        );
    }
    Ok(Revert { watched })
}
