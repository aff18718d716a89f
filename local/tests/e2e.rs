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

/// Releases: several functions under one verdict.
#[path = "e2e/release.rs"]
mod release;

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
        match executions::wait_for_end(&self.sfn, arn, Duration::from_secs(90)).await {
            Ok(done) => done,
            Err(e) => {
                let history = executions::history(&self.sfn, arn)
                    .await
                    .unwrap_or_default();
                let entered = executions::states_entered(&history);
                panic!(
                    "{e:?}; last states entered: {:?}",
                    &entered[entered.len().saturating_sub(20)..]
                )
            }
        }
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
    fire(&e, "orders-errors").await;
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
    e.fx.function("SafeshiftHook_orders-smoke", 1)
        .await
        .unwrap();
    e.fx.queue_hook_results(&[json!({"status": "Failed", "message": "checkout returned 500"})])
        .unwrap();
    let mut input = deployment(json!({"canary": {"percent": 10, "intervalSeconds": 1}}));
    input["hooks"] = json!({"preTraffic": "SafeshiftHook_orders-smoke"});
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
    e.fx.function("SafeshiftHook_orders-e2e", 1).await.unwrap();
    e.fx.queue_hook_results(&[json!({"status": "Failed", "message": "cart is empty"})])
        .unwrap();
    let mut input = deployment(json!({"canary": {"percent": 10, "intervalSeconds": 1}}));
    input["hooks"] = json!({"postTraffic": "SafeshiftHook_orders-e2e"});
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
    // The fixture waits until Step Functions reports the stop: a busy moto shows it RUNNING a moment longer.
    e.fx.stop_execution(&arn).await.unwrap();
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
    executions::states_entered(&executions::history(&e.sfn, arn).await.unwrap())
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

// ---- a deployment changes only what it owns ----------------------------------------------------------------

impl Env {
    fn lambda(&self) -> aws_sdk_lambda::Client {
        aws_sdk_lambda::Client::new(&self.stack.config)
    }

    /// Invokes one of the engine's functions directly, as anyone with lambda:InvokeFunction could: the function's
    /// error type and message, or its answer.
    async fn invoke(&self, function: &str, event: &Value) -> Result<Value, (String, String)> {
        let out = self
            .lambda()
            .invoke()
            .function_name(function)
            .payload(aws_sdk_lambda::primitives::Blob::new(event.to_string()))
            .send()
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
        match out.function_error() {
            Some(_) => Err((
                body["errorType"].as_str().unwrap_or_default().to_owned(),
                body["errorMessage"].as_str().unwrap_or_default().to_owned(),
            )),
            None => Ok(body),
        }
    }

    /// What EventBridge delivers (again) when an execution of this state machine ends.
    fn status_change(&self, arn: &str, status: &str) -> Value {
        json!({
            "version": "0", "source": "aws.states", "detail-type": "Step Functions Execution Status Change",
            "detail": {"executionArn": arn, "stateMachineArn": self.stack.state_machine_arn, "status": status}
        })
    }

    /// A person sets the alias to `version` plus `weights`.
    async fn route(&self, version: &str, weights: &[(&str, f64)]) {
        self.lambda()
            .update_alias()
            .function_name("orders")
            .name("live")
            .function_version(version)
            .routing_config(
                aws_sdk_lambda::types::AliasRoutingConfiguration::builder()
                    .set_additional_version_weights(Some(
                        weights.iter().map(|(v, w)| (v.to_string(), *w)).collect(),
                    ))
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
}

fn canary(seconds: u64) -> Value {
    deployment(json!({"canary": {"percent": 10, "intervalSeconds": seconds}}))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redelivered_failed_event_after_a_newer_deployment_leaves_the_alias_alone() {
    let e = env().await;
    e.fx.function("orders", 2).await.unwrap();
    e.fx.alarm("orders-errors").await.unwrap();
    let mut input = canary(3);
    input["alarms"] = json!(["orders-errors"]);
    // GIVEN deployment A failed on its alarm and was rolled back
    let a = e.start("orders-live-2", &input).await;
    wait_for_split(&e, "orders").await;
    fire(&e, "orders-errors").await;
    assert_eq!(e.finish(&a).await.error(), Some("AlarmFired"));
    // AND a second attempt at the same target succeeded
    e.fx.set_alarm(
        "orders-errors",
        aws_sdk_cloudwatch::types::StateValue::Ok,
        "fine",
    )
    .await
    .unwrap();
    let b = e.start("orders-live-2-attempt-2", &input).await;
    assert_eq!(*e.finish(&b).await.status(), ExecutionStatus::Succeeded);
    assert_eq!(e.fx.routing("orders").await.unwrap(), stable("2"));
    // WHEN EventBridge delivers A's FAILED event again (it retries for up to an hour)
    let report = e
        .invoke("safeshift-rollback", &e.status_change(&a, "FAILED"))
        .await
        .unwrap();
    // THEN the reconciler leaves B's promotion alone
    assert_eq!(report["outcome"], "ignored", "{report:#}");
    assert_eq!(e.fx.routing("orders").await.unwrap(), stable("2"));
    // AND an event claiming B failed is checked against Step Functions, which says it succeeded
    let report = e
        .invoke("safeshift-rollback", &e.status_change(&b, "FAILED"))
        .await
        .unwrap();
    assert_eq!(report["outcome"], "ignored", "{report:#}");
    assert!(
        report["reason"].as_str().unwrap().contains("SUCCEEDED"),
        "{report:#}"
    );
    assert_eq!(e.fx.routing("orders").await.unwrap(), stable("2"));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_starts_at_once_one_proceeds_and_the_alias_is_its_own() {
    let e = env().await;
    e.fx.function("orders", 3).await.unwrap();
    let (two, mut three) = (canary(2), canary(2));
    three["targetVersion"] = json!("3");
    // WHEN two deployments of one alias start at the same moment
    let (a, b) = tokio::join!(
        e.start("orders-live-2", &two),
        e.start("orders-live-3", &three)
    );
    let (done_a, done_b) = tokio::join!(e.finish(&a), e.finish(&b));
    // THEN exactly one proceeds; the other is refused in Prepare, before any write, without a rollback
    let outcomes = [
        (
            done_a.status().clone(),
            "2",
            &a,
            done_a.error(),
            done_a.cause(),
        ),
        (
            done_b.status().clone(),
            "3",
            &b,
            done_b.error(),
            done_b.cause(),
        ),
    ];
    let winners: Vec<_> = outcomes
        .iter()
        .filter(|o| o.0 == ExecutionStatus::Succeeded)
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    let loser = outcomes
        .iter()
        .find(|o| o.0 != ExecutionStatus::Succeeded)
        .unwrap();
    assert_eq!(loser.3, Some("AliasConflict"), "{outcomes:?}");
    assert!(
        loser
            .4
            .unwrap_or_default()
            .contains("deployment in progress"),
        "{outcomes:?}"
    );
    assert!(
        !states_entered(&e, loser.2)
            .await
            .contains(&"RollBack".to_owned())
    );
    // AND the alias is the winner's, whole
    assert_eq!(e.fx.routing("orders").await.unwrap(), stable(winners[0].1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_persons_change_toward_the_same_target_is_left_as_they_made_it() {
    let e = env().await;
    e.fx.function("orders", 2).await.unwrap();
    let input = deployment(
        json!({"steps": [{"percent": 10, "bakeSeconds": 3}, {"percent": 50, "bakeSeconds": 3}]}),
    );
    let arn = e.start("orders-live-2", &input).await;
    wait_for_split(&e, "orders").await;
    // WHEN a person moves the canary to 30% by hand, mid-bake
    e.route("1", &[("2", 0.3)]).await;
    let done = e.finish(&arn).await;
    // THEN the deployment stops, and its rollback leaves the person's routing as they made it
    assert_eq!(done.error(), Some("AliasConflict"), "{:?}", done.cause());
    assert!(
        states_entered(&e, &arn)
            .await
            .contains(&"RollBack".to_owned())
    );
    assert_eq!(
        e.fx.routing("orders").await.unwrap(),
        ("1".to_owned(), vec![("2".to_owned(), 0.3)]),
        "their change stands"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_start_input_shaped_like_a_rollout_is_refused_before_any_write() {
    let e = env().await;
    e.fx.function("orders", 2).await.unwrap();
    // GIVEN an input shaped like the engine's own state, naming a "stable" version the caller chose
    let forged = json!({
        "deploymentId": "orders-live-2",
        "deployment": deployment(json!("AllAtOnce")),
        "alias": {"functionName": "orders", "name": "live", "stableVersion": "2", "targetVersion": "1",
                  "revisionId": "x"},
        "step": 0, "percent": 10.0, "bakeSeconds": 0, "promoted": false, "stepCount": 1
    });
    let arn = e.start("orders-live-2", &forged).await;
    let done = e.finish(&arn).await;
    // THEN Prepare refuses it by field, and no rollback ever reads it
    assert_eq!(done.error(), Some("InvalidInput"), "{:?}", done.cause());
    let entered = states_entered(&e, &arn).await;
    assert!(!entered.contains(&"RollBack".to_owned()), "{entered:?}");
    assert_eq!(e.fx.routing("orders").await.unwrap(), stable("1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_direct_invocation_of_an_engine_function_is_refused() {
    let e = env().await;
    e.fx.function("orders", 2).await.unwrap();
    let state = json!({
        "deploymentId": "orders-live-2",
        "deployment": deployment(json!("AllAtOnce")),
        "alias": {"functionName": "orders", "name": "live", "stableVersion": "1", "targetVersion": "2",
                  "revisionId": "x"},
        "step": null, "percent": 0.0, "bakeSeconds": 0, "promoted": false, "stepCount": 1
    });
    // A shift, a prepare and a rollback with no execution, and a shift claiming a finished execution.
    let done = e
        .start("orders-live-2", &deployment(json!("AllAtOnce")))
        .await;
    e.finish(&done).await;
    for (function, event) in [
        ("safeshift-shift-weight", json!({"shift": {"state": state}})),
        (
            "safeshift-shift-weight",
            json!({"prepare": {"deploymentId": "orders-live-2", "input": deployment(json!("AllAtOnce"))}}),
        ),
        ("safeshift-rollback", json!({"rollback": state})),
        (
            "safeshift-shift-weight",
            json!({"shift": {"state": state, "executionArn": done}}),
        ),
    ] {
        let (error_type, message) = e.invoke(function, &event).await.unwrap_err();
        assert_eq!(error_type, "ExecutionMismatch", "{function}: {message}");
    }
    // The finished deployment promoted version 2; nothing since moved it.
    assert_eq!(e.fx.routing("orders").await.unwrap(), stable("2"));
}

// ---- bounded state ----------------------------------------------------------------------------------

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
    // A long bake: the watch, not the check at its end, ends it.
    let mut input = deployment(
        json!({"steps": [{"percent": 10, "bakeSeconds": 300}, {"percent": 50, "bakeSeconds": 1}]}),
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

    // The watch ended the bake — or, when the alarms fired before the bake's wait was registered, refused the
    // registration (the bake task's error, its message wrapped in Lambda's JSON): either way the cause names the
    // first alarm that fired, its reason cut.
    let cause = done.cause().unwrap();
    let cause = serde_json::from_str::<Value>(cause)
        .ok()
        .and_then(|c| c["errorMessage"].as_str().map(str::to_owned))
        .unwrap_or_else(|| cause.to_owned());
    assert!(
        cause.starts_with("alarm in ALARM: orders-errors-")
            && cause.contains("bytes])")
            && cause.len() <= 1024,
        "{cause}"
    );

    // The second line of defence reads all hundred alarms: its report is bounded too, and says what it left out.
    let rollout = executions::history(&e.sfn, &arn)
        .await
        .unwrap()
        .iter()
        .rev()
        .find_map(|ev| {
            let d = ev
                .state_exited_event_details()
                .filter(|d| d.name() == "ShiftWeight")?;
            d.output().map(str::to_owned)
        })
        .expect("a shift");
    let answer = aws_sdk_lambda::Client::new(&e.stack.config)
        .invoke()
        .function_name("safeshift-check-alarms")
        .payload(aws_sdk_lambda::primitives::Blob::new(rollout))
        .send()
        .await
        .unwrap();
    let report = answer.payload().unwrap().as_ref();
    assert!(
        report.len() < 64 * 1024,
        "the report carries {} bytes",
        report.len()
    );
    let cause: Value =
        json!({"results": serde_json::from_slice::<Value>(report).unwrap()["results"]});
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

// ---- every gate is checked before traffic moves ------------------------------------------------------------

/// `input`, started as `name`, ends in Prepare with `error` naming `names`: no state past Prepare ran and the
/// alias is on version 1 alone.
async fn refused_before_any_write(e: &Env, name: &str, input: &Value, error: &str, names: &str) {
    let arn = e.start(name, input).await;
    let done = e.finish(&arn).await;
    assert_eq!(done.error(), Some(error), "{name}: {:?}", done.cause());
    assert!(
        done.cause().unwrap_or_default().contains(names),
        "{name}: {:?}",
        done.cause()
    );
    let entered = states_entered(e, &arn).await;
    assert_eq!(entered, ["Prepare", "PrepareFailed"], "{name}");
    assert_eq!(e.fx.routing("orders").await.unwrap(), stable("1"), "{name}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alarm_already_firing_or_missing_at_start_refuses_the_deployment_before_any_write() {
    let e = env().await;
    e.fx.function("orders", 2).await.unwrap();
    e.fx.alarm("orders-errors").await.unwrap();
    fire(&e, "orders-errors").await;
    let mut firing = canary(2);
    firing["alarms"] = json!(["orders-errors"]);
    let mut missing = canary(2);
    missing["alarms"] = json!(["orders-erors"]);
    for (name, input, error, names) in [
        ("firing", firing, "AlarmFiringAtStart", "orders-errors"),
        ("missing", missing, "ResourceNotFound", "orders-erors"),
    ] {
        refused_before_any_write(&e, name, &input, error, names).await;
    }
}

// ---- the gates are watched through every wait --------------------------------------------------------------

/// A deployment of `function:live` from version 1 to 2 gated by `<function>-errors`, which is created OK.
async fn watched(e: &Env, function: &str, strategy: Value) -> Value {
    e.fx.function(function, 2).await.unwrap();
    let alarm = format!("{function}-errors");
    e.fx.alarm(&alarm).await.unwrap();
    json!({"functionName": function, "alias": "live", "targetVersion": "2", "strategy": strategy,
           "alarms": [alarm]})
}

async fn fire(e: &Env, alarm: &str) {
    e.fx.set_alarm(
        alarm,
        aws_sdk_cloudwatch::types::StateValue::Alarm,
        "Threshold Crossed: 5 errors",
    )
    .await
    .unwrap();
}

/// Waits (up to 30 s) until the execution has entered `state`.
async fn wait_for_state(e: &Env, arn: &str, state: &str) {
    executions::wait_for_state(&e.sfn, arn, state, Duration::from_secs(30))
        .await
        .unwrap();
}

/// The execution ended FAILED with AlarmFired naming `alarm`, when it changed and why, before any bake ran out
/// (no CheckGates after the alarm: the watch ended the wait, not the check at the bake's end), with the alias
/// back on version 1 alone.
async fn rolled_back_by_the_watch(e: &Env, arn: &str, function: &str, checks_before: usize) {
    let done = e.finish(arn).await;
    assert_eq!(*done.status(), ExecutionStatus::Failed, "{function}");
    assert_eq!(
        done.error(),
        Some("AlarmFired"),
        "{function}: {:?}",
        done.cause()
    );
    let cause = done.cause().unwrap_or_default();
    assert!(
        cause.contains(&format!("{function}-errors (went to ALARM at "))
            && cause.contains("Threshold Crossed"),
        "{function}: {cause}"
    );
    let checks = states_entered(e, arn)
        .await
        .iter()
        .filter(|s| *s == "CheckGates")
        .count();
    assert_eq!(
        checks, checks_before,
        "{function}: the alarm was not caught by the watch"
    );
    assert_eq!(
        e.fx.routing(function).await.unwrap(),
        stable("1"),
        "{function}"
    );
}

/// Scenario 20 of the brief, side by side on one stack: an alarm mid-bake, at 100% in the final bake, during an
/// approval, and one that fires and clears within a bake, each rolled back by the watch long before its 300-s
/// bake would have ended; and a healthy deployment with the same alarm watching is promoted with the transitions
/// the cost model counts (the watched bake costs what the Wait did).
#[tokio::test(flavor = "multi_thread")]
async fn alarms_are_watched_through_every_wait_and_roll_back_at_once() {
    let e = env().await;
    let long = |percent: u32| json!({"steps": [{"percent": percent, "bakeSeconds": 300}]});
    let mid_bake = async {
        let input = watched(&e, "mid", long(10)).await;
        let arn = e.start("mid", &input).await;
        e.fx.wait_for_split("mid").await.unwrap();
        fire(&e, "mid-errors").await;
        rolled_back_by_the_watch(&e, &arn, "mid", 0).await;
    };
    let final_bake = async {
        let mut input = watched(&e, "final", json!("AllAtOnce")).await;
        input["bakeSeconds"] = json!(300);
        let arn = e.start("final", &input).await;
        e.fx.wait_for_routing("final", |r| *r == stable("2"))
            .await
            .unwrap();
        fire(&e, "final-errors").await;
        rolled_back_by_the_watch(&e, &arn, "final", 0).await;
    };
    let spike = async {
        let input = watched(&e, "spike", long(10)).await;
        let arn = e.start("spike", &input).await;
        e.fx.wait_for_split("spike").await.unwrap();
        fire(&e, "spike-errors").await;
        // A spike: back to OK a second later, long before any gate would read the alarm.
        tokio::time::sleep(Duration::from_secs(1)).await;
        e.fx.set_alarm(
            "spike-errors",
            aws_sdk_cloudwatch::types::StateValue::Ok,
            "recovered",
        )
        .await
        .unwrap();
        rolled_back_by_the_watch(&e, &arn, "spike", 0).await;
    };
    let approval = async {
        let mut input = watched(
            &e,
            "gated",
            json!({"canary": {"percent": 10, "intervalSeconds": 1}}),
        )
        .await;
        input["approval"] = json!("beforePromotion");
        let arn = e.start("gated", &input).await;
        wait_for_state(&e, &arn, "Approval").await;
        fire(&e, "gated-errors").await;
        // The first step's bake ended and its gates were checked once; the approval wait is what the alarm ended.
        rolled_back_by_the_watch(&e, &arn, "gated", 1).await;
    };
    let healthy = async {
        let input = watched(
            &e,
            "healthy",
            json!({"canary": {"percent": 10, "intervalSeconds": 1}}),
        )
        .await;
        let arn = e.start("healthy", &input).await;
        let done = e.finish(&arn).await;
        assert_eq!(
            *done.status(),
            ExecutionStatus::Succeeded,
            "{:?}",
            done.cause()
        );
        assert_eq!(e.fx.routing("healthy").await.unwrap(), stable("2"));
        let model = safeshift_core::asl::Definition::rollout()
            .transition_model()
            .unwrap();
        assert_eq!(
            states_entered(&e, &arn).await.len() as u64,
            model.transitions(2, false, 0, 0),
            "a watched bake costs the transitions a Wait did"
        );
    };
    tokio::join!(mid_bake, final_bake, spike, approval, healthy);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hook_outside_the_prefix_or_missing_is_refused_before_any_write() {
    let e = env().await;
    e.fx.function("orders", 2).await.unwrap();
    e.fx.function("orders-smoke", 1).await.unwrap();
    for (name, hooks, error, names) in [
        (
            "outside",
            json!({"preTraffic": "orders-smoke"}),
            "InvalidInput",
            "hooks.preTraffic",
        ),
        (
            "missing",
            json!({"postTraffic": "SafeshiftHook_orders-e2e"}),
            "ResourceNotFound",
            "SafeshiftHook_orders-e2e",
        ),
    ] {
        let mut input = canary(2);
        input["hooks"] = hooks;
        refused_before_any_write(&e, name, &input, error, names).await;
    }
}

// ---- metric analysis, continuously, on each step's own traffic ----------------------------------------------

/// Side by side: a version that turns bad only at the last traffic step is judged on that step's own traffic
/// and rolled back before promotion (the 50%-step case), and a grossly bad version is caught at its
/// step's first look, long before its 300-s bake would end.
#[tokio::test(flavor = "multi_thread")]
async fn each_step_is_judged_on_its_own_traffic_and_looked_at_while_it_bakes() {
    let e = env().await;
    let put = |function: &'static str, target: [u32; 3], stable: [u32; 3]| {
        let fx = e.fx.clone();
        async move {
            for (version, counts) in [("2", target), ("1", stable)] {
                fx.put_version_metrics(function, "live", version, counts)
                    .await
                    .unwrap();
            }
        }
    };
    let last_step = async {
        e.fx.function("laststep", 2).await.unwrap();
        let input = json!({"functionName": "laststep", "alias": "live", "targetVersion": "2",
            "strategy": {"steps": [{"percent": 10, "bakeSeconds": 20}, {"percent": 50, "bakeSeconds": 20}]},
            "analysis": {"maxErrorRate": 0.05, "minInvocations": 100, "metricDelaySeconds": 5,
                         "intervalSeconds": 10}});
        let arn = e.start("laststep", &input).await;
        e.fx.wait_for_split("laststep").await.unwrap();
        put("laststep", [200, 1, 0], [1800, 9, 0]).await;
        // Bad only once it takes half the traffic: 60% of its calls fail at the 50% step.
        e.fx.wait_for_routing("laststep", |(_, w)| w == &[("2".to_owned(), 0.5)])
            .await
            .unwrap();
        put("laststep", [1000, 600, 0], [1000, 5, 0]).await;
        let done = e.finish(&arn).await;
        assert_eq!(done.error(), Some("AnalysisFailed"), "{:?}", done.cause());
        assert!(
            done.cause().unwrap().contains("(600/1000)"),
            "{:?}",
            done.cause()
        );
        let shifts = states_entered(&e, &arn)
            .await
            .iter()
            .filter(|s| *s == "ShiftWeight")
            .count();
        assert_eq!(shifts, 2, "never promoted");
        assert_eq!(e.fx.routing("laststep").await.unwrap(), stable("1"));
    };
    let early = async {
        e.fx.function("early", 2).await.unwrap();
        let input = json!({"functionName": "early", "alias": "live", "targetVersion": "2",
            "strategy": {"steps": [{"percent": 10, "bakeSeconds": 300}]},
            "analysis": {"maxErrorRate": 0.05, "minInvocations": 100, "metricDelaySeconds": 0,
                         "intervalSeconds": 10}});
        let arn = e.start("early", &input).await;
        e.fx.wait_for_split("early").await.unwrap();
        put("early", [200, 60, 0], [1800, 9, 0]).await;
        let done = e.finish(&arn).await;
        assert_eq!(done.error(), Some("AnalysisFailed"), "{:?}", done.cause());
        assert_eq!(e.fx.routing("early").await.unwrap(), stable("1"));
        let looks = states_entered(&e, &arn)
            .await
            .iter()
            .filter(|s| *s == "CheckGates")
            .count();
        assert!(
            (1..=3).contains(&looks),
            "caught within its first looks, not after 30: {looks}"
        );
    };
    tokio::join!(last_step, early);
}

/// The events a subscriber's queue received for one deployment, as (detail-type, detail), in publishing order.
async fn events_of(e: &Env, deployment_id: &str) -> Vec<(String, Value)> {
    e.stack
        .events()
        .await
        .unwrap()
        .into_iter()
        .filter(|ev| ev["detail"]["deploymentId"] == deployment_id)
        .map(|ev| {
            assert_eq!(ev["source"], "safeshift", "{ev:#}");
            (
                ev["detail-type"].as_str().unwrap().to_owned(),
                ev["detail"].clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_promoted_and_a_rolled_back_deployment_tell_their_subscribers() {
    let promoted = async {
        let e = env().await;
        e.fx.function("orders", 2).await.unwrap();
        let input = deployment(json!({"canary": {"percent": 20, "intervalSeconds": 1}}));
        let arn = e.start("orders-live-2", &input).await;
        assert_eq!(*e.finish(&arn).await.status(), ExecutionStatus::Succeeded);
        let events = events_of(&e, "orders-live-2").await;
        let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            types,
            [
                "Deployment Started",
                "Step Shifted",
                "Gates Passed",
                "Step Shifted",
                "Gates Passed",
                "Deployment Succeeded"
            ]
        );
        let (_, shifted) = &events[1];
        assert_eq!(
            (shifted["functionName"].as_str(), shifted["alias"].as_str()),
            (Some("orders"), Some("live"))
        );
        assert_eq!(
            (
                shifted["stableVersion"].as_str(),
                shifted["targetVersion"].as_str()
            ),
            (Some("1"), Some("2"))
        );
        assert_eq!(
            (shifted["step"].as_u64(), shifted["percent"].as_f64()),
            (Some(1), Some(20.0))
        );
        assert_eq!(events[0].1["executionArn"], arn.as_str());
        assert_eq!(events[5].1["step"], 2);
    };
    let rolled_back = async {
        let e = env().await;
        e.fx.function("orders", 2).await.unwrap();
        let input =
            analysed(json!({"maxErrorRate": 0.05, "minInvocations": 100, "metricDelaySeconds": 0}));
        let arn = e.start("orders-live-2", &input).await;
        wait_for_split(&e, "orders").await;
        e.traffic([200, 30, 0], [1800, 9, 0]).await;
        assert_eq!(*e.finish(&arn).await.status(), ExecutionStatus::Failed);
        let events = events_of(&e, "orders-live-2").await;
        let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            types,
            [
                "Deployment Started",
                "Step Shifted",
                "Gate Failed",
                "Deployment Rolled Back"
            ]
        );
        let (_, failed) = &events[2];
        assert_eq!(failed["error"], "AnalysisFailed");
        assert!(
            failed["gates"][0]["findings"][0]
                .as_str()
                .unwrap()
                .contains("above maxErrorRate"),
            "{failed:#}"
        );
        let (_, back) = &events[3];
        assert_eq!(
            (back["outcome"].as_str(), back["error"].as_str()),
            (Some("reverted"), Some("AnalysisFailed"))
        );
        assert_eq!(e.fx.routing("orders").await.unwrap(), stable("1"));
    };
    tokio::join!(promoted, rolled_back);
}

/// The hooks the execution ran, in order, each with what its state recorded.
async fn hook_states(e: &Env, arn: &str) -> Vec<(String, Value)> {
    executions::history(&e.sfn, arn)
        .await
        .unwrap()
        .iter()
        .filter_map(|ev| {
            let d = ev.state_exited_event_details()?;
            let key = match d.name() {
                "PreTrafficHook" | "BeforeStepHook" | "PostTrafficHook" => "hook",
                "AfterStepHook" => "afterStep",
                "OnRollbackHook" => "onRollback",
                _ => return None,
            };
            let out: Value = serde_json::from_str(d.output()?).ok()?;
            // A hook point with no hook is passed through, not run.
            (out[key]["verdict"] != "skipped").then(|| (d.name().to_owned(), out[key].clone()))
        })
        .collect()
}

const HOOK: &str = "SafeshiftHook_orders-check";

fn stepped() -> Value {
    deployment(
        json!({"steps": [{"percent": 10, "bakeSeconds": 1}, {"percent": 50, "bakeSeconds": 1}]}),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn hooks_run_at_every_step_and_any_of_them_can_stop_the_rollout() {
    // Every hook point on a three-step deployment, in order, each told where the rollout stands.
    let every = async {
        let e = env().await;
        e.fx.function("orders", 2).await.unwrap();
        e.fx.function(HOOK, 1).await.unwrap();
        let mut input = stepped();
        input["hooks"] =
            json!({"preTraffic": HOOK, "beforeStep": HOOK, "afterStep": HOOK, "postTraffic": HOOK});
        let arn = e.start("orders-live-2", &input).await;
        let done = e.finish(&arn).await;
        assert_eq!(
            *done.status(),
            ExecutionStatus::Succeeded,
            "{:?}",
            done.cause()
        );
        let hooks = hook_states(&e, &arn).await;
        let order: Vec<&str> = hooks.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            order,
            [
                "PreTrafficHook",
                "AfterStepHook",
                "BeforeStepHook",
                "AfterStepHook",
                "BeforeStepHook",
                "PostTrafficHook"
            ]
        );
        // moto's hook answers with the event it was given: what the hook saw, kept as the hook's output.
        let (_, before) = &hooks[2];
        assert_eq!(
            (before["verdict"].as_str(), before["hook"].as_str()),
            (Some("pass"), Some(HOOK))
        );
        assert_eq!(before["output"]["phase"], "beforeStep");
        assert_eq!(
            (
                before["output"]["step"].as_u64(),
                before["output"]["nextPercent"].as_f64()
            ),
            (Some(1), Some(50.0))
        );
        let (_, after) = &hooks[3];
        assert_eq!(
            (
                after["output"]["phase"].as_str(),
                after["output"]["step"].as_u64()
            ),
            (Some("afterStep"), Some(2))
        );
        assert_eq!(
            after["output"]["passedGates"].as_array().map(Vec::len),
            Some(1)
        );
        assert_eq!(e.fx.routing("orders").await.unwrap(), stable("2"));
    };
    // A failing afterStep hook rolls back at that step; a failing onRollback hook never blocks the rollback.
    let after_step_fails = async {
        let e = env().await;
        e.fx.function("orders", 2).await.unwrap();
        e.fx.function(HOOK, 1).await.unwrap();
        e.fx.queue_hook_results(&[
            json!({"status": "Failed", "message": "synthetic checkout failed"}),
            json!({"status": "Failed", "message": "the pager is down too"}),
        ])
        .unwrap();
        let mut input = stepped();
        input["hooks"] = json!({"afterStep": HOOK, "onRollback": HOOK});
        let arn = e.start("orders-live-2", &input).await;
        let done = e.finish(&arn).await;
        assert_eq!(*done.status(), ExecutionStatus::Failed);
        assert_eq!(
            done.error(),
            Some("HookFailed"),
            "the rollback's cause, not the onRollback hook's"
        );
        let cause = done.cause().unwrap();
        assert!(
            cause.contains("afterStep hook")
                && cause.contains("at step 1: synthetic checkout failed"),
            "{cause}"
        );
        let order: Vec<String> = hook_states(&e, &arn)
            .await
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(order, ["AfterStepHook", "OnRollbackHook"]);
        // The onRollback hook really ran (after the lock's release) and failed with its own message.
        let on_rollback = executions::history(&e.sfn, &arn)
            .await
            .unwrap()
            .iter()
            .find_map(|ev| {
                let d = ev
                    .state_exited_event_details()
                    .filter(|d| d.name() == "OnRollbackHook")?;
                serde_json::from_str::<Value>(d.output()?).ok()
            })
            .unwrap();
        assert_eq!(
            on_rollback["onRollbackError"]["Error"], "HookFailed",
            "{on_rollback:#}"
        );
        assert!(
            on_rollback["onRollbackError"]["Cause"]
                .as_str()
                .unwrap()
                .contains("the pager is down too"),
            "{on_rollback:#}"
        );
        let entered = states_entered(&e, &arn).await;
        assert_eq!(
            entered.iter().filter(|s| *s == "ShiftWeight").count(),
            1,
            "{entered:?}"
        );
        assert_eq!(entered.last().map(String::as_str), Some("RolledBack"));
        assert_eq!(e.fx.routing("orders").await.unwrap(), stable("1"));
    };
    // A callback hook that never answers times out and rolls back; one that answers lets the rollout on.
    let callback = async {
        let e = env().await;
        e.fx.function("orders", 2).await.unwrap();
        e.fx.function(HOOK, 1).await.unwrap();
        let mut input = stepped();
        input["hooks"] =
            json!({"afterStep": {"function": HOOK, "mode": "callback", "timeoutSeconds": 2}});
        let arn = e.start("orders-live-2", &input).await;
        let done = e.finish(&arn).await;
        assert_eq!(*done.status(), ExecutionStatus::Failed);
        assert_eq!(done.error(), Some("HookFailed"), "{:?}", done.cause());
        assert!(
            done.cause()
                .unwrap()
                .contains("did not answer within its time"),
            "{:?}",
            done.cause()
        );
        assert_eq!(e.fx.routing("orders").await.unwrap(), stable("1"));

        e.fx.function("answered", 2).await.unwrap();
        let mut input = stepped();
        input["functionName"] = json!("answered");
        let callback = json!({"function": HOOK, "mode": "callback", "timeoutSeconds": 60});
        input["hooks"] = json!({"beforeStep": callback, "afterStep": callback});
        let arn = e.start("answered-live-2", &input).await;
        // Each hook event carries its token; the test answers as the hook would (after steps 1 and 2, before step
        // 2 and before the promotion: four answers, none of them saying which step), once the engine has started
        // the hook (the task is submitted).
        let mut answered = std::collections::BTreeSet::new();
        while answered.len() < 4 {
            let history = executions::history(&e.sfn, &arn).await.unwrap();
            for (i, ev) in history.iter().enumerate() {
                let Some(p) = ev
                    .task_scheduled_event_details()
                    .and_then(|d| serde_json::from_str::<Value>(d.parameters()).ok())
                    .filter(|p| {
                        matches!(
                            p["Payload"]["phase"].as_str(),
                            Some("beforeStep" | "afterStep")
                        )
                    })
                else {
                    continue;
                };
                let token = p["Payload"]["taskToken"].as_str().unwrap().to_owned();
                let submitted = history[i..]
                    .iter()
                    .any(|ev| *ev.r#type() == aws_sdk_sfn::types::HistoryEventType::TaskSubmitted);
                if submitted && answered.insert(token.clone()) {
                    e.sfn
                        .send_task_success()
                        .task_token(token)
                        .output(json!({"verdict": "pass", "checkedBy": "the hook"}).to_string())
                        .send()
                        .await
                        .unwrap();
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let done = e.finish(&arn).await;
        assert_eq!(
            *done.status(),
            ExecutionStatus::Succeeded,
            "{:?}",
            done.cause()
        );
        assert_eq!(e.fx.routing("answered").await.unwrap(), stable("2"));
    };
    tokio::join!(every, after_step_fails, callback);
}
