//! End to end on the local stack, through the Step Functions API: the real state machine definition, executed by
//! moto, calling the real engine handlers through the gateway. Every test ends by checking that the alias is on
//! exactly one version with no additional weights.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_sfn::types::ExecutionStatus;
use safeshift_local::LocalStack;
use safeshift_local::executions;
use safeshift_local::fixtures::{Fixtures, Routing};
use serde_json::{Value, json};

fn venv() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv")
}

struct Env {
    stack: LocalStack,
    fx: Fixtures,
    sfn: aws_sdk_sfn::Client,
}

async fn env() -> Env {
    let stack = LocalStack::start(0, &venv(), None)
        .await
        .expect("local stack");
    let fx = Fixtures::new(&stack);
    let sfn = aws_sdk_sfn::Client::new(&stack.config);
    Env { stack, fx, sfn }
}

fn stable(v: &str) -> Routing {
    (v.to_owned(), vec![])
}

impl Env {
    async fn start(&self, name: &str, input: &Value) -> String {
        self.stack.start_execution(name, input).await.unwrap()
    }

    /// Publishes one window's Lambda metrics for `orders` through `live`: [invocations, errors, throttles] of
    /// the target (version 2) and of the stable version (1).
    async fn traffic(&self, target: [u32; 3], stable: [u32; 3]) {
        for (version, counts) in [("2", target), ("1", stable)] {
            self.fx
                .put_version_metrics("orders", "live", version, counts)
                .await
                .unwrap();
        }
    }

    async fn status(
        &self,
        arn: &str,
    ) -> aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput {
        self.sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .unwrap()
    }

    /// Waits for the execution to end; returns its final description.
    async fn finish(
        &self,
        arn: &str,
    ) -> aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput {
        executions::wait_for_end(&self.sfn, arn, Duration::from_secs(90))
            .await
            .unwrap()
    }
}

fn deployment(strategy: Value) -> Value {
    json!({"functionName": "orders", "alias": "live", "targetVersion": "2", "strategy": strategy})
}

/// One gate's result in a gate report, by the gate's name.
fn gate<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["results"]
        .as_array()
        .and_then(|results| results.iter().find(|r| r["gate"] == name))
        .unwrap_or_else(|| panic!("no {name} result in {report:#}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_is_promoted_end_to_end() {
    let e = env().await;
    e.fx.function("orders", 2).await.unwrap();
    e.fx.alarm("orders-errors").await.unwrap();
    let mut input = deployment(json!({"canary": {"percent": 10, "intervalSeconds": 1}}));
    input["alarms"] = json!(["orders-errors"]);
    let arn = e.start("orders-live-2", &input).await;
    let done = e.finish(&arn).await;
    assert_eq!(
        *done.status(),
        ExecutionStatus::Succeeded,
        "{:?} {:?}",
        done.error(),
        done.cause()
    );
    assert_eq!(e.fx.routing("orders").await.unwrap(), stable("2"));
    let output: Value = serde_json::from_str(done.output().unwrap()).unwrap();
    assert_eq!(output["promoted"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alarm_mid_rollout_rolls_back_and_fails_the_execution() {
    let e = env().await;
    e.fx.function("orders", 2).await.unwrap();
    e.fx.alarm("orders-errors").await.unwrap();
    let mut input = deployment(
        json!({"steps": [{"percent": 10, "bakeSeconds": 4}, {"percent": 50, "bakeSeconds": 4}]}),
    );
    input["alarms"] = json!(["orders-errors"]);
    let arn = e.start("orders-live-2", &input).await;
    // Wait until traffic is split, then fire the alarm.
    wait_for_split(&e, "orders").await;
    e.fx.set_alarm(
        "orders-errors",
        aws_sdk_cloudwatch::types::StateValue::Alarm,
        "5 errors",
    )
    .await
    .unwrap();
    let done = e.finish(&arn).await;
    assert_eq!(*done.status(), ExecutionStatus::Failed);
    assert_eq!(done.error(), Some("AlarmFired"), "{:?}", done.cause());
    assert!(
        done.cause().unwrap().contains("orders-errors"),
        "{:?}",
        done.cause()
    );
    assert_eq!(e.fx.routing("orders").await.unwrap(), stable("1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn linear_custom_steps_and_all_at_once_are_promoted() {
    let e = env().await;
    e.fx.function("orders", 4).await.unwrap();
    let strategies = [
        (
            "2",
            json!({"linear": {"percent": 50, "intervalSeconds": 1}}),
        ),
        (
            "3",
            json!({"steps": [{"percent": 0.5, "bakeSeconds": 1}, {"percent": 25, "bakeSeconds": 1}]}),
        ),
        ("4", json!("AllAtOnce")),
    ];
    for (target, strategy) in strategies {
        let mut input = deployment(strategy.clone());
        input["targetVersion"] = json!(target);
        let arn = e.start(&format!("orders-live-{target}"), &input).await;
        let done = e.finish(&arn).await;
        assert_eq!(
            *done.status(),
            ExecutionStatus::Succeeded,
            "{strategy}: {:?} {:?}",
            done.error(),
            done.cause()
        );
        assert_eq!(
            e.fx.routing("orders").await.unwrap(),
            stable(target),
            "{strategy}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_pre_traffic_hook_shifts_nothing() {
    let e = env().await;
    e.fx.function("orders", 2).await.unwrap();
    e.fx.function("orders-smoke", 1).await.unwrap();
    e.fx.queue_hook_results(&[json!({"status": "Failed", "message": "checkout returned 500"})])
        .unwrap();
    let mut input = deployment(json!({"canary": {"percent": 10, "intervalSeconds": 1}}));
    input["hooks"] = json!({"preTraffic": "orders-smoke"});
    let done = e.finish(&e.start("orders-live-2", &input).await).await;
    assert_eq!(*done.status(), ExecutionStatus::Failed);
    assert_eq!(done.error(), Some("HookFailed"));
    assert!(
        done.cause().unwrap().contains("checkout returned 500"),
        "{:?}",
        done.cause()
    );
    assert_eq!(e.fx.routing("orders").await.unwrap(), stable("1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_post_traffic_hook_puts_the_stable_version_back() {
    let e = env().await;
    e.fx.function("orders", 2).await.unwrap();
    e.fx.function("orders-e2e", 1).await.unwrap();
    e.fx.queue_hook_results(&[json!({"status": "Failed", "message": "cart is empty"})])
        .unwrap();
    let mut input = deployment(json!({"canary": {"percent": 10, "intervalSeconds": 1}}));
    input["hooks"] = json!({"postTraffic": "orders-e2e"});
    let done = e.finish(&e.start("orders-live-2", &input).await).await;
    assert_eq!(*done.status(), ExecutionStatus::Failed);
    assert_eq!(done.error(), Some("HookFailed"));
    assert_eq!(
        e.fx.routing("orders").await.unwrap(),
        stable("1"),
        "promoted, then rolled back"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_target_version_fails_before_any_write() {
    let e = env().await;
    e.fx.function("orders", 1).await.unwrap();
    let mut input = deployment(json!("AllAtOnce"));
    input["targetVersion"] = json!("9");
    let done = e.finish(&e.start("orders-live-9", &input).await).await;
    assert_eq!(*done.status(), ExecutionStatus::Failed);
    assert_eq!(done.error(), Some("ResourceNotFound"));
    assert!(
        done.cause().unwrap().contains("orders:9"),
        "{:?}",
        done.cause()
    );
    assert_eq!(e.fx.routing("orders").await.unwrap(), stable("1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_input_fails_with_the_field_named() {
    let e = env().await;
    e.fx.function("orders", 2).await.unwrap();
    let mut input = deployment(json!("Canary10Percent5Minute"));
    input["alarm"] = json!(["typo"]);
    let done = e.finish(&e.start("orders-live-typo", &input).await).await;
    assert_eq!(*done.status(), ExecutionStatus::Failed);
    assert_eq!(done.error(), Some("InvalidInput"));
    assert!(
        done.cause().unwrap().contains("`alarm`"),
        "{:?}",
        done.cause()
    );
    assert_eq!(e.fx.routing("orders").await.unwrap(), stable("1"));
}

async fn wait_for_split(e: &Env, function: &str) {
    e.fx.wait_for_split(function).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn someone_elses_change_mid_rollout_stops_it_and_is_kept() {
    let e = env().await;
    e.fx.function("orders", 3).await.unwrap();
    let input = deployment(
        json!({"steps": [{"percent": 10, "bakeSeconds": 3}, {"percent": 50, "bakeSeconds": 3}]}),
    );
    let arn = e.start("orders-live-2", &input).await;
    wait_for_split(&e, "orders").await;
    e.fx.set_alias("orders", "3").await.unwrap();
    let done = e.finish(&arn).await;
    assert_eq!(*done.status(), ExecutionStatus::Failed);
    assert_eq!(done.error(), Some("AliasConflict"), "{:?}", done.cause());
    assert_eq!(
        e.fx.routing("orders").await.unwrap(),
        stable("3"),
        "their change stands"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_execution_is_reverted_by_the_reconciler() {
    let e = env().await;
    e.fx.function("orders", 2).await.unwrap();
    let input = deployment(json!({"canary": {"percent": 10, "intervalSeconds": 60}}));
    let arn = e.start("orders-live-2", &input).await;
    wait_for_split(&e, "orders").await;
    e.sfn
        .stop_execution()
        .execution_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(*e.status(&arn).await.status(), ExecutionStatus::Aborted);
    let deadline = Instant::now() + Duration::from_secs(15);
    while e.fx.routing("orders").await.unwrap() != stable("1") {
        assert!(
            Instant::now() < deadline,
            "the reconciler did not revert the alias"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_deployment_for_the_alias_fails_and_the_first_completes() {
    let e = env().await;
    e.fx.function("orders", 3).await.unwrap();
    let first = e
        .start(
            "orders-live-2",
            &deployment(json!({"canary": {"percent": 10, "intervalSeconds": 3}})),
        )
        .await;
    wait_for_split(&e, "orders").await;
    let mut second = deployment(json!("AllAtOnce"));
    second["targetVersion"] = json!("3");
    let second = e.finish(&e.start("orders-live-3", &second).await).await;
    assert_eq!(*second.status(), ExecutionStatus::Failed);
    assert_eq!(second.error(), Some("AliasConflict"));
    assert!(
        second.cause().unwrap().contains("deployment in progress"),
        "{:?}",
        second.cause()
    );
    let first = e.finish(&first).await;
    assert_eq!(
        *first.status(),
        ExecutionStatus::Succeeded,
        "{:?} {:?}",
        first.error(),
        first.cause()
    );
    assert_eq!(e.fx.routing("orders").await.unwrap(), stable("2"));
}

// ---- metric analysis, with no alarm configured ----------------------------------------------------------------

/// Two 5-second steps judged by the target's own metrics, read as of the check (no metric delay locally).
fn analysed(analysis: Value) -> Value {
    let mut input = deployment(
        json!({"steps": [{"percent": 10, "bakeSeconds": 5}, {"percent": 50, "bakeSeconds": 5}]}),
    );
    input["analysis"] = analysis;
    input
}

/// The states the execution entered, in order.
async fn states_entered(e: &Env, arn: &str) -> Vec<String> {
    executions::history(&e.sfn, arn)
        .await
        .unwrap()
        .iter()
        .filter_map(|ev| ev.state_entered_event_details())
        .map(|d| d.name().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worse_version_fails_its_analysis_and_is_rolled_back() {
    let e = env().await;
    e.fx.function("orders", 2).await.unwrap();
    let input =
        analysed(json!({"maxErrorRate": 0.05, "minInvocations": 100, "metricDelaySeconds": 0}));
    let arn = e.start("orders-live-2", &input).await;
    wait_for_split(&e, "orders").await;
    // At 10%, the new version fails 15% of its calls; the stable one 0.5%.
    e.traffic([200, 30, 0], [1800, 9, 0]).await;
    let done = e.finish(&arn).await;
    assert_eq!(*done.status(), ExecutionStatus::Failed);
    assert_eq!(done.error(), Some("AnalysisFailed"), "{:?}", done.cause());
    let cause: Value = serde_json::from_str(done.cause().unwrap()).unwrap();
    let analysis = gate(&cause, "analysis");
    assert_eq!(analysis["evidence"]["target"]["errors"], 30, "{cause:#}");
    assert_eq!(analysis["evidence"]["comparison"]["significant"], true);
    assert!(
        analysis["findings"][0]
            .as_str()
            .unwrap()
            .contains("above maxErrorRate 5.00%"),
        "{cause:#}"
    );
    assert_eq!(e.fx.routing("orders").await.unwrap(), stable("1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_version_passes_its_analysis_and_is_promoted() {
    let e = env().await;
    e.fx.function("orders", 2).await.unwrap();
    let input =
        analysed(json!({"maxErrorRate": 0.05, "minInvocations": 100, "metricDelaySeconds": 0}));
    let arn = e.start("orders-live-2", &input).await;
    wait_for_split(&e, "orders").await;
    e.traffic([200, 1, 0], [1800, 9, 0]).await;
    // The second step (50%) gets its own window: feed it once the weight has moved on.
    e.fx.wait_for_routing("orders", |(_, weights)| weights == &[("2".to_owned(), 0.5)])
        .await
        .unwrap();
    e.traffic([1000, 4, 0], [1000, 5, 0]).await;
    let done = e.finish(&arn).await;
    assert_eq!(
        *done.status(),
        ExecutionStatus::Succeeded,
        "{:?} {:?}",
        done.error(),
        done.cause()
    );
    assert_eq!(e.fx.routing("orders").await.unwrap(), stable("2"));
    // The output says why each step moved on.
    let output: Value = serde_json::from_str(done.output().unwrap()).unwrap();
    let passed = output["passedGates"].as_array().unwrap();
    assert_eq!(passed.len(), 2, "{output:#}");
    assert!(
        passed[0]["summary"]
            .as_str()
            .unwrap()
            .contains("error rate 0.50% (1/200) is within maxErrorRate 5.00%"),
        "{output:#}"
    );
    assert!(
        passed[1]["summary"].as_str().unwrap().contains("(4/1000)"),
        "{output:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_version_is_inconclusive_extended_and_rolled_back() {
    let e = env().await;
    e.fx.function("orders", 2).await.unwrap();
    let input = analysed(json!({
        "maxErrorRate": 0.05, "minInvocations": 10, "maxExtensions": 1, "metricDelaySeconds": 0
    }));
    let arn = e.start("orders-live-2", &input).await;
    wait_for_split(&e, "orders").await;
    // Only the stable version is called: nothing to judge the new one by.
    e.fx.put_version_metrics("orders", "live", "1", [500, 0, 0])
        .await
        .unwrap();
    let done = e.finish(&arn).await;
    assert_eq!(*done.status(), ExecutionStatus::Failed);
    assert_eq!(
        done.error(),
        Some("AnalysisInconclusive"),
        "{:?}",
        done.cause()
    );
    let cause: Value = serde_json::from_str(done.cause().unwrap()).unwrap();
    assert_eq!(cause["extensions"], 1, "{cause:#}");
    assert_eq!(
        gate(&cause, "analysis")["evidence"]["target"]["invocations"],
        0
    );
    let entered = states_entered(&e, &arn).await;
    assert_eq!(
        entered.iter().filter(|s| *s == "ExtendBake").count(),
        1,
        "{entered:?}"
    );
    assert_eq!(e.fx.routing("orders").await.unwrap(), stable("1"));
}

// ---- bounded state (issue 18) ----------------------------------------------------------------------------------

/// A deployment's worst legal alarm list: 100 alarms (its limit) with 255-byte names (CloudWatch's), in OK.
async fn maximal_alarms(e: &Env) -> Vec<String> {
    let names: Vec<String> = (0..100)
        .map(|i| format!("orders-errors-{i:03}-{}", "x".repeat(237)))
        .collect();
    assert!(names.iter().all(|n| n.len() == 255));
    // Concurrently: a hundred alarms one by one would make the test slow.
    let mut created = tokio::task::JoinSet::new();
    for name in names.clone() {
        let fx = e.fx.clone();
        created.spawn(async move { fx.alarm(&name).await });
    }
    while let Some(r) = created.join_next().await {
        r.unwrap().unwrap();
    }
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_long_alarms_in_alarm_roll_back_within_the_state_limit() {
    let e = env().await;
    e.fx.function("orders", 2).await.unwrap();
    let alarms = maximal_alarms(&e).await;
    let mut input = deployment(
        json!({"steps": [{"percent": 10, "bakeSeconds": 1}, {"percent": 50, "bakeSeconds": 1}]}),
    );
    input["alarms"] = json!(alarms);
    let arn = e.start("orders-live-2", &input).await;
    wait_for_split(&e, "orders").await;
    // Every alarm fires with CloudWatch's longest reason (1,023 characters), all at once.
    let mut fired = tokio::task::JoinSet::new();
    for name in alarms {
        let fx = e.fx.clone();
        fired.spawn(async move {
            let reason = format!("{name} crossed its threshold: {}", "d".repeat(1_023));
            fx.set_alarm(
                &name,
                aws_sdk_cloudwatch::types::StateValue::Alarm,
                &reason[..1_023],
            )
            .await
        });
    }
    while let Some(r) = fired.join_next().await {
        r.unwrap().unwrap();
    }
    let done = e.finish(&arn).await;
    assert_eq!(*done.status(), ExecutionStatus::Failed);
    assert_eq!(done.error(), Some("AlarmFired"), "{:?}", done.cause());

    // The rollback ran, and put the alias back.
    let entered = states_entered(&e, &arn).await;
    assert!(entered.iter().any(|s| s == "RollBack"), "{entered:?}");
    assert_eq!(e.fx.routing("orders").await.unwrap(), stable("1"));

    // No state came near Step Functions' 256 KB: unbounded, the report alone was ~160 KB, twice after GateFailed.
    for event in executions::history(&e.sfn, &arn).await.unwrap() {
        let (state, data) = if let Some(d) = event.state_entered_event_details() {
            (d.name(), d.input())
        } else if let Some(d) = event.state_exited_event_details() {
            (d.name(), d.output())
        } else {
            continue;
        };
        let size = data.map_or(0, str::len);
        assert!(
            size < 64 * 1024,
            "{state} ({:?}) carries {size} bytes",
            event.r#type()
        );
    }

    // The cause is the bounded report, and it says what it left out.
    let cause: Value = serde_json::from_str(done.cause().unwrap()).unwrap();
    let alarms = gate(&cause, "alarms");
    assert_eq!(
        alarms["evidence"]["truncated"],
        json!({"alarms": 90}),
        "{cause:#}"
    );
    let shown = alarms["evidence"]["alarms"].as_array().unwrap();
    assert_eq!(shown.len(), 10);
    // Those in ALARM come first; each reason is cut, and says by how much.
    assert_eq!(shown[0]["state"], "ALARM", "{cause:#}");
    for a in shown.iter().filter(|a| a["state"] == "ALARM") {
        let reason = a["reason"].as_str().unwrap();
        assert!(
            reason.len() <= 256 && reason.ends_with("bytes]"),
            "{reason}"
        );
    }
    let finding = alarms["findings"][0].as_str().unwrap();
    assert!(finding.starts_with("in ALARM: orders-errors-"), "{finding}");
    assert!(finding.len() <= 512, "{finding}");
}
