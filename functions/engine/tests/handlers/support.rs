//! The worlds and events the handler tests start from.

use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::Diagnostic;
use safeshift_core::Deployment;
use safeshift_core::alias::AliasState;
use safeshift_core::gates::GateReport;
use safeshift_core::gates::alarms::FiredAlarm;
use safeshift_core::names::Version;
use safeshift_core::prepare::VersionConfig;
use safeshift_core::rollout::Rollout;
use safeshift_engine::check_alarms::{CheckAlarms, CheckEvent};
use safeshift_engine::fake::{Call, FakeAws, STATE_MACHINE, active_version};
use safeshift_engine::guard::{LONGEST_WRITE, Scope};
use safeshift_engine::ports::LockHolder;
use safeshift_engine::rollback::Rollback;
use safeshift_engine::run_hook::RunHook;
use safeshift_engine::runtime::{self, Handler};
use safeshift_engine::shift_weight::{
    PrepareEvent, ReadyWait, ShiftEvent, ShiftWeight, ShiftWeightEvent, StepState,
};
use safeshift_engine::watch_gates::WatchGates;
use serde_json::{Value, json};

/// The role `FakeAws::function` gives every version.
pub const ROLE: &str = "arn:aws:iam::123456789012:role/app";
/// Execution d-1 of the engine's state machine (`fake::STATE_MACHINE`): its name is the deployment id.
pub const EXECUTION: &str = "arn:aws:states:us-east-1:123456789012:execution:safeshift-rollout:d-1";
/// Another execution of the engine's state machine, d-0: another deployment of the same alias.
pub const OTHER_EXECUTION: &str =
    "arn:aws:states:us-east-1:123456789012:execution:safeshift-rollout:d-0";
/// When the deployment holding `orders:live` read its alarms in Prepare: 2026-11-29T10:00:00Z.
pub const ALARMS_CHECKED_AT: u64 = 1_795_946_400;
/// The key of `orders:live`'s lock.
pub const KEY: &str = "orders:live";

/// Function `orders` with versions 6 and 7 published and Active under one role, alias `live` on 6 alone, and the
/// deployment's alarm `orders-errors` OK.
pub fn orders() -> FakeAws {
    let fake = FakeAws::new();
    fake.function("orders", &["6", "7"]);
    fake.set_alias("orders", "live", "6", &[]);
    fake.alarm("orders-errors", "OK", "no errors");
    fake
}

/// Execution d-1 runs, started with `input`: what the guard reads back before a handler acts.
pub fn running(fake: &FakeAws, input: &Value) {
    fake.execution(EXECUTION, "RUNNING", Some(&input.to_string()), vec![]);
}

/// Alias `orders:live` as it is now.
pub fn live(fake: &FakeAws) -> AliasState {
    fake.alias("orders", "live").expect("alias orders:live")
}

/// An alias state, for comparing with what the fake holds (the revision is whatever it is now).
pub fn routes(fake: &FakeAws, version: &str, weights: &[(&str, f64)]) -> AliasState {
    AliasState::new(version, weights, &live(fake).revision_id)
}

/// Version `version` of `orders`, published but still Pending.
pub fn pending(version: &str) -> VersionConfig {
    VersionConfig {
        state: "Pending".into(),
        ..active_version(version, ROLE)
    }
}

/// The deployment input most tests use: `orders:live` to version 7, gated by one alarm.
pub fn input(strategy: Value) -> Value {
    json!({"functionName": "orders", "alias": "live", "targetVersion": "7", "strategy": strategy,
           "alarms": ["orders-errors"]})
}

pub fn canary() -> Value {
    input(json!("Canary10Percent5Minutes"))
}

/// Prepare of `input` as the state machine sends it, for execution d-1, which runs with that input.
pub fn prepare_event(fake: &FakeAws, input: Value) -> Value {
    running(fake, &input);
    json!({"prepare": {"deploymentId": "d-1", "executionArn": EXECUTION, "input": input}})
}

/// Prepare of `input` for execution d-1, which runs with that input.
pub fn prepare(fake: &FakeAws, input: Value) -> ShiftWeightEvent {
    running(fake, &input);
    ShiftWeightEvent::Prepare(PrepareEvent {
        deployment_id: "d-1".into(),
        execution_arn: Some(EXECUTION.into()),
        input,
    })
}

/// The next shift of `rollout`, for execution d-1.
pub fn shift(rollout: Rollout) -> ShiftWeightEvent {
    ShiftWeightEvent::Shift(Box::new(ShiftEvent {
        state: StepState {
            rollout,
            gates: None,
        },
        execution_arn: Some(EXECUTION.into()),
    }))
}

/// The next shift as the state machine sends it: the state (a rollout, maybe with gates) and execution d-1.
pub fn shift_event(state: impl serde::Serialize) -> Value {
    json!({"shift": {"state": state, "executionArn": EXECUTION}})
}

/// The Catch's rollback as the state machine sends it, for execution d-1.
pub fn catch_event(state: impl serde::Serialize) -> Value {
    json!({"rollback": state, "executionArn": EXECUTION})
}

/// A bounded wait for a Pending target: a handful of looks, never a real minute.
pub fn no_wait() -> ReadyWait {
    ReadyWait {
        timeout: Duration::from_millis(50),
        interval: Duration::from_millis(10),
    }
}

pub fn shift_weight(fake: &FakeAws) -> ShiftWeight<FakeAws, FakeAws, FakeAws, FakeAws> {
    ShiftWeight::new(
        fake.clone(),
        fake.clone(),
        fake.clone(),
        fake.clone(),
        Scope::new(STATE_MACHINE),
        no_wait(),
    )
}

pub fn check_alarms(fake: &FakeAws) -> CheckAlarms<FakeAws> {
    CheckAlarms::new(fake.clone())
}

pub fn run_hook(fake: &FakeAws) -> RunHook<FakeAws, FakeAws, FakeAws> {
    RunHook::new(
        fake.clone(),
        fake.clone(),
        fake.clone(),
        Scope::new(STATE_MACHINE),
    )
}

pub fn watch_gates(fake: &FakeAws) -> WatchGates<FakeAws, FakeAws, FakeAws, FakeAws> {
    WatchGates::new(
        fake.clone(),
        fake.clone(),
        fake.clone(),
        fake.clone(),
        Scope::new(STATE_MACHINE),
    )
}

/// The rollback function; after a stop it waits `guard::LONGEST_WRITE` for a late write.
pub fn rollback(fake: &FakeAws) -> Rollback<FakeAws, FakeAws, FakeAws> {
    Rollback::new(
        fake.clone(),
        fake.clone(),
        fake.clone(),
        Scope::new(STATE_MACHINE),
        LONGEST_WRITE,
    )
}

/// One invocation as Lambda makes it: a JSON event in, a JSON output or a diagnostic out.
pub async fn invoke<H: Handler>(handler: H, event: Value) -> Result<Value, Diagnostic> {
    runtime::invoke(Arc::new(handler), event).await
}

/// The rollout prepare returns for `input` against the fake's alias as it is now (stable version 6), without
/// calling anything: `prepare_records_stable_version_and_revision_and_writes_nothing` checks the two agree.
/// Execution d-1 runs with `input`.
pub fn prepared(fake: &FakeAws, input: Value) -> Rollout {
    running(fake, &input);
    // As Prepare leaves it: d-1 holds the alias, found on stable version 6, listing the input's alarms.
    let alarms: Vec<&str> = input["alarms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    held_by_listing(fake, EXECUTION, "d-1", &alarms);
    rollout_of(fake, input)
}

/// The rollout prepare returns for `input` against the fake's alias as it is now; no execution is arranged.
pub fn rollout_of(fake: &FakeAws, input: Value) -> Rollout {
    Rollout::prepared(
        "d-1".into(),
        Deployment::from_value(input).unwrap(),
        vec![(Version::new(6).unwrap(), live(fake).revision_id)],
    )
}

/// The canary rollout after its first shift (10% on 7), done through the handler for running execution d-1.
pub async fn at_first_step(fake: &FakeAws) -> Rollout {
    shift_weight(fake)
        .handle(shift(prepared(fake, canary())))
        .await
        .unwrap()
}

/// A canary rollout of `input` at its first step (10%), started at t = 1,000 s, as the alias left it at "r1".
pub fn at_step_one(input: Value) -> Rollout {
    Rollout::prepared(
        "d-1".into(),
        Deployment::from_value(input).unwrap(),
        vec![(Version::new(6).unwrap(), "r0".into())],
    )
    .advanced(0, vec!["r1".into()], 1_000)
}

/// A canary rollout at its first step, started at t = 1,000 s, gated by `analysis` alone.
pub fn analysed_rollout(analysis: Value) -> Rollout {
    let mut i = canary();
    i["alarms"] = json!([]);
    i["analysis"] = analysis;
    at_step_one(i)
}

/// A canary rollout at its first step gated by `alarms` alone.
pub fn rollout_with_alarms(alarms: &[&str]) -> Rollout {
    let mut i = canary();
    i["alarms"] = json!(alarms);
    at_step_one(i)
}

pub fn check(rollout: Rollout) -> CheckEvent {
    CheckEvent {
        rollout,
        gates: None,
    }
}

/// The named gate's result in a report, as JSON (how the execution's output carries it).
pub fn result(report: &GateReport, gate: &str) -> Value {
    serde_json::to_value(
        report
            .result(gate)
            .unwrap_or_else(|| panic!("no {gate} result")),
    )
    .unwrap()
}

/// How many calls of `operation` (as `Call::operation` names it) the fake saw.
pub fn count(fake: &FakeAws, operation: &str) -> usize {
    fake.calls()
        .iter()
        .filter(|c| c.operation() == operation)
        .count()
}

/// The operations the fake saw, in order.
pub fn operations(fake: &FakeAws) -> Vec<&'static str> {
    fake.calls().iter().map(Call::operation).collect()
}

/// EventBridge's "Step Functions Execution Status Change" event for execution d-1.
pub fn status_change(status: &str) -> Value {
    status_change_of(EXECUTION, status)
}

/// EventBridge's "Step Functions Execution Status Change" event for execution `arn`.
pub fn status_change_of(arn: &str, status: &str) -> Value {
    json!({
        "version": "0", "id": "e-1", "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states", "account": "123456789012", "time": "2026-11-28T12:00:00Z", "region": "us-east-1",
        "resources": [arn],
        "detail": {"executionArn": arn, "stateMachineArn": STATE_MACHINE,
                   "name": arn.rsplit(':').next().unwrap(), "status": status}
    })
}

/// Execution d-1 of the canary input, ended with `status` (long ago), whose successful tasks returned `outputs`,
/// oldest first.
pub fn execution(fake: &FakeAws, status: &str, outputs: Vec<String>) {
    fake.execution(EXECUTION, status, Some(&canary().to_string()), outputs);
}

/// Execution d-1, whose Prepare recorded a rollout from version 6 to 7.
pub fn prepared_execution(fake: &FakeAws, status: &str) {
    let rollout = serde_json::to_string(&rollout_of(fake, canary())).unwrap();
    execution(fake, status, vec![rollout]);
}

/// Runs `event` through shift-weight for execution d-1 and records its output in the execution's history, as
/// Step Functions records a task's output.
pub async fn recorded(fake: &FakeAws, event: ShiftWeightEvent) -> Rollout {
    let rollout = shift_weight(fake).handle(event).await.unwrap();
    fake.record_output(EXECUTION, serde_json::to_string(&rollout).unwrap());
    rollout
}

/// The canary run by execution d-1 through the handlers up to its first step (10% on 7), each output recorded in
/// its history; then the execution ends with `status`, long ago (nothing left to settle). Its lock is still
/// held, as when no Catch ran.
pub async fn stopped_at_first_step(fake: &FakeAws, status: &str) -> Rollout {
    let prepared = recorded(fake, prepare(fake, canary())).await;
    let first = recorded(fake, shift(prepared)).await;
    fake.end_execution(EXECUTION, status, 1_000);
    first
}

/// Execution `arn` (deployment `deployment_id`) holds `orders:live`'s lock, for a day from now.
pub fn held_by(fake: &FakeAws, arn: &str, deployment_id: &str) -> LockHolder {
    held_by_listing(fake, arn, deployment_id, &[])
}

/// As [`held_by`], by a deployment that lists `alarms` (as its Prepare stores them on the hold).
pub fn held_by_listing(
    fake: &FakeAws,
    arn: &str,
    deployment_id: &str,
    alarms: &[&str],
) -> LockHolder {
    let holder = LockHolder {
        execution_arn: arn.into(),
        deployment_id: deployment_id.into(),
        acquired_at: 1_800_000_000,
        stable_version: Some("6".into()),
        alarms: alarms.iter().map(|a| a.to_string()).collect(),
        // Prepare read the alarms at 2026-11-29T10:00:00Z; the tests' alarm events change 5 s later.
        alarms_checked_at: Some(ALARMS_CHECKED_AT),
        fired: None,
    };
    fake.hold_lock(KEY, holder.clone(), safeshift_engine::unix_now() + 86_400);
    holder
}

/// A listed alarm of the deployment holding `orders:live` went to ALARM: recorded on the hold, as `watch-gates`
/// records it when the event finds no wait.
pub fn alarm_fired_on_the_hold(fake: &FakeAws) {
    let mut holder = fake.lock(KEY).expect("the alias is held");
    holder.fired = Some(FiredAlarm::new(
        "orders-errors",
        "Threshold Crossed: 5 errors",
        "2026-11-29T10:00:05Z",
    ));
    fake.hold_lock(KEY, holder, safeshift_engine::unix_now() + 86_400);
}
