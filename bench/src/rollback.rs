//! Rollback latency on the local stack: how long after a failing gate the alias is back on the old version.

use std::time::Duration;

use anyhow::{bail, ensure};
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

/// `runs` deployments whose alarm goes to ALARM once the first step takes traffic (one already in ALARM at start
/// is refused before any write): from the failing CheckGates task's end to the RollBack task's end, by the
/// execution history's timestamps.
pub async fn measure(stack: &LocalStack, runs: usize) -> anyhow::Result<Rollback> {
    let fx = Fixtures::new(stack);
    let sfn = aws_sdk_sfn::Client::new(&stack.config);
    eprintln!("rollback latency: {runs} rolled-back deployments");
    fx.alarm("bench-errors").await?;
    let set = |state, reason| fx.set_alarm("bench-errors", state, reason);
    let mut latencies = Vec::new();
    for i in 0..runs {
        let function = format!("rollback{i}");
        fx.function(&function, 2).await?;
        let input = json!({"functionName": function, "alias": "live", "targetVersion": "2",
            "strategy": {"steps": [{"percent": 10, "bakeSeconds": 3}]}, "alarms": ["bench-errors"]});
        set(aws_sdk_cloudwatch::types::StateValue::Ok, "quiet").await?;
        let arn = stack
            .start_execution(&format!("{function}-live-2"), &input)
            .await?;
        fx.wait_for_split(&function).await?;
        set(
            aws_sdk_cloudwatch::types::StateValue::Alarm,
            "the benchmark's failing gate",
        )
        .await?;
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
