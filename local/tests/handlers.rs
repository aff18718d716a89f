//! Every engine handler against a real moto server, through the real SDK clients over the real wire protocols. Each
//! test builds its own world (function, versions, alias `live`, alarms), runs handlers, and reads the alias back.
//! Scenario numbers refer to the reliability table in the design brief.

use aws_sdk_cloudwatch::types::StateValue;
use safeshift_core::{Error, ErrorType};
use safeshift_engine::check_alarms::CheckAlarms;
use safeshift_engine::rollback::Rollback;
use safeshift_engine::run_hook::RunHook;
use safeshift_engine::runtime::handle_json;
use safeshift_engine::shift_weight::{ReadyWait, ShiftWeight};
use safeshift_engine::{CloudWatchAdapter, LambdaAdapter, StepFunctionsAdapter};
use safeshift_local::fixtures::{Fixtures, Routing};
use safeshift_local::moto::MotoServer;
use serde_json::{Value, json};

/// One moto of this test's own, stopped when the test ends, with the clients the engine uses.
struct World {
    _moto: MotoServer,
    fx: Fixtures,
    lambda: aws_sdk_lambda::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    sfn: aws_sdk_sfn::Client,
}

impl World {
    async fn new() -> Self {
        let venv = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv");
        let moto = tokio::task::spawn_blocking(move || {
            MotoServer::start(&venv, None, None).expect("moto")
        })
        .await
        .unwrap();
        let config = safeshift_local::stack::sdk_config(&moto.endpoint()).await;
        Self {
            fx: Fixtures::on(&config, moto.port),
            lambda: aws_sdk_lambda::Client::new(&config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
            sfn: aws_sdk_sfn::Client::new(&config),
            _moto: moto,
        }
    }

    async fn function(&self, name: &str, versions: usize) {
        self.fx.function(name, versions).await.unwrap();
    }

    async fn publish(&self, name: &str, code: &str) -> String {
        self.fx.publish(name, code).await.unwrap()
    }

    async fn routing(&self, name: &str) -> Routing {
        self.fx.routing(name).await.unwrap()
    }

    async fn alarm(&self, name: &str) {
        self.fx.alarm(name).await.unwrap();
    }

    async fn set_alarm_state(&self, name: &str, state: StateValue, reason: &str) {
        self.fx.set_alarm(name, state, reason).await.unwrap();
    }
}

fn stable(version: &str) -> Routing {
    (version.to_owned(), vec![])
}

fn split(stable: &str, target: &str, weight: f64) -> Routing {
    (stable.to_owned(), vec![(target.to_owned(), weight)])
}

impl World {
    fn shift_weight(&self) -> ShiftWeight<LambdaAdapter> {
        ShiftWeight::new(
            LambdaAdapter::new(self.lambda.clone()),
            ReadyWait::default(),
        )
    }

    fn check_alarms(&self) -> CheckAlarms<CloudWatchAdapter> {
        CheckAlarms::new(CloudWatchAdapter::new(self.cloudwatch.clone()))
    }

    fn run_hook(&self) -> RunHook<LambdaAdapter> {
        RunHook::new(LambdaAdapter::new(self.lambda.clone()))
    }

    fn rollback(&self) -> Rollback<LambdaAdapter, StepFunctionsAdapter> {
        Rollback::new(
            LambdaAdapter::new(self.lambda.clone()),
            StepFunctionsAdapter::new(self.sfn.clone()),
        )
    }

    async fn prepare(&self, input: Value) -> Result<Value, Error> {
        handle_json(
            &self.shift_weight(),
            json!({"prepare": {"deploymentId": "d-1", "input": input}}),
        )
        .await
    }

    async fn shift(&self, rollout: &Value) -> Result<Value, Error> {
        handle_json(&self.shift_weight(), json!({ "shift": rollout })).await
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

#[tokio::test]
async fn a_canary_is_shifted_then_promoted() {
    let w = World::new().await;
    w.function("orders", 2).await;
    w.alarm("orders-errors").await;
    let mut input = deployment(json!("Canary10Percent5Minutes"));
    input["alarms"] = json!(["orders-errors"]);

    let prepared = w.prepare(input).await.unwrap();
    assert_eq!(prepared["alias"]["stableVersion"], "1");
    assert_eq!(
        w.routing("orders").await,
        stable("1"),
        "prepare writes nothing"
    );

    let canary = w.shift(&prepared).await.unwrap();
    assert_eq!(w.routing("orders").await, split("1", "2", 0.1));
    assert_eq!(
        (canary["percent"].clone(), canary["bakeSeconds"].clone()),
        (json!(10.0), json!(300))
    );

    w.set_alarm_state("orders-errors", StateValue::Ok, "no errors")
        .await;
    let gates = handle_json(&w.check_alarms(), canary.clone())
        .await
        .unwrap();
    assert_eq!(gates["verdict"], "pass");
    assert_eq!(
        (
            gate(&gates, "alarms")["evidence"]["alarms"][0]["state"].clone(),
            gate(&gates, "alarms")["evidence"]["alarms"][0]["reason"].clone()
        ),
        (json!("OK"), json!("no errors"))
    );

    let promoted = w.shift(&canary).await.unwrap();
    assert_eq!(promoted["promoted"], true);
    assert_eq!(w.routing("orders").await, stable("2"));
}

#[tokio::test]
async fn a_linear_rollout_takes_every_weight_of_its_schedule() {
    let w = World::new().await;
    w.function("orders", 2).await;
    let mut rollout = w
        .prepare(deployment(
            json!({"linear": {"percent": 25, "intervalSeconds": 1}}),
        ))
        .await
        .unwrap();
    for weight in [0.25, 0.5, 0.75] {
        rollout = w.shift(&rollout).await.unwrap();
        assert_eq!(w.routing("orders").await, split("1", "2", weight));
    }
    rollout = w.shift(&rollout).await.unwrap();
    assert_eq!(rollout["promoted"], true);
    assert_eq!(w.routing("orders").await, stable("2"));
}

/// Scenario 1.
#[tokio::test]
async fn an_unknown_function_or_alias_is_named_and_nothing_is_written() {
    let w = World::new().await;
    w.function("orders", 2).await;
    let mut input = deployment(json!("AllAtOnce"));
    input["functionName"] = json!("payments");
    let err = w.prepare(input).await.unwrap_err();
    assert_eq!(err.to_string(), "function `payments` does not exist");

    let mut input = deployment(json!("AllAtOnce"));
    input["alias"] = json!("prod");
    let err = w.prepare(input).await.unwrap_err();
    assert_eq!(err.to_string(), "alias `orders:prod` does not exist");
    assert_eq!(w.routing("orders").await, stable("1"));
}

/// Scenario 2.
#[tokio::test]
async fn a_missing_latest_or_unchanged_target_is_refused_and_the_alias_untouched() {
    let w = World::new().await;
    w.function("orders", 2).await;
    for (target, error_type, message) in [
        (
            json!("9"),
            ErrorType::ResourceNotFound,
            "version `orders:9` does not exist",
        ),
        (json!("$LATEST"), ErrorType::InvalidInput, "not `$LATEST`"),
        (
            json!("1"),
            ErrorType::InvalidInput,
            "version 1 is already the version alias `live` points to",
        ),
    ] {
        let mut input = deployment(json!("AllAtOnce"));
        input["targetVersion"] = target;
        let err = w.prepare(input).await.unwrap_err();
        assert_eq!(err.error_type(), error_type, "{err}");
        assert!(err.to_string().contains(message), "{err}");
    }
    assert_eq!(w.routing("orders").await, stable("1"));
}

/// Scenario 3.
#[tokio::test]
async fn a_target_with_another_execution_role_is_rejected_up_front() {
    let w = World::new().await;
    w.function("orders", 1).await;
    w.fx.role("other").unwrap();
    w.lambda
        .update_function_configuration()
        .function_name("orders")
        .role("arn:aws:iam::123456789012:role/other")
        .send()
        .await
        .unwrap();
    assert_eq!(w.publish("orders", "v2").await, "2");
    let err = w.prepare(deployment(json!("AllAtOnce"))).await.unwrap_err();
    assert_eq!(err.error_type(), ErrorType::IncompatibleVersions);
    assert!(err.to_string().contains("execution roles differ"), "{err}");
    assert_eq!(w.routing("orders").await, stable("1"));
}

/// Scenario 6. (moto has no PutCompositeAlarm, so composite alarms and paging are covered by functions/engine/tests/adapters.rs.)
#[tokio::test]
async fn a_missing_alarm_fails_closed() {
    let w = World::new().await;
    w.function("orders", 2).await;
    w.alarm("orders-errors").await;
    let mut input = deployment(json!("AllAtOnce"));
    input["alarms"] = json!(["orders-errors", "orders-latency"]);
    let rollout = w.prepare(input).await.unwrap();
    let err = handle_json(&w.check_alarms(), rollout).await.unwrap_err();
    assert_eq!(err.error_type(), ErrorType::ResourceNotFound);
    assert_eq!(err.to_string(), "alarm `orders-latency` does not exist");
}

/// Scenario 7.
#[tokio::test]
async fn an_alarm_firing_mid_shift_fails_the_gate_and_rollback_restores_stable() {
    let w = World::new().await;
    w.function("orders", 2).await;
    w.alarm("orders-errors").await;
    let mut input = deployment(json!("Linear10PercentEvery1Minute"));
    input["alarms"] = json!(["orders-errors"]);
    let rollout = w.prepare(input).await.unwrap();
    let rollout = w.shift(&w.shift(&rollout).await.unwrap()).await.unwrap();
    assert_eq!(w.routing("orders").await, split("1", "2", 0.2));

    w.set_alarm_state("orders-errors", StateValue::Alarm, "5 errors in 1 minute")
        .await;
    let verdict = handle_json(&w.check_alarms(), rollout.clone())
        .await
        .unwrap();
    assert_eq!(verdict["verdict"], "fail");
    assert_eq!(verdict["error"], "AlarmFired");
    let alarms = gate(&verdict, "alarms");
    assert_eq!(alarms["findings"], json!(["in ALARM: orders-errors"]));
    assert_eq!(
        alarms["evidence"]["alarms"][0]["reason"],
        "5 errors in 1 minute"
    );

    let mut failed = rollout;
    failed["error"] = json!({"Error": "AlarmFired", "Cause": "orders-errors"});
    let report = handle_json(&w.rollback(), json!({ "rollback": failed }))
        .await
        .unwrap();
    assert_eq!(report["outcome"], "reverted");
    assert_eq!(w.routing("orders").await, stable("1"));
}

/// Scenario 8, synchronous hooks: moto's Invoke echoes the event (a pass) or returns a queued answer. (moto
/// answers Invoke even for a function that does not exist, so a missing hook is covered by functions/engine/tests/handlers/run_hook.rs.)
#[tokio::test]
async fn hooks_pass_and_fail_by_the_contract() {
    let w = World::new().await;
    w.function("orders", 2).await;
    w.function("orders-smoke", 1).await;
    let mut input = deployment(json!("Canary10Percent5Minutes"));
    input["hooks"] = json!({"preTraffic": "orders-smoke"});
    let rollout = w.prepare(input).await.unwrap();

    let passed = handle_json(
        &w.run_hook(),
        json!({"phase": "preTraffic", "rollout": rollout.clone()}),
    )
    .await
    .unwrap();
    assert_eq!(passed["verdict"], "pass");

    w.fx.queue_hook_results(&[json!({"status": "Failed", "message": "checkout returned 500"})])
        .unwrap();
    let err = handle_json(
        &w.run_hook(),
        json!({"phase": "preTraffic", "rollout": rollout.clone()}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::HookFailed);
    assert_eq!(
        err.to_string(),
        "preTraffic hook `orders-smoke` failed: checkout returned 500"
    );

    let skipped = handle_json(
        &w.run_hook(),
        json!({"phase": "postTraffic", "rollout": rollout}),
    )
    .await
    .unwrap();
    assert_eq!(skipped["verdict"], "skipped");
    assert_eq!(
        w.routing("orders").await,
        stable("1"),
        "hooks never touch the alias"
    );
}

/// Scenario 10.
#[tokio::test]
async fn an_alias_changed_mid_rollout_is_left_as_its_author_set_it() {
    let w = World::new().await;
    w.function("orders", 3).await;
    let rollout = w
        .shift(
            &w.prepare(deployment(json!("Canary10Percent5Minutes")))
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    // An operator points the alias at version 3 by hand.
    w.fx.set_alias("orders", "3").await.unwrap();

    let err = w.shift(&rollout).await.unwrap_err();
    assert_eq!(err.error_type(), ErrorType::AliasConflict);
    assert!(err.to_string().contains("found version 3"), "{err}");
    let report = handle_json(&w.rollback(), json!({ "rollback": rollout }))
        .await
        .unwrap();
    assert_eq!(report["outcome"], "leftAlone");
    assert_eq!(w.routing("orders").await, stable("3"));
}

/// Scenario 12.
#[tokio::test]
async fn a_second_deployment_for_the_same_alias_is_refused_while_the_first_runs() {
    let w = World::new().await;
    w.function("orders", 3).await;
    let first = w
        .shift(
            &w.prepare(deployment(json!("Canary10Percent5Minutes")))
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    let mut second = deployment(json!("AllAtOnce"));
    second["targetVersion"] = json!("3");
    let err = w.prepare(second).await.unwrap_err();
    assert_eq!(err.error_type(), ErrorType::AliasConflict);
    assert!(err.to_string().contains("deployment in progress"), "{err}");
    // The first goes on undisturbed.
    w.shift(&first).await.unwrap();
    assert_eq!(w.routing("orders").await, stable("2"));
}

/// Scenario 14.
#[tokio::test]
async fn rollback_before_any_shift_twice_and_when_stable_is_a_no_op() {
    let w = World::new().await;
    w.function("orders", 2).await;
    let raw = json!({"functionName": "orders", "alias": "live", "targetVersion": "9", "strategy": "AllAtOnce",
                     "error": {"Error": "ResourceNotFound"}});
    let report = handle_json(&w.rollback(), json!({ "rollback": raw }))
        .await
        .unwrap();
    assert_eq!(report["outcome"], "nothingShifted");

    let rollout = w
        .shift(
            &w.prepare(deployment(json!("Canary10Percent5Minutes")))
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    let outcomes: Vec<Value> = {
        let mut v = Vec::new();
        for _ in 0..2 {
            v.push(
                handle_json(&w.rollback(), json!({ "rollback": rollout.clone() }))
                    .await
                    .unwrap()["outcome"]
                    .clone(),
            );
        }
        v
    };
    assert_eq!(outcomes, [json!("reverted"), json!("alreadyStable")]);
    assert_eq!(w.routing("orders").await, stable("1"));
}

/// Scenario 15: a retried or redriven step finds its own write and succeeds without writing again.
#[tokio::test]
async fn a_step_run_twice_leaves_the_same_state() {
    let w = World::new().await;
    w.function("orders", 2).await;
    let prepared = w
        .prepare(deployment(json!("Canary10Percent5Minutes")))
        .await
        .unwrap();
    let first = w.shift(&prepared).await.unwrap();
    let again = w.shift(&prepared).await.unwrap();
    // The same rollout, but for when the step was last confirmed: the retry stamps its own time, never earlier.
    assert!(again["stepStartedAt"].as_u64() >= first["stepStartedAt"].as_u64());
    let without_start = |mut r: Value| {
        r.as_object_mut().unwrap().remove("stepStartedAt").unwrap();
        r
    };
    assert_eq!(without_start(first), without_start(again));
    assert_eq!(w.routing("orders").await, split("1", "2", 0.1));
}

/// Scenario 11, the reconciler's half, on moto's real DescribeExecution and GetExecutionHistory: an execution
/// for the same target that never ran Prepare did not make the split, so it must not undo it. (The revert of a
/// real stopped rollout is in tests/e2e.rs.)
#[tokio::test]
async fn the_reconciler_leaves_a_split_its_execution_did_not_make() {
    let w = World::new().await;
    w.function("orders", 2).await;
    let input = deployment(json!("Canary10Percent5Minutes"));
    w.shift(&w.prepare(input.clone()).await.unwrap())
        .await
        .unwrap();

    let machine = w
        .sfn
        .create_state_machine()
        .name("safeshift")
        .role_arn("arn:aws:iam::123456789012:role/safeshift")
        .definition(r#"{"StartAt": "Bake", "States": {"Bake": {"Type": "Wait", "Seconds": 60, "End": true}}}"#)
        .send()
        .await
        .unwrap();
    let execution = w
        .sfn
        .start_execution()
        .state_machine_arn(machine.state_machine_arn())
        .name("orders-live-2")
        .input(input.to_string())
        .send()
        .await
        .unwrap();
    w.sfn
        .stop_execution()
        .execution_arn(execution.execution_arn())
        .send()
        .await
        .unwrap();
    let event = json!({
        "version": "0", "detail-type": "Step Functions Execution Status Change", "source": "aws.states",
        "detail": {"executionArn": execution.execution_arn(), "status": "ABORTED"}
    });
    let report = handle_json(&w.rollback(), event).await.unwrap();
    assert_eq!(report["outcome"], "nothingShifted", "{report}");
    assert_eq!(w.routing("orders").await, split("1", "2", 0.1));
}

#[tokio::test]
async fn the_analysis_reads_each_version_apart_and_judges_the_target() {
    let w = World::new().await;
    w.function("orders", 2).await;
    let mut input = deployment(json!("Canary10Percent5Minutes"));
    input["analysis"] =
        json!({"maxErrorRate": 0.05, "minInvocations": 100, "metricDelaySeconds": 0});
    let prepared = w.prepare(input).await.unwrap();
    let canary = w.shift(&prepared).await.unwrap();
    assert!(canary["stepStartedAt"].as_u64().is_some(), "{canary:#}");

    // Both versions serve the same alias in the same minute; a third series (another alias) must not count.
    w.fx.put_version_metrics("orders", "live", "2", [200, 30, 0])
        .await
        .unwrap();
    w.fx.put_version_metrics("orders", "live", "1", [1800, 9, 0])
        .await
        .unwrap();
    w.fx.put_version_metrics("orders", "beta", "2", [5000, 0, 0])
        .await
        .unwrap();
    // The window ends now: let a second pass so the data points fall inside it.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    let gates = handle_json(&w.check_alarms(), canary.clone())
        .await
        .unwrap();
    let a = &gate(&gates, "analysis")["evidence"];
    assert_eq!(
        (
            a["target"]["invocations"].clone(),
            a["target"]["errors"].clone()
        ),
        (json!(200), json!(30)),
        "{gates:#}"
    );
    assert_eq!(
        (
            a["stable"]["invocations"].clone(),
            a["stable"]["errors"].clone()
        ),
        (json!(1800), json!(9))
    );
    assert_eq!(gates["verdict"], "fail");
    assert_eq!(gates["error"], "AnalysisFailed");
    assert_eq!(a["comparison"]["significant"], true);
    // The gate judged; the alias is untouched until the rollback.
    assert_eq!(w.routing("orders").await, split("1", "2", 0.1));
}
