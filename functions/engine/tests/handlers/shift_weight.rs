//! shift-weight: prepare checks everything before any write; shift moves the alias one step, guarded by the
//! revision it read, and never overwrites someone else's change.

use safeshift_core::ErrorType;
use safeshift_core::alias::AliasUpdate;
use safeshift_core::rollout::Rollout;
use safeshift_engine::fake::{Call, FakeAws, active_version};
use safeshift_engine::runtime::Handler;
use serde_json::{Value, json};

use crate::support::*;

fn update(version: &str, weights: &[(&str, f64)]) -> AliasUpdate {
    AliasUpdate {
        function_version: version.into(),
        weights: weights.iter().map(|(v, w)| (v.to_string(), *w)).collect(),
    }
}

fn write(update: AliasUpdate, revision_id: &str) -> Call {
    Call::UpdateAlias {
        function: "orders".into(),
        alias: "live".into(),
        update,
        revision_id: revision_id.into(),
    }
}

fn reads_of(fake: &FakeAws, version: &str) -> usize {
    fake.calls()
        .iter()
        .filter(|c| matches!(c, Call::GetVersion { version: v, .. } if v == version))
        .count()
}

// ---- prepare ----------------------------------------------------------------------------------------------

#[tokio::test]
async fn prepare_records_stable_version_and_revision_and_writes_nothing() {
    // GIVEN alias live on version 6 alone
    let fake = orders();
    let revision = live(&fake).revision_id;
    // WHEN a canary to 7 is prepared
    let rollout = invoke(shift_weight(&fake), prepare_event(&fake, canary()))
        .await
        .unwrap();
    // THEN the rollout nests the alias with the stable version and the revision read, and nothing was written
    assert_eq!(
        rollout["aliases"],
        json!([{"functionName": "orders", "name": "live", "stableVersion": "6", "targetVersion": "7",
               "revisionId": revision}])
    );
    assert!(rollout.get("stableVersion").is_none() && rollout.get("revisionId").is_none());
    assert_eq!(rollout["deploymentId"], "d-1");
    assert_eq!(rollout["step"], Value::Null);
    assert_eq!(rollout["stepCount"], 2);
    assert!(fake.writes().is_empty());
    assert_eq!(
        serde_json::from_value::<Rollout>(rollout).unwrap(),
        prepared(&fake, canary())
    );
}

#[tokio::test]
async fn bad_input_is_rejected_before_any_call() {
    let fake = orders();
    let mut bad = canary();
    bad["targetVersion"] = json!("$LATEST");
    let err = shift_weight(&fake)
        .handle(prepare(&fake, bad))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::InvalidInput);
    assert!(err.to_string().contains("`targetVersion`"), "{err}");
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}

#[tokio::test]
async fn an_event_of_neither_shape_is_invalid_input() {
    let fake = orders();
    let err = invoke(shift_weight(&fake), json!({"functionName": "orders"}))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "InvalidInput");
    assert!(
        err.error_message.starts_with(
            "invalid deployment input: `event`: expected {\"prepare\": …}, {\"shift\": {\"state\": \
             <rollout>, …}} or {\"release\": …}"
        ),
        "{}",
        err.error_message
    );
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}

#[tokio::test]
async fn missing_alias_and_missing_function_are_named() {
    // GIVEN the function exists ($LATEST answers) but not the alias
    let fake = FakeAws::new();
    fake.function("orders", &["6", "7"]);
    let err = invoke(
        shift_weight(&fake),
        prepare_event(&fake, input(json!("AllAtOnce"))),
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_type, "ResourceNotFound");
    assert_eq!(err.error_message, "alias `orders:live` does not exist");
    assert!(fake.writes().is_empty());

    // GIVEN neither exists
    let fake = FakeAws::new();
    let err = invoke(
        shift_weight(&fake),
        prepare_event(&fake, input(json!("AllAtOnce"))),
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_type, "ResourceNotFound");
    assert_eq!(err.error_message, "function `orders` does not exist");
    assert!(fake.writes().is_empty());
}

#[tokio::test]
async fn missing_target_version_is_named() {
    let fake = FakeAws::new();
    fake.function("orders", &["6"]);
    fake.set_alias("orders", "live", "6", &[]);
    fake.alarm("orders-errors", "OK", "no errors");
    let err = shift_weight(&fake)
        .handle(prepare(&fake, input(json!("AllAtOnce"))))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::ResourceNotFound);
    assert_eq!(err.to_string(), "version `orders:7` does not exist");
    assert!(fake.writes().is_empty());
}

#[tokio::test]
async fn a_split_alias_is_a_deployment_in_progress() {
    let fake = orders();
    fake.set_alias("orders", "live", "5", &[("6", 0.1)]);
    let err = shift_weight(&fake)
        .handle(prepare(&fake, input(json!("AllAtOnce"))))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::AliasConflict);
    assert!(err.to_string().contains("deployment in progress"), "{err}");
    assert!(fake.writes().is_empty());
}

#[tokio::test]
async fn target_equal_to_stable_is_rejected() {
    let fake = orders();
    fake.set_alias("orders", "live", "7", &[]);
    let err = shift_weight(&fake)
        .handle(prepare(&fake, input(json!("AllAtOnce"))))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::InvalidInput);
    assert!(err.to_string().contains("nothing to deploy"), "{err}");
    assert!(fake.writes().is_empty());
}

#[tokio::test]
async fn versions_with_different_roles_are_rejected_up_front() {
    let fake = orders();
    fake.version(
        "orders",
        active_version("7", "arn:aws:iam::123456789012:role/other"),
    );
    let err = shift_weight(&fake)
        .handle(prepare(&fake, input(json!("AllAtOnce"))))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::IncompatibleVersions);
    assert!(err.to_string().contains("execution roles differ"), "{err}");
    assert!(fake.writes().is_empty());
}

#[tokio::test]
async fn a_pending_target_is_waited_for_then_used() {
    // GIVEN version 7 answers Pending twice, then Active
    let fake = orders();
    fake.version_sequence(
        "orders",
        vec![pending("7"), pending("7"), active_version("7", ROLE)],
    );
    // WHEN prepared
    let rollout = shift_weight(&fake)
        .handle(prepare(&fake, canary()))
        .await
        .unwrap();
    // THEN it looked three times and went on
    assert_eq!(rollout.aliases[0].stable_version.to_string(), "6");
    assert_eq!(reads_of(&fake, "7"), 3);
    assert!(fake.writes().is_empty());
}

#[tokio::test]
async fn a_target_pending_too_long_fails_without_shifting() {
    let fake = orders();
    fake.version("orders", pending("7"));
    let err = shift_weight(&fake)
        .handle(prepare(&fake, input(json!("AllAtOnce"))))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::TargetNotReady);
    assert!(fake.writes().is_empty());
    // Bounded: a 50 ms budget polled every 10 ms is a handful of reads, not an endless loop.
    let reads = reads_of(&fake, "7");
    assert!((2..=7).contains(&reads), "{reads} reads");
}

#[tokio::test]
async fn a_target_whose_last_update_failed_is_not_ready() {
    let fake = orders();
    let mut failed = active_version("7", ROLE);
    failed.last_update_status = Some("Failed".into());
    failed.state_reason = Some("image pull failed".into());
    fake.version("orders", failed);
    let err = shift_weight(&fake)
        .handle(prepare(&fake, input(json!("AllAtOnce"))))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::TargetNotReady);
    assert_eq!(
        err.to_string(),
        "target version 7 is not ready: its last update failed: image pull failed"
    );
    assert!(fake.writes().is_empty());
}

// ---- shift ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_update_carries_the_revision_just_read() {
    // GIVEN a prepared canary and the alias at the revision prepare read
    let fake = orders();
    let read = live(&fake).revision_id;
    // WHEN the first step is shifted
    let shifted = shift_weight(&fake)
        .handle(shift(prepared(&fake, canary())))
        .await
        .unwrap();
    // THEN one write, guarded by that revision, splits 10% to 7; the rollout keeps the revision it left
    assert_eq!(fake.writes(), [write(update("6", &[("7", 0.1)]), &read)]);
    assert_eq!((shifted.step, shifted.percent), (Some(0), 10.0));
    assert_eq!(shifted.bake_seconds, 300);
    assert_eq!(live(&fake), routes(&fake, "6", &[("7", 0.1)]));
    assert_eq!(shifted.aliases[0].revision_id, live(&fake).revision_id);
    assert_ne!(shifted.aliases[0].revision_id, read);
}

#[tokio::test]
async fn promotion_points_the_alias_at_the_target_and_clears_routing() {
    // GIVEN the canary at 10%
    let fake = orders();
    let split = at_first_step(&fake).await;
    let read = live(&fake).revision_id;
    // WHEN the last step is shifted
    let done = shift_weight(&fake).handle(shift(split)).await.unwrap();
    // THEN the alias points at 7 alone
    assert_eq!(fake.writes().len(), 2);
    assert_eq!(fake.writes()[1], write(update("7", &[]), &read));
    assert_eq!(live(&fake), routes(&fake, "7", &[]));
    assert!(done.promoted);
    assert_eq!(done.percent, 100.0);
    assert_eq!(done.aliases[0].revision_id, live(&fake).revision_id);
}

#[tokio::test]
async fn a_revision_mismatch_on_write_is_an_alias_conflict() {
    // GIVEN someone changes the alias between the shift's read and its write
    let fake = orders();
    let read = live(&fake).revision_id;
    fake.set_alias_before_next_write("orders", "live", "6", &[("8", 0.3)]);
    // WHEN the first step is shifted
    let err = shift_weight(&fake)
        .handle(shift(prepared(&fake, canary())))
        .await
        .unwrap_err();
    // THEN the stale write is refused once, not retried, and their change stands
    assert_eq!(err.error_type(), ErrorType::AliasConflict);
    assert!(
        err.to_string()
            .contains(&format!("its revision is no longer {read}")),
        "{err}"
    );
    assert_eq!(fake.writes().len(), 1, "a conflict is not retried");
    assert_eq!(live(&fake), routes(&fake, "6", &[("8", 0.3)]));
}

#[tokio::test]
async fn an_alias_changed_by_someone_else_is_not_overwritten() {
    // GIVEN a prepared rollout, then someone points the alias at 8
    let fake = orders();
    let rollout = prepared(&fake, canary());
    fake.set_alias("orders", "live", "8", &[]);
    // WHEN shifted
    let err = shift_weight(&fake)
        .handle(shift(rollout))
        .await
        .unwrap_err();
    // THEN conflict, no write, and their alias stands
    assert_eq!(err.error_type(), ErrorType::AliasConflict);
    assert!(fake.writes().is_empty());
    assert_eq!(live(&fake), routes(&fake, "8", &[]));
}

#[tokio::test]
async fn running_a_step_twice_writes_once_and_succeeds_twice() {
    let fake = orders();
    let rollout = prepared(&fake, canary());
    let first = shift_weight(&fake)
        .handle(shift(rollout.clone()))
        .await
        .unwrap();
    // The retry sees the alias as the first run left it.
    let second = shift_weight(&fake).handle(shift(rollout)).await.unwrap();
    assert_eq!(fake.writes().len(), 1);
    // The same rollout, but for when the step was last confirmed: the retry stamps its own time, never earlier.
    let (Some(first_started), Some(second_started)) =
        (first.step_started_at, second.step_started_at)
    else {
        panic!("a shifted rollout records its step's start");
    };
    assert!(second_started >= first_started);
    let without_start = |r: Rollout| Rollout {
        step_started_at: None,
        ..r
    };
    assert_eq!(without_start(first), without_start(second));
}

#[tokio::test]
async fn the_rollout_keeps_each_passed_steps_verdict() {
    // GIVEN the canary at 10% and the gates' report on that step, beside the rollout as the state machine sends it
    let fake = orders();
    let mut state = serde_json::to_value(at_first_step(&fake).await).unwrap();
    state["gates"] = json!({"verdict": "pass", "step": 0, "extensions": 0, "results": [
        {"gate": "alarms", "verdict": "pass", "findings": ["no alarm in ALARM (1 checked)"],
         "evidence": {"alarms": [{"name": "orders-errors", "kind": "metric", "state": "OK", "reason": "fine",
                                  "updatedAt": null}]}}]});
    // WHEN the next step is shifted
    let next = invoke(shift_weight(&fake), shift_event(state))
        .await
        .unwrap();
    // THEN the promoted rollout records the passed step's verdict
    assert_eq!(next["promoted"], true);
    assert_eq!(
        next["passedGates"],
        json!([{"step": 1, "percent": 10.0, "verdict": "pass",
                "summary": "pass: no alarm in ALARM (1 checked)"}])
    );
    assert!(next.get("gates").is_none(), "{next:#}");
}

#[tokio::test]
async fn a_failed_read_writes_nothing() {
    // GIVEN GetAlias is throttled past the SDK's retries
    let fake = orders();
    fake.fail_next(
        "GetAlias",
        safeshift_core::Error::Throttled {
            operation: "GetAlias".into(),
        },
    );
    // WHEN shifted
    let err = invoke(shift_weight(&fake), shift_event(prepared(&fake, canary())))
        .await
        .unwrap_err();
    // THEN the error leaves with its name for the state machine's Retry, and nothing was written
    assert_eq!(err.error_type, "Throttled");
    assert_eq!(err.error_message, "GetAlias is being throttled by AWS");
    assert!(fake.writes().is_empty());
}

#[tokio::test]
async fn a_shift_whose_retry_finds_its_write_landed_succeeds() {
    // GIVEN a prepared canary, and a write that lands but whose answer is lost: the SDK's retry finds the revision
    // the write itself produced and fails its precondition
    let fake = orders();
    let rollout = prepared(&fake, canary());
    fake.lose_next_write_answer(safeshift_core::Error::AliasConflict {
        alias: "live".into(),
        reason: "its revision is no longer the one read: someone else updated it".into(),
    });
    // WHEN the first step is shifted
    let shifted = shift_weight(&fake).handle(shift(rollout)).await.unwrap();
    // THEN the step succeeded with one write, and the rollout keeps the revision that write produced
    assert_eq!(fake.writes().len(), 1);
    assert_eq!(live(&fake), routes(&fake, "6", &[("7", 0.1)]));
    assert_eq!((shifted.step, shifted.percent), (Some(0), 10.0));
    assert_eq!(shifted.aliases[0].revision_id, live(&fake).revision_id);
}

// ---- every gate is checked before traffic moves ----------------------------------------------------------

#[tokio::test]
async fn a_listed_alarm_that_does_not_exist_refuses_the_deployment_before_any_write() {
    // GIVEN a deployment listing `orders-errors` and a typo, `orders-erors`
    let fake = orders();
    let mut i = input(json!("Canary10Percent5Minutes"));
    i["alarms"] = json!(["orders-errors", "orders-erors"]);
    // WHEN it is prepared
    let err = shift_weight(&fake)
        .handle(prepare(&fake, i))
        .await
        .unwrap_err();
    // THEN the typo is named now, not after the first step's bake; nothing was written, no lock was taken
    assert_eq!(err.error_type(), ErrorType::ResourceNotFound);
    assert_eq!(err.to_string(), "alarm `orders-erors` does not exist");
    assert!(fake.writes().is_empty());
    assert_eq!(fake.lock(KEY), None);
}

#[tokio::test]
async fn an_alarm_already_firing_at_start_refuses_the_deployment_naming_it() {
    // GIVEN the deployment's alarm is already in ALARM
    let fake = orders();
    fake.alarm("orders-errors", "ALARM", "12 errors in 1 minute");
    // WHEN it is prepared
    let err = shift_weight(&fake)
        .handle(prepare(&fake, canary()))
        .await
        .unwrap_err();
    // THEN it is refused with its own name, naming the alarm, before any write or lock
    assert_eq!(err.error_type(), ErrorType::AlarmFiringAtStart);
    assert!(err.to_string().contains("orders-errors"), "{err}");
    assert!(fake.writes().is_empty());
    assert_eq!(fake.lock(KEY), None);
}
