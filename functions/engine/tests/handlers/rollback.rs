//! rollback: after the state machine's Catch, and as the reconciler of executions that ended without one — it
//! only ever undoes what this execution wrote (its last write, or a write whose answer was lost), with the
//! revision it just read, and is idempotent.

use std::time::Duration;

use safeshift_core::Error;
use safeshift_core::alias::AliasUpdate;
use safeshift_engine::fake::{Call, STATE_MACHINE};
use safeshift_engine::guard::Scope;
use safeshift_engine::rollback::{Outcome, Rollback, RollbackEvent};
use safeshift_engine::runtime::Handler;
use safeshift_engine::shift_weight::{PrepareEvent, ShiftEvent, ShiftWeightEvent, StepState};
use serde_json::{Value, json};

use crate::support::*;

/// A newer execution of the engine's state machine, d-2: a later deployment of the same alias.
const NEWER: &str = "arn:aws:states:us-east-1:123456789012:execution:safeshift-rollout:d-2";

fn catch(state: Value) -> RollbackEvent {
    RollbackEvent::Catch {
        rollback: state,
        execution_arn: Some(EXECUTION.into()),
    }
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
    let out = invoke(rollback(&fake), catch_event(state)).await.unwrap();
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
    let out = invoke(rollback(&fake), catch_event(state)).await.unwrap();
    // THEN nothing was read or written
    assert_eq!(out["outcome"], "nothingShifted");
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}

#[tokio::test(start_paused = true)]
async fn the_reconciler_reverts_a_split_left_by_an_aborted_execution() {
    // GIVEN an execution that prepared and was aborted just now, and the alias at its first step's split: a write
    // that landed although its answer was lost (the history has no record of it)
    let fake = orders();
    prepared_execution(&fake, "ABORTED");
    fake.end_execution(EXECUTION, "ABORTED", safeshift_engine::unix_now());
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
    // THEN it read the execution, whether it was reconciled already, and its history, released whatever lock
    // it held itself, marked the execution reconciled, and neither read nor wrote the alias
    assert_eq!(out["outcome"], "nothingShifted", "{out}");
    assert_eq!(
        operations(&fake),
        [
            "DescribeExecution",
            "GetItem",
            "GetExecutionHistory",
            "DeleteItem",
            "PutItem"
        ]
    );
    assert_eq!(
        fake.calls().iter().rev().nth(1),
        Some(&Call::ReleaseLock {
            key: KEY.into(),
            execution_arn: EXECUTION.into()
        })
    );
    assert_eq!(live(&fake), routes(&fake, "6", &[("7", 0.1)]));
}

#[tokio::test]
async fn the_reconciler_finds_the_stable_version_of_a_promoted_alias_in_the_history() {
    // GIVEN an execution that promoted 7 (each task's output in its history), then failed with no Catch run
    let fake = orders();
    let prepared = recorded(&fake, prepare(&fake, canary())).await;
    let first = recorded(&fake, shift(prepared)).await;
    let promoted = recorded(&fake, shift(first)).await;
    assert!(promoted.promoted);
    fake.end_execution(EXECUTION, "FAILED", 1_000);
    let read = live(&fake).revision_id;
    assert_eq!(promoted.aliases[0].revision_id, read);
    // WHEN its status change arrives
    let out = invoke(rollback(&fake), status_change("FAILED"))
        .await
        .unwrap();
    // THEN the stable version its history recorded is put back
    assert_eq!(out["outcome"], "reverted", "{out}");
    assert_eq!(out["alias"]["functionVersion"], "6");
    assert_eq!(fake.writes()[2..], [revert(&read)]);
    assert_eq!(count(&fake, "GetExecutionHistory"), 1);
    assert_eq!(live(&fake), routes(&fake, "6", &[]));
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
    let err = invoke(rollback(&fake), catch_event(state))
        .await
        .unwrap_err();
    // THEN the rollback fails (RollbackFailed, then the reconciler) rather than leave a split alias unreported
    assert_eq!(err.error_type, "Internal");
    assert!(fake.writes().is_empty());
}

// ---- ownership: only this execution's own writes are undone ---------------------------------------------

/// Changes a person makes to the alias while the canary sits at 10%: another weight, and the very same routing
/// set again by hand (a new revision).
const PERSONS_CHANGES: [(&str, f64); 2] = [("7", 0.5), ("7", 0.1)];

#[tokio::test]
async fn a_persons_change_mid_rollout_is_left_alone_by_the_catch_rollback() {
    for change in PERSONS_CHANGES {
        // GIVEN the canary at 10%, then a person sets the alias's routing
        let fake = orders();
        let rollout = at_first_step(&fake).await;
        fake.set_alias("orders", "live", "6", &[change]);
        let theirs = live(&fake);
        // WHEN the deployment fails and its Catch rolls back
        let out = invoke(rollback(&fake), catch_event(&rollout))
            .await
            .unwrap();
        // THEN their alias stands, revision and all, and only the shift ever wrote
        assert_eq!(out["outcome"], "leftAlone", "{change:?}: {out}");
        assert!(
            out["reason"]
                .as_str()
                .unwrap()
                .contains("did not leave it at"),
            "{out}"
        );
        assert_eq!(fake.writes().len(), 1, "{change:?}");
        assert_eq!(live(&fake), theirs);
    }
}

#[tokio::test]
async fn a_persons_change_mid_rollout_is_left_alone_by_the_reconciler() {
    for change in PERSONS_CHANGES {
        // GIVEN an execution that stopped at 10% without its Catch, and a person who set the alias's routing
        let fake = orders();
        stopped_at_first_step(&fake, "TIMED_OUT").await;
        fake.set_alias("orders", "live", "6", &[change]);
        let theirs = live(&fake);
        // WHEN its status change arrives
        let out = invoke(rollback(&fake), status_change("TIMED_OUT"))
            .await
            .unwrap();
        // THEN their alias stands
        assert_eq!(out["outcome"], "leftAlone", "{change:?}: {out}");
        assert_eq!(fake.writes().len(), 1, "{change:?}");
        assert_eq!(live(&fake), theirs);
    }
}

#[tokio::test]
async fn a_write_whose_answer_was_lost_is_reverted_by_the_catch_rollback() {
    // GIVEN the canary at 10%, then its promotion landed but its answer was lost: the alias routes exactly the
    // next step, at a revision the rollout never read, and the state the Catch holds is still the 10% one
    let fake = orders();
    let rollout = at_first_step(&fake).await;
    fake.set_alias("orders", "live", "7", &[]);
    let read = live(&fake).revision_id;
    assert_ne!(read, rollout.aliases[0].revision_id);
    // WHEN rolled back
    let out = invoke(rollback(&fake), catch_event(&rollout))
        .await
        .unwrap();
    // THEN its own write is undone, guarded by the revision just read
    assert_eq!(out["outcome"], "reverted", "{out}");
    assert_eq!(fake.writes()[1..], [revert(&read)]);
    assert_eq!(live(&fake), routes(&fake, "6", &[]));
}

#[tokio::test]
async fn a_newer_deployments_promotion_is_left_alone_while_it_holds_the_lock() {
    // GIVEN d-1 stopped at 10% without a Catch; then d-2, running, took over the lock and promoted 7 — exactly
    // the routing of d-1's next step
    let fake = orders();
    stopped_at_first_step(&fake, "FAILED").await;
    let mut newer = canary();
    newer["strategy"] = json!("AllAtOnce");
    fake.execution(NEWER, "RUNNING", Some(&newer.to_string()), vec![]);
    let holder = held_by(&fake, NEWER, "d-2");
    fake.set_alias("orders", "live", "7", &[]);
    let theirs = live(&fake);
    // WHEN d-1's FAILED event is delivered (again)
    let out = invoke(rollback(&fake), status_change("FAILED"))
        .await
        .unwrap();
    // THEN the alias is d-2's: not read, not written, and d-2 keeps its lock
    assert_eq!(out["outcome"], "leftAlone", "{out}");
    assert!(out["reason"].as_str().unwrap().contains(NEWER), "{out}");
    assert_eq!(count(&fake, "GetAlias"), 2, "only d-1's own shift read it");
    assert_eq!(fake.writes().len(), 1);
    assert_eq!(live(&fake), theirs);
    assert_eq!(fake.lock(KEY), Some(holder));
}

#[tokio::test]
async fn a_newer_deployments_promotion_is_left_alone_after_the_older_ones_own_rollback() {
    // GIVEN d-1 at 10% failed, and its own RollBack reverted the alias and released the lock (its report is in
    // the history); then d-2 promoted 7 and released the lock too
    let fake = orders();
    let prepared = recorded(&fake, prepare(&fake, canary())).await;
    let first = recorded(&fake, shift(prepared)).await;
    let report = invoke(rollback(&fake), catch_event(&first)).await.unwrap();
    assert_eq!(report["outcome"], "reverted");
    fake.record_output(EXECUTION, report.to_string());
    fake.end_execution(EXECUTION, "FAILED", 1_000);
    assert_eq!(fake.lock(KEY), None);
    fake.set_alias("orders", "live", "7", &[]);
    let theirs = live(&fake);
    // WHEN d-1's FAILED event is delivered (again)
    let out = invoke(rollback(&fake), status_change("FAILED"))
        .await
        .unwrap();
    // THEN what d-1's own rollback decided stands: d-2's promotion is not touched
    assert_eq!(out["outcome"], "ignored", "{out}");
    assert_eq!(fake.writes().len(), 2, "the shift and d-1's own revert");
    assert_eq!(live(&fake), theirs);
}

#[tokio::test]
async fn a_newer_deployments_promotion_is_left_alone_after_the_reconciler_reverted_the_older_one() {
    // GIVEN d-1 stopped at 10% without a Catch, and the reconciler reverted it on the first delivery of its
    // ABORTED event (releasing its lock); then d-2 promoted 7 and released the lock
    let fake = orders();
    stopped_at_first_step(&fake, "ABORTED").await;
    let first = invoke(rollback(&fake), status_change("ABORTED"))
        .await
        .unwrap();
    assert_eq!(first["outcome"], "reverted");
    fake.set_alias("orders", "live", "7", &[]);
    let theirs = live(&fake);
    // WHEN the same event is delivered again
    let out = invoke(rollback(&fake), status_change("ABORTED"))
        .await
        .unwrap();
    // THEN d-2's promotion stands
    assert_ne!(out["outcome"], "reverted", "{out}");
    assert_eq!(live(&fake), theirs);
}

// ---- the reconciler trusts only what Step Functions says of the execution --------------------------------

#[tokio::test]
async fn a_failed_event_for_an_execution_that_succeeded_or_runs_is_ignored() {
    for status in ["SUCCEEDED", "RUNNING"] {
        // GIVEN execution d-1 says `status`, and the alias at its first step's split
        let fake = orders();
        prepared_execution(&fake, status);
        fake.set_alias("orders", "live", "6", &[("7", 0.1)]);
        let before = live(&fake);
        // WHEN an event says it FAILED
        let out = invoke(rollback(&fake), status_change("FAILED"))
            .await
            .unwrap();
        // THEN Step Functions is believed, not the event: nothing read but the execution, nothing written
        assert_eq!(out["outcome"], "ignored", "{status}: {out}");
        assert!(out["reason"].as_str().unwrap().contains(status), "{out}");
        assert_eq!(operations(&fake), ["DescribeExecution"], "{status}");
        assert_eq!(live(&fake), before);
    }
}

#[tokio::test]
async fn an_execution_of_another_state_machine_is_ignored() {
    // GIVEN a FAILED execution of another state machine whose history holds a rollout of orders:live
    let fake = orders();
    let rollout = serde_json::to_string(&rollout_of(&fake, canary())).unwrap();
    fake.execution_of(
        "arn:aws:states:us-east-1:123456789012:stateMachine:someone-else",
        EXECUTION,
        "FAILED",
        Some(&canary().to_string()),
        vec![rollout],
    );
    fake.set_alias("orders", "live", "6", &[("7", 0.1)]);
    let before = live(&fake);
    // WHEN its status change arrives
    let out = invoke(rollback(&fake), status_change("FAILED"))
        .await
        .unwrap();
    // THEN it is not this engine's to reconcile
    assert_eq!(out["outcome"], "ignored", "{out}");
    assert!(out["reason"].as_str().unwrap().contains("someone-else"));
    assert_eq!(operations(&fake), ["DescribeExecution"]);
    assert_eq!(live(&fake), before);
}

/// How long the reconciler waits after a stop for a late write: the deployed engine's own bound, on paused time.
const SETTLE: Duration = safeshift_engine::guard::LONGEST_WRITE;

#[tokio::test(start_paused = true)]
async fn a_write_that_lands_after_the_stop_is_reverted_once_the_writes_have_settled() {
    // GIVEN d-1 at 10%, aborted just now while its promotion was in flight
    let fake = orders();
    stopped_at_first_step(&fake, "ABORTED").await;
    fake.end_execution(EXECUTION, "ABORTED", safeshift_engine::unix_now());
    let shifted = fake.writes().len();
    // ... and the in-flight promotion lands after the reconciler's first revert
    let late = fake.clone();
    let landed = tokio::spawn(async move {
        while late.writes().len() == shifted {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        late.set_alias("orders", "live", "7", &[]);
    });
    let started = tokio::time::Instant::now();
    // WHEN its status change arrives
    let rollback = Rollback::new(
        fake.clone(),
        fake.clone(),
        fake.clone(),
        Scope::new(STATE_MACHINE),
        SETTLE,
    );
    let out = invoke(rollback, status_change("ABORTED")).await.unwrap();
    landed.await.unwrap();
    // THEN it reverted, waited until no write of the execution could still land, and reverted the late one
    assert_eq!(out["outcome"], "reverted", "{out}");
    assert!(
        out["reason"]
            .as_str()
            .unwrap()
            .contains("landed after it stopped"),
        "{out}"
    );
    assert!(started.elapsed() >= SETTLE - Duration::from_secs(2));
    let reverts = &fake.writes()[shifted..];
    assert_eq!(reverts.len(), 2, "{reverts:?}");
    let to_stable = |w: &Call| {
        matches!(w, Call::UpdateAlias { update, .. }
            if update.function_version == "6" && update.weights.is_empty())
    };
    assert!(reverts.iter().all(to_stable), "{reverts:?}");
    assert_eq!(live(&fake), routes(&fake, "6", &[]));
    assert_eq!(fake.lock(KEY), None);
}

#[tokio::test(start_paused = true)]
async fn a_newer_deployment_waits_while_the_reconciler_settles_then_takes_the_alias() {
    // GIVEN d-1, prepared (holding the lock) with nothing shifted, aborted just now
    let fake = orders();
    recorded(&fake, prepare(&fake, canary())).await;
    fake.end_execution(EXECUTION, "ABORTED", safeshift_engine::unix_now());
    // ... and, while the reconciler waits for d-1's late writes, d-2 deploys the same input again: it is refused
    // (d-1's alias is still being put back); once the reconciler is done, it takes the alias and shifts its first
    // step, the very routing d-1's first step would have written
    fake.execution(NEWER, "RUNNING", Some(&canary().to_string()), vec![]);
    let newer = fake.clone();
    let prepare_d2 = || {
        ShiftWeightEvent::Prepare(PrepareEvent {
            deployment_id: "d-2".into(),
            execution_arn: Some(NEWER.into()),
            input: canary(),
        })
    };
    let redeployed = tokio::spawn(async move {
        while count(&newer, "GetAlias") < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let d2 = shift_weight(&newer);
        let err = d2.handle(prepare_d2()).await.unwrap_err();
        assert!(
            matches!(&err, Error::AliasConflict { reason, .. } if reason.contains("being put back")),
            "{err:?}"
        );
        while newer.lock(KEY).is_some() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let prepared = d2.handle(prepare_d2()).await.unwrap();
        d2.handle(ShiftWeightEvent::Shift(Box::new(ShiftEvent {
            state: StepState {
                rollout: prepared,
                gates: None,
            },
            execution_arn: Some(NEWER.into()),
        })))
        .await
        .unwrap();
    });
    // WHEN d-1's status change arrives
    let rollback = Rollback::new(
        fake.clone(),
        fake.clone(),
        fake.clone(),
        Scope::new(STATE_MACHINE),
        SETTLE,
    );
    let out = invoke(rollback, status_change("ABORTED")).await.unwrap();
    redeployed.await.unwrap();
    // THEN d-2's step stands, and d-2 keeps the alias: only d-2 ever wrote
    assert_ne!(out["outcome"], "reverted", "{out}");
    assert_eq!(fake.writes().len(), 1, "{:?}", fake.writes());
    assert_eq!(live(&fake), routes(&fake, "6", &[("7", 0.1)]));
    assert_eq!(fake.lock(KEY).map(|h| h.execution_arn), Some(NEWER.into()));
}

// ---- a write whose answer was lost, retried ---------------------------------------------------------------

#[tokio::test]
async fn a_revert_whose_retry_finds_it_landed_succeeds() {
    // GIVEN the canary at 10%, and a revert that lands but whose answer is lost: the SDK's retry finds the
    // revision the revert itself produced and fails its precondition
    let fake = orders();
    let rollout = at_first_step(&fake).await;
    fake.lose_next_write_answer(Error::AliasConflict {
        alias: "live".into(),
        reason: "its revision is no longer the one read: someone else updated it".into(),
    });
    // WHEN rolled back
    let out = invoke(rollback(&fake), catch_event(&rollout))
        .await
        .unwrap();
    // THEN reverted, with one write, and the alias as read back
    assert_eq!(out["outcome"], "reverted", "{out}");
    assert_eq!(fake.writes().len(), 2, "the shift and one revert");
    assert_eq!(live(&fake), routes(&fake, "6", &[]));
    assert_eq!(out["alias"]["revisionId"], json!(live(&fake).revision_id));
}
