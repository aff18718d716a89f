//! rollback: after the state machine's Catch, and as the reconciler of executions that ended without one — it
//! only ever undoes what this deployment did, with the revision it just read, and is idempotent.

use safeshift_core::alias::AliasUpdate;
use safeshift_engine::fake::Call;
use safeshift_engine::rollback::{Outcome, RollbackEvent};
use safeshift_engine::runtime::Handler;
use serde_json::json;

use crate::support::*;

fn catch(state: serde_json::Value) -> RollbackEvent {
    RollbackEvent::Catch { rollback: state }
}

fn revert(revision_id: &str) -> Call {
    Call::UpdateAlias {
        function: "orders".into(),
        alias: "live".into(),
        update: AliasUpdate {
            function_version: "6".into(),
            weights: Default::default(),
        },
        revision_id: revision_id.into(),
    }
}

#[tokio::test]
async fn rollback_when_already_stable_writes_nothing() {
    // GIVEN a prepared rollout and the alias still on 6 alone
    let fake = orders();
    let rollout = serde_json::to_value(prepared(&fake, canary())).unwrap();
    // WHEN rolled back twice
    for _ in 0..2 {
        let out = rollback(&fake)
            .handle(catch(rollout.clone()))
            .await
            .unwrap();
        // THEN each time already stable
        assert_eq!(out.outcome, Outcome::AlreadyStable);
        assert_eq!(out.alias, Some(live(&fake)));
    }
    assert!(fake.writes().is_empty());
}

#[tokio::test]
async fn rollback_reverts_a_split_alias_with_the_revision_just_read() {
    // GIVEN the canary at 10% and the Catch's state: the rollout and the caught error
    let fake = orders();
    let mut state = serde_json::to_value(at_first_step(&fake).await).unwrap();
    state["error"] = json!({"Error": "AlarmFired", "Cause": "..."});
    let read = live(&fake).revision_id;
    // WHEN rolled back
    let out = invoke(rollback(&fake), json!({ "rollback": state }))
        .await
        .unwrap();
    // THEN one write, guarded by the revision just read, puts 6 back alone
    assert_eq!(fake.writes()[1..], [revert(&read)]);
    assert_eq!(out["outcome"], "reverted");
    assert_eq!(out["alias"]["functionVersion"], "6");
    assert_eq!(out["alias"]["weights"], json!({}));
    assert_eq!(live(&fake), routes(&fake, "6", &[]));
}

#[tokio::test]
async fn rollback_after_a_failed_prepare_touches_nothing() {
    // GIVEN the alias split by another deployment, and a Catch state that never became a rollout
    let fake = orders();
    fake.set_alias("orders", "live", "5", &[("6", 0.2)]);
    let mut state = input(json!("AllAtOnce"));
    state["error"] = json!({"Error": "AliasConflict"});
    // WHEN rolled back
    let out = invoke(rollback(&fake), json!({ "rollback": state }))
        .await
        .unwrap();
    // THEN nothing was read or written
    assert_eq!(out["outcome"], "nothingShifted");
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}

#[tokio::test]
async fn the_reconciler_reverts_a_split_left_by_an_aborted_execution() {
    // GIVEN an aborted execution that prepared and left the alias split
    let fake = orders();
    prepared_execution(&fake, "ABORTED");
    fake.set_alias("orders", "live", "6", &[("7", 0.1)]);
    let read = live(&fake).revision_id;
    // WHEN its status change arrives
    let out = invoke(rollback(&fake), status_change("ABORTED"))
        .await
        .unwrap();
    // THEN reverted with the revision just read
    assert_eq!(out["outcome"], "reverted", "{out}");
    assert_eq!(fake.writes(), [revert(&read)]);
    assert_eq!(out["alias"]["functionVersion"], "6");
    assert_eq!(live(&fake), routes(&fake, "6", &[]));
}

#[tokio::test]
async fn the_reconciler_never_touches_an_alias_another_deployment_owns() {
    let fake = orders();
    prepared_execution(&fake, "TIMED_OUT");
    fake.set_alias("orders", "live", "6", &[("8", 0.3)]);
    let out = invoke(rollback(&fake), status_change("TIMED_OUT"))
        .await
        .unwrap();
    assert_eq!(out["outcome"], "leftAlone", "{out}");
    assert!(fake.writes().is_empty());
    assert_eq!(live(&fake), routes(&fake, "6", &[("8", 0.3)]));
}

#[tokio::test]
async fn an_execution_that_never_prepared_cannot_revert_another_attempts_split() {
    // GIVEN a second attempt at the same target that failed in Prepare (the alias was busy): the split toward its
    // target belongs to the first attempt, still running
    let fake = orders();
    execution(&fake, "FAILED", vec!["{}".into()]);
    fake.set_alias("orders", "live", "6", &[("7", 0.1)]);
    // WHEN its status change arrives
    let out = invoke(rollback(&fake), status_change("FAILED"))
        .await
        .unwrap();
    // THEN it read the execution and its history, and neither read nor wrote the alias
    assert_eq!(out["outcome"], "nothingShifted", "{out}");
    assert_eq!(
        operations(&fake),
        ["DescribeExecution", "GetExecutionHistory"]
    );
    assert_eq!(live(&fake), routes(&fake, "6", &[("7", 0.1)]));
}

#[tokio::test]
async fn the_reconciler_finds_the_stable_version_of_a_promoted_alias_in_the_history() {
    // GIVEN a failed execution that got as far as promoting 7
    let fake = orders();
    prepared_execution(&fake, "FAILED");
    fake.set_alias("orders", "live", "7", &[]);
    let read = live(&fake).revision_id;
    // WHEN its status change arrives
    let out = invoke(rollback(&fake), status_change("FAILED"))
        .await
        .unwrap();
    // THEN the stable version its Prepare recorded is put back
    assert_eq!(out["outcome"], "reverted", "{out}");
    assert_eq!(out["alias"]["functionVersion"], "6");
    assert_eq!(fake.writes(), [revert(&read)]);
    assert_eq!(count(&fake, "GetExecutionHistory"), 1);
}

#[tokio::test]
async fn the_reconciler_ignores_executions_that_succeeded() {
    let fake = orders();
    prepared_execution(&fake, "SUCCEEDED");
    fake.set_alias("orders", "live", "7", &[]);
    let out = invoke(rollback(&fake), status_change("SUCCEEDED"))
        .await
        .unwrap();
    assert_eq!(out["outcome"], "ignored");
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}

#[tokio::test]
async fn an_event_of_neither_shape_is_invalid_input() {
    let fake = orders();
    let err = invoke(rollback(&fake), json!({"functionName": "orders"}))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "InvalidInput");
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}

#[tokio::test]
async fn a_prepared_state_that_does_not_read_fails_loudly_instead_of_reporting_nothing_shifted() {
    // GIVEN a Catch state that was prepared (it has a deployment id) but does not read as a rollout
    let fake = orders();
    fake.set_alias("orders", "live", "6", &[("7", 0.1)]);
    let mut state = serde_json::to_value(prepared(&fake, canary())).unwrap();
    state["step"] = json!("first");
    // WHEN rolled back
    let err = invoke(rollback(&fake), json!({ "rollback": state }))
        .await
        .unwrap_err();
    // THEN the rollback fails (RollbackFailed, then the reconciler) rather than leave a split alias unreported
    assert_eq!(err.error_type, "Internal");
    assert!(fake.writes().is_empty());
}
