//! Every engine handler against a real moto server, through the real SDK clients over the real wire protocols. Each
//! test builds its own world (function, versions, alias `live`, alarms), runs handlers, and reads the alias back.
//! Scenario numbers refer to the reliability table in the design brief.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_cloudwatch::types::StateValue;
use safeshift_core::{Error, ErrorType};
use safeshift_engine::check_alarms::CheckAlarms;
use safeshift_engine::guard::Scope;
use safeshift_engine::ports::{AliasLock, LockHolder};
use safeshift_engine::rollback::Rollback;
use safeshift_engine::run_hook::RunHook;
use safeshift_engine::runtime::handle_json;
use safeshift_engine::shift_weight::{ReadyWait, ShiftWeight};
use safeshift_engine::{CloudWatchAdapter, DynamoLockAdapter, LambdaAdapter, StepFunctionsAdapter};
use safeshift_local::fixtures::{Fixtures, Routing};
use safeshift_local::moto::MotoServer;
use serde_json::{Value, json};

/// One moto of this test's own, stopped when the test ends, with the clients the engine uses, a stand-in for the
/// rollout state machine whose executions park RUNNING (the engine acts only for those), and the lock table.
struct World {
    _moto: MotoServer,
    fx: Fixtures,
    lambda: aws_sdk_lambda::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    sfn: aws_sdk_sfn::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    scope: Scope,
    /// Each deployment's execution, by deployment id (the execution's name).
    executions: Mutex<HashMap<String, String>>,
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
        let fx = Fixtures::on(&config, moto.port);
        let state_machine = fx.parked_rollout().await.unwrap();
        assert_eq!(state_machine, safeshift_local::stack::state_machine_arn());
        Self {
            fx,
            lambda: aws_sdk_lambda::Client::new(&config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
            sfn: aws_sdk_sfn::Client::new(&config),
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            scope: Scope::new(state_machine),
            executions: Mutex::default(),
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

    /// Starts the next deployment's execution (d-1, d-2, …) with `input`; returns its id and ARN.
    async fn start(&self, input: &Value) -> (String, String) {
        let id = format!("d-{}", self.executions.lock().unwrap().len() + 1);
        let arn = self
            .fx
            .start_execution(&self.scope.state_machine_arn, &id, input)
            .await
            .unwrap();
        self.executions
            .lock()
            .unwrap()
            .insert(id.clone(), arn.clone());
        (id, arn)
    }

    /// The execution of the deployment a rollout (or a Catch state) belongs to.
    fn execution_of(&self, state: &Value) -> String {
        let id = state["deploymentId"].as_str().expect("a prepared rollout");
        self.executions.lock().unwrap()[id].clone()
    }

    /// Who holds `orders:live`'s lock, as the table says.
    async fn lock_holder(&self) -> Option<LockHolder> {
        self.locks()
            .holder("orders:live")
            .await
            .unwrap()
            .map(|(holder, _)| holder)
    }
}

fn stable(version: &str) -> Routing {
    (version.to_owned(), vec![])
}

fn split(stable: &str, target: &str, weight: f64) -> Routing {
    (stable.to_owned(), vec![(target.to_owned(), weight)])
}

impl World {
    fn executions(&self) -> StepFunctionsAdapter {
        StepFunctionsAdapter::new(self.sfn.clone())
    }

    fn locks(&self) -> DynamoLockAdapter {
        DynamoLockAdapter::new(self.dynamodb.clone(), self.scope.lock_table())
    }

    fn shift_weight(
        &self,
    ) -> ShiftWeight<LambdaAdapter, StepFunctionsAdapter, DynamoLockAdapter, CloudWatchAdapter>
    {
        ShiftWeight::new(
            LambdaAdapter::new(self.lambda.clone()),
            self.executions(),
            self.locks(),
            CloudWatchAdapter::new(self.cloudwatch.clone()),
            self.scope.clone(),
            ReadyWait::default(),
        )
    }

    fn check_alarms(&self) -> CheckAlarms<CloudWatchAdapter> {
        CheckAlarms::new(CloudWatchAdapter::new(self.cloudwatch.clone()))
    }

    fn run_hook(&self) -> RunHook<LambdaAdapter, StepFunctionsAdapter, DynamoLockAdapter> {
        RunHook::new(
            LambdaAdapter::new(self.lambda.clone()),
            self.executions(),
            self.locks(),
            self.scope.clone(),
        )
    }

    /// The rollback function; after a stop it looks again once 2 s have passed (writes here take milliseconds).
    fn rollback(&self) -> Rollback<LambdaAdapter, StepFunctionsAdapter, DynamoLockAdapter> {
        Rollback::new(
            LambdaAdapter::new(self.lambda.clone()),
            self.executions(),
            self.locks(),
            self.scope.clone(),
            Duration::from_secs(2),
        )
    }

    /// Prepare of `input` by a new deployment, whose execution runs with that input.
    async fn prepare(&self, input: Value) -> Result<Value, Error> {
        let (id, arn) = self.start(&input).await;
        handle_json(
            &self.shift_weight(),
            json!({"prepare": {"deploymentId": id, "executionArn": arn, "input": input}}),
        )
        .await
    }

    async fn shift(&self, rollout: &Value) -> Result<Value, Error> {
        let event =
            json!({"shift": {"state": rollout, "executionArn": self.execution_of(rollout)}});
        handle_json(&self.shift_weight(), event).await
    }

    async fn release(&self, rollout: &Value) -> Result<Value, Error> {
        let event =
            json!({"release": {"state": rollout, "executionArn": self.execution_of(rollout)}});
        handle_json(&self.shift_weight(), event).await
    }

    async fn hook(&self, phase: &str, rollout: &Value) -> Result<Value, Error> {
        let event =
            json!({"phase": phase, "rollout": rollout, "executionArn": self.execution_of(rollout)});
        handle_json(&self.run_hook(), event).await
    }

    /// The Catch's rollback of `state`, for the execution that holds it.
    async fn roll_back(&self, state: &Value, execution_arn: &str) -> Result<Value, Error> {
        let event = json!({"rollback": state, "executionArn": execution_arn});
        handle_json(&self.rollback(), event).await
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
    assert_eq!(prepared["aliases"][0]["stableVersion"], "1");
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
    // Prepare finds it, before any traffic moves...
    let err = w.prepare(input.clone()).await.unwrap_err();
    assert_eq!(err.error_type(), ErrorType::ResourceNotFound);
    assert_eq!(err.to_string(), "alarm `orders-latency` does not exist");
    assert_eq!(w.routing("orders").await, stable("1"));
    // ... and the gate still fails closed should it vanish later.
    let mut known = input;
    known["alarms"] = json!(["orders-errors"]);
    let mut rollout = w.prepare(known).await.unwrap();
    rollout["deployment"]["alarms"] = json!(["orders-errors", "orders-latency"]);
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
    let report = w
        .roll_back(&failed, &w.execution_of(&failed))
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

    let passed = w.hook("preTraffic", &rollout).await.unwrap();
    assert_eq!(passed["verdict"], "pass");

    w.fx.queue_hook_results(&[json!({"status": "Failed", "message": "checkout returned 500"})])
        .unwrap();
    let err = w.hook("preTraffic", &rollout).await.unwrap_err();
    assert_eq!(err.error_type(), ErrorType::HookFailed);
    assert_eq!(
        err.to_string(),
        "preTraffic hook `orders-smoke` failed: checkout returned 500"
    );

    let skipped = w.hook("postTraffic", &rollout).await.unwrap();
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
    let report = w
        .roll_back(&rollout, &w.execution_of(&rollout))
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
    let (_, execution) = w.start(&deployment(json!("AllAtOnce"))).await;
    let report = w.roll_back(&raw, &execution).await.unwrap();
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
                w.roll_back(&rollout, &w.execution_of(&rollout))
                    .await
                    .unwrap()["outcome"]
                    .clone(),
            );
        }
        v
    };
    assert_eq!(outcomes, [json!("reverted"), json!("alreadyStable")]);
    assert_eq!(w.routing("orders").await, stable("1"));
    assert_eq!(
        w.lock_holder().await,
        None,
        "the rollback released the alias"
    );
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
    let first = w.lock_holder().await.expect("d-1 holds the alias");

    // A second attempt at the same target, stopped before its Prepare ran.
    let (_, second) = w.start(&input).await;
    w.fx.stop_execution(&second).await.unwrap();
    let event = json!({
        "version": "0", "detail-type": "Step Functions Execution Status Change", "source": "aws.states",
        "detail": {"executionArn": second, "status": "ABORTED"}
    });
    let report = handle_json(&w.rollback(), event).await.unwrap();
    assert_eq!(report["outcome"], "nothingShifted", "{report}");
    assert_eq!(w.routing("orders").await, split("1", "2", 0.1));
    assert_eq!(
        w.lock_holder().await,
        Some(first),
        "the first deployment keeps its lock"
    );
}

/// Issue 18 on moto's DynamoDB and Step Functions: the alias's lock holds off a second deployment while the
/// first runs (even before it shifted anything), names it, and passes to the second once the first has ended;
/// the ended execution can no longer act; Release frees the alias.
#[tokio::test]
async fn the_alias_lock_holds_off_a_second_deployment_until_the_first_ends() {
    let w = World::new().await;
    w.function("orders", 3).await;
    let first = w
        .prepare(deployment(json!("Canary10Percent5Minutes")))
        .await
        .unwrap();
    let first_execution = w.execution_of(&first);
    assert_eq!(
        w.lock_holder().await.map(|h| h.execution_arn),
        Some(first_execution.clone())
    );

    let mut second = deployment(json!("AllAtOnce"));
    second["targetVersion"] = json!("3");
    let err = w.prepare(second.clone()).await.unwrap_err();
    assert_eq!(err.error_type(), ErrorType::AliasConflict);
    assert!(err.to_string().contains(&first_execution), "{err}");
    assert_eq!(w.routing("orders").await, stable("1"));

    // The first is stopped without releasing: it can no longer act, and its lock passes to the next Prepare once
    // its reconciler has put the alias back and released it (until then the alias is still being put back).
    w.fx.stop_execution(&first_execution).await.unwrap();
    let err = w.shift(&first).await.unwrap_err();
    assert_eq!(err.error_type(), ErrorType::ExecutionMismatch);
    assert!(err.to_string().contains("not running"), "{err}");
    let direct = handle_json(
        &w.shift_weight(),
        json!({"shift": {"state": first.clone()}}),
    )
    .await
    .unwrap_err();
    assert_eq!(direct.error_type(), ErrorType::ExecutionMismatch);
    assert_eq!(w.routing("orders").await, stable("1"));

    let err = w.prepare(second.clone()).await.unwrap_err();
    assert_eq!(err.error_type(), ErrorType::AliasConflict);
    assert!(err.to_string().contains("being put back"), "{err}");
    let status_change = json!({
        "detail-type": "Step Functions Execution Status Change", "source": "aws.states",
        "detail": {"executionArn": first_execution, "status": "ABORTED"}
    });
    handle_json(&w.rollback(), status_change).await.unwrap();
    assert_eq!(w.lock_holder().await, None, "the reconciler released it");

    let third = w.prepare(second).await.unwrap();
    let holder = w.lock_holder().await.expect("a lock");
    assert_eq!(
        (holder.execution_arn, holder.deployment_id),
        (
            w.execution_of(&third),
            third["deploymentId"].as_str().unwrap().to_owned()
        )
    );
    let promoted = w.shift(&third).await.unwrap();
    assert_eq!(w.routing("orders").await, stable("3"));
    w.release(&promoted).await.unwrap();
    assert_eq!(w.lock_holder().await, None);
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
