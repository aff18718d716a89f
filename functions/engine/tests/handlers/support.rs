//! The worlds and events the handler tests start from.

use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::Diagnostic;
use safeshift_core::Deployment;
use safeshift_core::alias::AliasState;
use safeshift_core::gates::GateReport;
use safeshift_core::names::Version;
use safeshift_core::prepare::VersionConfig;
use safeshift_core::rollout::Rollout;
use safeshift_engine::check_alarms::{CheckAlarms, CheckEvent};
use safeshift_engine::fake::{Call, FakeAws, active_version};
use safeshift_engine::rollback::Rollback;
use safeshift_engine::run_hook::RunHook;
use safeshift_engine::runtime::{self, Handler};
use safeshift_engine::shift_weight::{
    PrepareEvent, ReadyWait, ShiftEvent, ShiftWeight, ShiftWeightEvent,
};
use serde_json::{Value, json};

/// The role `FakeAws::function` gives every version.
pub const ROLE: &str = "arn:aws:iam::123456789012:role/app";
pub const EXECUTION: &str = "arn:aws:states:us-east-1:123456789012:execution:safeshift:d-1";

/// Function `orders` with versions 6 and 7 published and Active under one role, and alias `live` on 6 alone.
pub fn orders() -> FakeAws {
    let fake = FakeAws::new();
    fake.function("orders", &["6", "7"]);
    fake.set_alias("orders", "live", "6", &[]);
    fake
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

pub fn prepare_event(input: Value) -> Value {
    json!({"prepare": {"deploymentId": "d-1", "input": input}})
}

pub fn prepare(input: Value) -> ShiftWeightEvent {
    ShiftWeightEvent::Prepare(PrepareEvent {
        deployment_id: "d-1".into(),
        input,
    })
}

pub fn shift(rollout: Rollout) -> ShiftWeightEvent {
    ShiftWeightEvent::Shift(Box::new(ShiftEvent {
        rollout,
        gates: None,
    }))
}

/// A bounded wait for a Pending target: a handful of looks, never a real minute.
pub fn no_wait() -> ReadyWait {
    ReadyWait {
        timeout: Duration::from_millis(50),
        interval: Duration::from_millis(10),
    }
}

pub fn shift_weight(fake: &FakeAws) -> ShiftWeight<FakeAws> {
    ShiftWeight::new(fake.clone(), no_wait())
}

pub fn check_alarms(fake: &FakeAws) -> CheckAlarms<FakeAws> {
    CheckAlarms::new(fake.clone())
}

pub fn run_hook(fake: &FakeAws) -> RunHook<FakeAws> {
    RunHook::new(fake.clone())
}

pub fn rollback(fake: &FakeAws) -> Rollback<FakeAws, FakeAws> {
    Rollback::new(fake.clone(), fake.clone())
}

/// One invocation as Lambda makes it: a JSON event in, a JSON output or a diagnostic out.
pub async fn invoke<H: Handler>(handler: H, event: Value) -> Result<Value, Diagnostic> {
    runtime::invoke(Arc::new(handler), event).await
}

/// The rollout prepare returns for `input` against the fake's alias as it is now (stable version 6), without
/// calling anything: `prepare_records_stable_version_and_revision_and_writes_nothing` checks the two agree.
pub fn prepared(fake: &FakeAws, input: Value) -> Rollout {
    Rollout::prepared(
        "d-1".into(),
        Deployment::from_value(input).unwrap(),
        Version::new(6).unwrap(),
        live(fake).revision_id,
    )
}

/// The canary rollout after its first shift (10% on 7), done through the handler.
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
        Version::new(6).unwrap(),
        "r0".into(),
    )
    .advanced(0, "r1".into(), 1_000)
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
    json!({
        "version": "0", "id": "e-1", "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states", "account": "123456789012", "time": "2026-11-28T12:00:00Z", "region": "us-east-1",
        "resources": [EXECUTION],
        "detail": {"executionArn": EXECUTION,
                   "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:safeshift",
                   "name": "d-1", "status": status}
    })
}

/// Execution d-1 of the canary input, ended with `status`, whose successful tasks returned `outputs`.
pub fn execution(fake: &FakeAws, status: &str, outputs: Vec<String>) {
    fake.execution(EXECUTION, status, Some(&canary().to_string()), outputs);
}

/// Execution d-1, whose Prepare recorded a rollout from version 6 to 7.
pub fn prepared_execution(fake: &FakeAws, status: &str) {
    let rollout = serde_json::to_string(&prepared(fake, canary())).unwrap();
    execution(fake, status, vec![rollout]);
}
