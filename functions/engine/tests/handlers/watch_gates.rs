//! watch-gates: a bake registers its wait on the deployment's hold of the alias; an alarm going to ALARM fails
//! the waits of every deployment that lists it, and is recorded for those between two waits, so that nothing
//! that fired during a deployment is missed — and nothing else is touched.

use safeshift_core::Error;
use safeshift_engine::fake::{Call, FakeAws};
use safeshift_engine::ports::LockHolder;
use safeshift_engine::runtime::Handler;
use serde_json::{Value, json};

use crate::support::*;

/// The bake of `rollout`'s current step as the state machine's Bake task sends it, with its task token.
fn bake_event(rollout: &impl serde::Serialize, token: &str) -> Value {
    json!({"bake": {"state": rollout, "taskToken": token, "executionArn": EXECUTION}})
}

/// EventBridge's event for `alarm` going to `state`.
fn alarm_event(alarm: &str, state: &str) -> Value {
    json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": "123456789012",
        "time": "2026-11-29T10:00:06Z",
        "region": "us-east-1",
        "resources": [format!("arn:aws:cloudwatch:us-east-1:123456789012:alarm:{alarm}")],
        "detail": {
            "alarmName": alarm,
            "state": {"value": state, "reason": "Threshold Crossed: 5 errors", "timestamp": "2026-11-29T10:00:05.123+0000"},
            "previousState": {"value": "OK", "reason": "fine"},
            "configuration": {"metrics": []}
        }
    })
}

/// `alarm` goes to ALARM in CloudWatch (at 10:00:00 in the fake), and EventBridge's event for it (at 10:00:05).
fn fire(fake: &FakeAws, alarm: &str) -> Value {
    fake.alarm(alarm, "ALARM", "Threshold Crossed: 5 errors");
    alarm_event(alarm, "ALARM")
}

/// The canary at its first step (10% on 7), baking: its wait registered with token `bake-1`.
async fn baking(fake: &FakeAws) -> safeshift_core::rollout::Rollout {
    let rollout = at_first_step(fake).await;
    fake.task_waits("bake-1");
    invoke(watch_gates(fake), bake_event(&rollout, "bake-1"))
        .await
        .unwrap();
    rollout
}

#[tokio::test]
async fn a_bake_registers_its_wait_on_the_hold_and_touches_no_alias() {
    let fake = orders();
    let rollout = at_first_step(&fake).await;
    fake.clear_calls();
    let out = invoke(watch_gates(&fake), bake_event(&rollout, "bake-1"))
        .await
        .unwrap();
    assert_eq!(out, json!({"watching": ["orders-errors"], "seconds": 300}));
    assert_eq!(fake.task_token(KEY).as_deref(), Some("bake-1"));
    assert_eq!(
        operations(&fake),
        ["DescribeExecution", "GetItem", "UpdateItem"]
    );
}

#[tokio::test]
async fn a_bake_of_a_deployment_without_alarms_calls_nothing() {
    let fake = orders();
    let mut i = canary();
    i["alarms"] = json!([]);
    let rollout = prepared(&fake, i);
    fake.clear_calls();
    let out = invoke(watch_gates(&fake), bake_event(&rollout, "bake-1"))
        .await
        .unwrap();
    assert_eq!(out["watching"], json!([]));
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}

#[tokio::test]
async fn a_bake_for_an_execution_that_does_not_hold_the_alias_is_refused() {
    let fake = orders();
    let rollout = at_first_step(&fake).await;
    // Another deployment holds the alias now (this one's lock lapsed and was taken).
    held_by(&fake, OTHER_EXECUTION, "d-0");
    let err = invoke(watch_gates(&fake), bake_event(&rollout, "bake-1"))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "ExecutionMismatch");
    assert_eq!(fake.task_token(KEY), None);
}

#[tokio::test]
async fn an_alarm_fails_the_wait_of_the_deployment_that_lists_it_naming_it_when_and_why() {
    let fake = orders();
    baking(&fake).await;
    fake.clear_calls();
    let out = invoke(watch_gates(&fake), fire(&fake, "orders-errors"))
        .await
        .unwrap();
    assert_eq!(
        out,
        json!({"alarm": "orders-errors", "state": "ALARM",
               "deployments": [{"executionArn": EXECUTION, "outcome": "interrupted"}]})
    );
    let failed: Vec<Call> = fake
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::FailTask { .. }))
        .collect();
    assert_eq!(
        failed,
        [Call::FailTask {
            task_token: "bake-1".into(),
            error: "AlarmFired".into(),
            cause: "alarm in ALARM: orders-errors (went to ALARM at 2026-11-29T10:00:05.123+0000: Threshold Crossed: 5 errors)".into(),
        }]
    );
    assert!(!fake.is_waiting("bake-1"), "the bake ended");
    assert!(
        fake.writes().is_empty(),
        "the rollback is the state machine's, not the watcher's"
    );
}

#[tokio::test]
async fn an_alarm_no_running_deployment_lists_changes_nothing() {
    let fake = orders();
    baking(&fake).await;
    fake.clear_calls();
    let out = invoke(watch_gates(&fake), fire(&fake, "payments-latency"))
        .await
        .unwrap();
    assert_eq!(out["deployments"], json!([]));
    assert_eq!(operations(&fake), ["DescribeAlarms", "Scan"]);
    assert!(fake.is_waiting("bake-1"));
    assert_eq!(fake.lock(KEY).unwrap().fired, None);
}

#[tokio::test]
async fn an_alarm_back_to_ok_or_insufficient_data_changes_nothing() {
    let fake = orders();
    baking(&fake).await;
    fake.clear_calls();
    for state in ["OK", "INSUFFICIENT_DATA"] {
        invoke(watch_gates(&fake), alarm_event("orders-errors", state))
            .await
            .unwrap();
    }
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
    assert!(fake.is_waiting("bake-1"));
}

/// Execution d-9 of the engine's state machine.
const OTHER: &str = "arn:aws:states:us-east-1:123456789012:execution:safeshift-rollout:d-9";

/// A second deployment, d-9 of `payments:live`, lists `alarms` and bakes with `bake-2`, registered.
async fn another_deployment_baking(fake: &FakeAws, alarms: &[&str]) {
    fake.hold_lock(
        "payments:live",
        LockHolder {
            execution_arn: OTHER.into(),
            deployment_id: "d-9".into(),
            stable_version: Some("3".into()),
            alarms: alarms.iter().map(|a| a.to_string()).collect(),
            ..LockHolder::default()
        },
        safeshift_engine::unix_now() + 86_400,
    );
    fake.task_waits("bake-2");
    WatchHold::register(fake, "payments:live", OTHER, "bake-2").await;
}

#[tokio::test]
async fn two_deployments_watching_one_alarm_are_both_interrupted() {
    let fake = orders();
    baking(&fake).await;
    // A second deployment, of another function's alias, lists the same alarm and bakes too.
    another_deployment_baking(&fake, &["orders-errors", "payments-errors"]).await;
    let out = invoke(watch_gates(&fake), fire(&fake, "orders-errors"))
        .await
        .unwrap();
    let outcomes: Vec<&str> = out["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["interrupted", "interrupted"]);
    assert!(!fake.is_waiting("bake-1") && !fake.is_waiting("bake-2"));
}

/// Registers a wait on a hold directly, as the port does for a bake.
struct WatchHold;

impl WatchHold {
    async fn register(fake: &FakeAws, key: &str, execution_arn: &str, token: &str) {
        use safeshift_engine::ports::{Watch, WatchAlarms};
        assert_eq!(
            fake.watch(key, execution_arn, token, 1_795_946_400_000)
                .await
                .unwrap(),
            Watch::Watching
        );
    }
}

#[tokio::test]
async fn a_deployment_that_already_finished_is_not_touched() {
    let fake = orders();
    let rollout = baking(&fake).await;
    // It was promoted and released its alias.
    invoke(
        shift_weight(&fake),
        json!({"release": {"state": rollout, "executionArn": EXECUTION}}),
    )
    .await
    .unwrap();
    fake.clear_calls();
    let out = invoke(watch_gates(&fake), fire(&fake, "orders-errors"))
        .await
        .unwrap();
    assert_eq!(out["deployments"], json!([]));
    assert_eq!(operations(&fake), ["DescribeAlarms", "Scan"]);
}

#[tokio::test]
async fn an_alarm_between_two_waits_is_recorded_and_stops_the_next_shift_and_the_next_wait() {
    // GIVEN a deployment whose bake ended (its token no longer waits): it is checking its gates
    let fake = orders();
    let rollout = baking(&fake).await;
    fake.task_ended("bake-1");
    // WHEN the alarm goes to ALARM (and back to OK before the gates read it)
    let out = invoke(watch_gates(&fake), fire(&fake, "orders-errors"))
        .await
        .unwrap();
    assert_eq!(out["deployments"][0]["outcome"], "recorded");
    fake.alarm("orders-errors", "OK", "recovered");
    fake.clear_calls();
    // THEN the next shift moves no traffic, and fails with the alarm
    let err = invoke(shift_weight(&fake), shift_event(&rollout))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "AlarmFired");
    assert!(
        err.error_message.contains("orders-errors"),
        "{}",
        err.error_message
    );
    assert!(fake.writes().is_empty());
    assert_eq!(live(&fake), routes(&fake, "6", &[("7", 0.1)]));
    // AND a wait started after it does not wait
    let err = invoke(watch_gates(&fake), bake_event(&rollout, "bake-2"))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "AlarmFired");
}

#[tokio::test]
async fn the_first_alarm_stays_the_reason_when_more_fire() {
    let fake = orders();
    let rollout = baking(&fake).await;
    fake.task_ended("bake-1");
    invoke(watch_gates(&fake), fire(&fake, "orders-errors"))
        .await
        .unwrap();
    let mut second = fire(&fake, "orders-errors");
    second["detail"]["state"]["reason"] = json!("a later crossing");
    invoke(watch_gates(&fake), second).await.unwrap();
    let err = invoke(watch_gates(&fake), bake_event(&rollout, "bake-2"))
        .await
        .unwrap_err();
    assert!(
        err.error_message.contains("Threshold Crossed: 5 errors"),
        "{}",
        err.error_message
    );
}

#[tokio::test]
async fn a_failed_hand_over_to_one_deployment_still_reaches_the_others_and_is_retried() {
    let fake = orders();
    baking(&fake).await;
    another_deployment_baking(&fake, &["orders-errors"]).await;
    // The first SendTaskFailure (to orders:live's wait) is throttled.
    fake.fail_next(
        "SendTaskFailure",
        Error::Throttled {
            operation: "SendTaskFailure".into(),
        },
    );
    let err = invoke(watch_gates(&fake), fire(&fake, "orders-errors"))
        .await
        .unwrap_err();
    // The event fails (EventBridge delivers it again), but the other deployment was interrupted...
    assert_eq!(err.error_type, "Throttled");
    assert!(!fake.is_waiting("bake-2"));
    assert!(fake.is_waiting("bake-1"));
    // ...and the redelivery interrupts the first: the record stands, the token is failed now.
    invoke(watch_gates(&fake), fire(&fake, "orders-errors"))
        .await
        .unwrap();
    assert!(!fake.is_waiting("bake-1"));
}

#[tokio::test]
async fn an_event_that_is_neither_a_bake_nor_an_alarm_change_is_invalid_input() {
    let fake = orders();
    let err = invoke(
        watch_gates(&fake),
        json!({"detail-type": "Something else", "detail": {}}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_type, "InvalidInput");
    assert!(fake.calls().is_empty());
    // The handler's own type check, for an event of the right shape but another detail type.
    let mut other = fire(&fake, "orders-errors");
    other["detail-type"] = json!("EC2 Instance State-change Notification");
    let err = watch_gates(&fake)
        .handle(serde_json::from_value(other).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
}

#[tokio::test]
async fn an_event_about_an_alarm_change_before_the_deployment_read_its_alarms_is_not_its() {
    // GIVEN a deployment that read its alarms at 10:00:00 and bakes
    let fake = orders();
    baking(&fake).await;
    // WHEN a late or redelivered event arrives about a change at 09:58, when an earlier deployment ran
    let mut stale = fire(&fake, "orders-errors");
    stale["detail"]["state"]["timestamp"] = json!("2026-11-29T09:58:00.000+0000");
    let out = invoke(watch_gates(&fake), stale).await.unwrap();
    // THEN it is not this deployment's: nothing recorded, its bake goes on
    assert_eq!(out["deployments"][0]["outcome"], "notHeld");
    assert_eq!(fake.lock(KEY).unwrap().fired, None);
    assert!(fake.is_waiting("bake-1"));
}

#[tokio::test]
async fn a_late_registration_of_an_earlier_wait_never_replaces_a_later_ones_token() {
    let fake = orders();
    let rollout = at_first_step(&fake).await;
    let bake = |token: &str, entered: &str| json!({"bake": {"state": rollout, "taskToken": token, "enteredAt": entered, "executionArn": EXECUTION}});
    fake.task_waits("bake-2");
    invoke(
        watch_gates(&fake),
        bake("bake-2", "2026-11-29T10:05:00.000Z"),
    )
    .await
    .unwrap();
    // The first step's registration, slow, lands after the second step's: left out, and says so.
    let late = invoke(
        watch_gates(&fake),
        bake("bake-1", "2026-11-29T10:00:00.000Z"),
    )
    .await
    .unwrap();
    assert!(
        late["unwatched"]
            .as_str()
            .unwrap()
            .starts_with("a later wait"),
        "{late}"
    );
    assert_eq!(fake.task_token(KEY).as_deref(), Some("bake-2"));
    invoke(watch_gates(&fake), fire(&fake, "orders-errors"))
        .await
        .unwrap();
    assert!(!fake.is_waiting("bake-2"), "the live wait was interrupted");
}

#[tokio::test]
async fn aws_failing_to_register_a_wait_leaves_it_unwatched_instead_of_failing_a_healthy_step() {
    let fake = orders();
    let rollout = at_first_step(&fake).await;
    fake.fail_next(
        "UpdateItem",
        Error::Throttled {
            operation: "UpdateItem".into(),
        },
    );
    let out = invoke(watch_gates(&fake), bake_event(&rollout, "bake-1"))
        .await
        .unwrap();
    assert_eq!(out["watching"], json!([]));
    assert_eq!(out["unwatched"], "UpdateItem is being throttled by AWS");
    assert_eq!(fake.task_token(KEY), None);
    // The next shift still finds an alarm recorded meanwhile.
    invoke(watch_gates(&fake), fire(&fake, "orders-errors"))
        .await
        .unwrap();
    let err = invoke(shift_weight(&fake), shift_event(&rollout))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "AlarmFired");
}

#[tokio::test]
async fn the_first_shift_reads_the_alarms_again_in_case_one_fired_while_prepare_ran() {
    let fake = orders();
    let rollout = prepared(&fake, canary());
    // The alarm went to ALARM after Prepare read it and before the hold existed: no event found the hold.
    fake.alarm("orders-errors", "ALARM", "5 errors");
    let err = invoke(shift_weight(&fake), shift_event(&rollout))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "AlarmFired");
    assert!(fake.writes().is_empty(), "no traffic moved");
}

#[tokio::test]
async fn an_event_cloudwatch_does_not_bear_out_stops_nothing() {
    let fake = orders();
    baking(&fake).await;
    fake.clear_calls();
    // A forged (or mistaken) event: the alarm has been OK since 10:00:00, before the ALARM it claims at 10:00:05.
    let out = invoke(watch_gates(&fake), alarm_event("orders-errors", "ALARM"))
        .await
        .unwrap();
    assert_eq!(out["deployments"], json!([]));
    assert_eq!(
        operations(&fake),
        ["DescribeAlarms"],
        "no hold even looked up"
    );
    assert!(fake.is_waiting("bake-1"));
    assert_eq!(fake.lock(KEY).unwrap().fired, None);
    // One about an alarm that does not exist, the same.
    let out = invoke(watch_gates(&fake), alarm_event("no-such-alarm", "ALARM"))
        .await
        .unwrap();
    assert_eq!(out["deployments"], json!([]));
    assert!(fake.is_waiting("bake-1"));
}

#[tokio::test]
async fn an_alarm_that_fired_and_cleared_before_its_event_was_handled_is_borne_out() {
    let fake = orders();
    baking(&fake).await;
    // ALARM at 10:00:05, OK again at 10:00:07 by the time the event is handled: it changed after the claim.
    fake.alarm_since("orders-errors", "OK", "recovered", "2026-11-29T10:00:07Z");
    let out = invoke(watch_gates(&fake), alarm_event("orders-errors", "ALARM"))
        .await
        .unwrap();
    assert_eq!(out["deployments"][0]["outcome"], "interrupted");
}
