//! Releases over the fake: several targets prepared, shifted, rolled back and reconciled as one deployment —
//! every alias at the same weight after each step, refused as a whole before any write, and on a failure every
//! alias this release changed put back (and only those).

use safeshift_core::Error;
use safeshift_engine::fake::{Call, FakeAws};
use safeshift_engine::ports::LockHolder;
use safeshift_engine::runtime::Handler;
use serde_json::{Value, json};

use crate::support::*;

const FUNCTIONS: [&str; 3] = ["orders-api", "orders-worker", "orders-feed"];

/// Three functions, each with versions 6 and 7 published under one role and alias `live` on 6; the shared alarm OK.
fn three() -> FakeAws {
    let fake = FakeAws::new();
    for f in FUNCTIONS {
        fake.function(f, &["6", "7"]);
        fake.set_alias(f, "live", "6", &[]);
    }
    fake.alarm("orders-errors", "OK", "no errors");
    fake
}

/// The release of version 7 of all three, linear over 50% then 100%.
fn release_input() -> Value {
    json!({
        "release": "orders-2026-11-29",
        "targets": FUNCTIONS.iter().map(|f| json!({"functionName": f, "alias": "live", "targetVersion": "7"})).collect::<Vec<_>>(),
        "strategy": {"linear": {"percent": 50, "intervalSeconds": 60}},
        "alarms": ["orders-errors"]
    })
}

/// Execution d-0, running, holds `function:live` (its Prepare found version 6), for a day from now.
fn held_by_another(fake: &FakeAws, function: &str) -> LockHolder {
    let other = LockHolder {
        execution_arn: OTHER_EXECUTION.into(),
        deployment_id: "d-0".into(),
        acquired_at: 1_800_000_000,
        stable_version: Some("6".into()),
        ..LockHolder::default()
    };
    fake.hold_lock(
        &format!("{function}:live"),
        other.clone(),
        safeshift_engine::unix_now() + 86_400,
    );
    other
}

/// No lock is held on any of `functions`' `live` aliases.
fn no_lock_left(fake: &FakeAws, functions: &[&str]) {
    for f in functions {
        assert!(fake.lock(&format!("{f}:live")).is_none(), "{f}");
    }
}

/// Each alias's outcome in a rollback's report, in the targets' order.
fn outcomes(report: &Value) -> Vec<&str> {
    report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["outcome"].as_str().unwrap())
        .collect()
}

fn routing(fake: &FakeAws) -> Vec<String> {
    FUNCTIONS
        .iter()
        .map(|f| fake.alias(f, "live").unwrap().describe())
        .collect()
}

fn alias_writes(fake: &FakeAws) -> Vec<String> {
    fake.writes()
        .into_iter()
        .filter_map(|c| match c {
            Call::UpdateAlias {
                function, update, ..
            } => Some(format!("{function} -> {}", update.describe())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_release_prepares_every_target_and_moves_them_together() {
    let fake = three();
    let prepared = recorded(&fake, prepare(&fake, release_input())).await;
    // Every alias is locked for this execution; the first carries the deployment's alarms.
    for (i, f) in FUNCTIONS.iter().enumerate() {
        let hold = fake.lock(&format!("{f}:live")).expect("locked");
        assert_eq!(hold.execution_arn, EXECUTION);
        assert_eq!(hold.alarms.is_empty(), i > 0, "{f}");
    }
    assert!(alias_writes(&fake).is_empty());
    let half = recorded(&fake, shift(prepared)).await;
    assert_eq!(routing(&fake), vec!["version 6 + 50% to version 7"; 3]);
    // Each alias's own revision is recorded.
    for (a, f) in half.aliases.iter().zip(FUNCTIONS) {
        assert_eq!(a.revision_id, fake.alias(f, "live").unwrap().revision_id);
    }
    let promoted = recorded(&fake, shift(half)).await;
    assert!(promoted.promoted);
    assert_eq!(routing(&fake), vec!["version 7"; 3]);
    // One task per step, whatever the number of targets: two shifts, six writes.
    assert_eq!(alias_writes(&fake).len(), 6);
    // Released: every lock goes.
    let release = json!({"release": {"state": promoted, "executionArn": EXECUTION}});
    invoke(shift_weight(&fake), release).await.unwrap();
    no_lock_left(&fake, &FUNCTIONS);
}

#[tokio::test]
async fn a_release_is_refused_whole_when_one_alias_is_in_another_deployment() {
    let fake = three();
    // Another running execution holds the worker's alias.
    fake.execution(OTHER_EXECUTION, "RUNNING", None, vec![]);
    let other = held_by_another(&fake, "orders-worker");
    let err = shift_weight(&fake)
        .handle(prepare(&fake, release_input()))
        .await
        .unwrap_err();
    let Error::AliasConflict { alias, reason } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(alias, "orders-worker:live");
    assert!(reason.contains(OTHER_EXECUTION), "{reason}");
    // Nothing written, no lock of this execution left behind, the other's untouched.
    assert!(alias_writes(&fake).is_empty());
    no_lock_left(&fake, &["orders-api", "orders-feed"]);
    assert_eq!(fake.lock("orders-worker:live"), Some(other));
}

#[tokio::test]
async fn a_release_is_refused_before_any_lock_when_one_target_is_missing_its_version() {
    let fake = three();
    let mut input = release_input();
    input["targets"][2]["targetVersion"] = json!("8");
    let err = shift_weight(&fake)
        .handle(prepare(&fake, input))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::ResourceNotFound { name, .. } if name.contains('8')),
        "{err:?}"
    );
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
    no_lock_left(&fake, &FUNCTIONS);
}

#[tokio::test]
async fn a_write_failing_on_one_target_rolls_back_every_alias_it_changed() {
    let fake = three();
    let prepared = recorded(&fake, prepare(&fake, release_input())).await;
    // The worker's write fails (its alias stays on 6); the api's and the feed's land.
    fake.fail_next_write_of(
        "orders-worker",
        Error::AwsError {
            operation: "UpdateAlias".into(),
            message: "service unavailable".into(),
        },
    );
    let err = shift_weight(&fake)
        .handle(shift(prepared.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AwsError { .. }), "{err:?}");
    assert_eq!(
        routing(&fake),
        [
            "version 6 + 50% to version 7",
            "version 6",
            "version 6 + 50% to version 7"
        ]
    );
    // The Catch rolls back with the state before the failed step: the landed writes are this execution's.
    let report = invoke(rollback(&fake), catch_event(&prepared))
        .await
        .unwrap();
    assert_eq!(report["outcome"], "reverted", "{report}");
    let outcomes = outcomes(&report);
    assert_eq!(outcomes, ["reverted", "alreadyStable", "reverted"]);
    assert_eq!(routing(&fake), vec!["version 6"; 3]);
    no_lock_left(&fake, &FUNCTIONS);
}

#[tokio::test]
async fn a_rollback_leaves_alone_the_alias_someone_else_changed_and_reports_it() {
    let fake = three();
    let prepared = recorded(&fake, prepare(&fake, release_input())).await;
    let half = recorded(&fake, shift(prepared)).await;
    // A person points the feed at version 6 alone meanwhile (a new revision).
    fake.set_alias("orders-feed", "live", "6", &[("7", 0.2)]);
    let report = invoke(rollback(&fake), catch_event(&half)).await.unwrap();
    assert_eq!(report["outcome"], "leftAlone", "{report}");
    assert_eq!(report["targets"][2]["outcome"], "leftAlone");
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .contains("orders-feed:live: the alias routes version 6 + 20% to version 7"),
        "{report}"
    );
    assert_eq!(
        routing(&fake),
        ["version 6", "version 6", "version 6 + 20% to version 7"]
    );
}

#[tokio::test]
async fn the_reconciler_restores_every_alias_of_an_aborted_release() {
    let fake = three();
    let input = release_input();
    let prepared = recorded(&fake, prepare(&fake, input.clone())).await;
    let half = recorded(&fake, shift(prepared)).await;
    assert_eq!(half.percent, 50.0);
    fake.end_execution(EXECUTION, "ABORTED", 1_000);
    // A newer deployment took the worker's alias over from the ended execution and moved it: theirs now.
    fake.set_alias("orders-worker", "live", "6", &[("7", 0.5)]);
    let newer = held_by_another(&fake, "orders-worker");
    let report = invoke(rollback(&fake), status_change("ABORTED"))
        .await
        .unwrap();
    let outcomes = outcomes(&report);
    assert_eq!(outcomes, ["reverted", "leftAlone", "reverted"], "{report}");
    assert_eq!(
        routing(&fake),
        ["version 6", "version 6 + 50% to version 7", "version 6"]
    );
    // The ended execution's locks are gone; the newer one's stands.
    assert!(fake.lock("orders-api:live").is_none());
    assert_eq!(fake.lock("orders-worker:live"), Some(newer));
}
