//! The per-alias lock: one deployment per alias, taken by Prepare once every check passed, released by Release,
//! the Catch rollback and the reconciler — each only ever releasing its own execution's lock.

use safeshift_core::{Deployment, ErrorType};
use safeshift_engine::fake::{Call, FakeAws};
use safeshift_engine::ports::LockHolder;
use safeshift_engine::runtime::Handler;
use serde_json::{Value, json};

use crate::support::*;

const ORDERS_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:orders";

fn acquisitions(fake: &FakeAws) -> Vec<Option<String>> {
    fake.calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::AcquireLock { replacing, .. } => Some(replacing),
            _ => None,
        })
        .collect()
}

fn release_event(rollout: impl serde::Serialize) -> Value {
    json!({"release": {"state": rollout, "executionArn": EXECUTION}})
}

#[tokio::test]
async fn prepare_takes_the_alias_lock_for_its_execution() {
    // GIVEN no one holds orders:live
    let fake = orders();
    // WHEN d-1 prepares
    shift_weight(&fake)
        .handle(prepare(&fake, canary()))
        .await
        .unwrap();
    // THEN d-1's execution holds the lock, taken once every check had passed
    let holder = fake.lock(KEY).expect("a lock");
    assert_eq!(
        (holder.execution_arn.as_str(), holder.deployment_id.as_str()),
        (EXECUTION, "d-1")
    );
    assert_eq!(operations(&fake).last(), Some(&"PutItem"));
}

#[tokio::test]
async fn a_second_prepare_while_the_holder_runs_is_refused_naming_the_holder() {
    // GIVEN d-0, running, holds orders:live (it has not shifted yet: the alias is still on 6 alone)
    let fake = orders();
    fake.execution(
        OTHER_EXECUTION,
        "RUNNING",
        Some(&canary().to_string()),
        vec![],
    );
    let holder = held_by(&fake, OTHER_EXECUTION, "d-0");
    // WHEN d-1 prepares a deployment of the same alias
    let err = shift_weight(&fake)
        .handle(prepare(&fake, input(json!("AllAtOnce"))))
        .await
        .unwrap_err();
    // THEN refused, naming the holder's execution and deployment; its lock unchanged, nothing written
    assert_eq!(err.error_type(), ErrorType::AliasConflict);
    let message = err.to_string();
    assert!(message.contains("deployment in progress"), "{message}");
    assert!(message.contains(OTHER_EXECUTION), "{message}");
    assert!(message.contains("`d-0`"), "{message}");
    assert_eq!(fake.lock(KEY), Some(holder));
    assert!(fake.writes().is_empty());
    assert_eq!(
        acquisitions(&fake),
        [None],
        "no takeover of a running holder"
    );
}

#[tokio::test]
async fn a_lock_whose_holder_has_ended_is_taken_over() {
    for status in [Some("SUCCEEDED"), Some("FAILED"), None] {
        // GIVEN d-0 holds orders:live, but it has ended (or no longer exists) without releasing it
        let fake = orders();
        if let Some(status) = status {
            fake.execution(OTHER_EXECUTION, status, Some(&canary().to_string()), vec![]);
        }
        held_by(&fake, OTHER_EXECUTION, "d-0");
        // WHEN d-1 prepares
        let rollout = shift_weight(&fake).handle(prepare(&fake, canary())).await;
        // THEN it takes the lock over from exactly that execution
        assert!(rollout.is_ok(), "{status:?}: {rollout:?}");
        let holder = fake.lock(KEY).expect("a lock");
        assert_eq!(
            (holder.execution_arn.as_str(), holder.deployment_id.as_str()),
            (EXECUTION, "d-1"),
            "{status:?}"
        );
        assert_eq!(
            acquisitions(&fake),
            [None, Some(OTHER_EXECUTION.to_owned())],
            "{status:?}"
        );
    }
}

#[tokio::test]
async fn a_retried_prepare_of_the_same_execution_succeeds() {
    // GIVEN d-1 prepared once (it holds the lock)
    let fake = orders();
    let first = shift_weight(&fake)
        .handle(prepare(&fake, canary()))
        .await
        .unwrap();
    // WHEN its Prepare runs again (a retry, a redrive)
    let again = shift_weight(&fake)
        .handle(prepare(&fake, canary()))
        .await
        .unwrap();
    // THEN the same rollout, the lock still d-1's, confirmed without asking who holds it
    assert_eq!(first, again);
    assert_eq!(
        fake.lock(KEY).map(|h| h.execution_arn),
        Some(EXECUTION.into())
    );
    assert_eq!(acquisitions(&fake), [None, None]);
    assert_eq!(count(&fake, "GetItem"), 0);
}

#[tokio::test]
async fn a_prepare_that_fails_its_checks_takes_no_lock() {
    // GIVEN version 7 does not exist
    let fake = FakeAws::new();
    fake.function("orders", &["6"]);
    fake.set_alias("orders", "live", "6", &[]);
    // WHEN d-1 prepares a deployment of 7
    let err = shift_weight(&fake)
        .handle(prepare(&fake, canary()))
        .await
        .unwrap_err();
    // THEN it fails its checks and leaves no lock behind
    assert_eq!(err.error_type(), ErrorType::ResourceNotFound);
    assert_eq!(fake.lock(KEY), None);
    assert_eq!(count(&fake, "PutItem"), 0);
}

#[tokio::test]
async fn release_releases_this_executions_lock() {
    // GIVEN d-1 promoted 7 and holds the lock
    let fake = orders();
    let first = at_first_step(&fake).await;
    held_by(&fake, EXECUTION, "d-1");
    let done = shift_weight(&fake).handle(shift(first)).await.unwrap();
    // WHEN it releases
    let out = invoke(shift_weight(&fake), release_event(&done))
        .await
        .unwrap();
    // THEN the alias is free, and the rollout passes through unchanged
    assert_eq!(fake.lock(KEY), None);
    assert_eq!(out, serde_json::to_value(&done).unwrap());
    assert_eq!(
        fake.calls().last(),
        Some(&Call::ReleaseLock {
            key: KEY.into(),
            execution_arn: EXECUTION.into()
        })
    );
}

#[tokio::test]
async fn release_leaves_another_executions_lock_alone() {
    // GIVEN d-1 runs, but d-0 holds the lock
    let fake = orders();
    let rollout = prepared(&fake, canary());
    let holder = held_by(&fake, OTHER_EXECUTION, "d-0");
    // WHEN d-1 releases
    let err = invoke(shift_weight(&fake), release_event(&rollout))
        .await
        .unwrap_err();
    // THEN d-1 is refused (the alias is not its), and d-0 still holds it
    assert_eq!(err.error_type, "ExecutionMismatch", "{}", err.error_message);
    assert_eq!(fake.lock(KEY), Some(holder));
}

#[tokio::test]
async fn the_catch_rollback_releases_the_lock() {
    // GIVEN d-1 prepared (taking the lock) and shifted to 10%
    let fake = orders();
    let prepared = shift_weight(&fake)
        .handle(prepare(&fake, canary()))
        .await
        .unwrap();
    let first = shift_weight(&fake).handle(shift(prepared)).await.unwrap();
    assert!(fake.lock(KEY).is_some());
    // WHEN its Catch rolls back
    let out = invoke(rollback(&fake), catch_event(&first)).await.unwrap();
    // THEN reverted, and the alias is free
    assert_eq!(out["outcome"], "reverted");
    assert_eq!(fake.lock(KEY), None);
}

#[tokio::test]
async fn the_reconciler_releases_the_lock() {
    // GIVEN d-1 stopped at 10% with no Catch run, still holding the lock
    let fake = orders();
    stopped_at_first_step(&fake, "ABORTED").await;
    assert_eq!(
        fake.lock(KEY).map(|h| h.execution_arn),
        Some(EXECUTION.into())
    );
    // WHEN its status change arrives
    let out = invoke(rollback(&fake), status_change("ABORTED"))
        .await
        .unwrap();
    // THEN reverted, and the alias is free
    assert_eq!(out["outcome"], "reverted", "{out}");
    assert_eq!(fake.lock(KEY), None);
}

#[tokio::test]
async fn the_lock_key_is_the_same_for_a_function_name_and_its_arn() {
    // GIVEN the key of a deployment naming `orders`, and of one naming its full ARN
    let by_name = Deployment::from_value(canary()).unwrap();
    let mut arn_input = canary();
    arn_input["functionName"] = json!(ORDERS_ARN);
    let by_arn = Deployment::from_value(arn_input.clone()).unwrap();
    assert_eq!(by_name.lock_key(), KEY);
    assert_eq!(by_arn.lock_key(), KEY);

    // GIVEN d-0, running, prepared `orders` by name and holds its alias
    let fake = orders();
    fake.function(ORDERS_ARN, &["6", "7"]);
    fake.set_alias(ORDERS_ARN, "live", "6", &[]);
    fake.execution(
        OTHER_EXECUTION,
        "RUNNING",
        Some(&canary().to_string()),
        vec![],
    );
    invoke(
        shift_weight(&fake),
        json!({"prepare": {"deploymentId": "d-0", "executionArn": OTHER_EXECUTION, "input": canary()}}),
    )
    .await
    .unwrap();
    // WHEN d-1 prepares the same alias through the function's ARN
    let err = shift_weight(&fake)
        .handle(prepare(&fake, arn_input))
        .await
        .unwrap_err();
    // THEN the two meet on one lock: d-1 is refused, naming d-0
    assert_eq!(err.error_type(), ErrorType::AliasConflict);
    assert!(err.to_string().contains(OTHER_EXECUTION), "{err}");
    assert_eq!(
        fake.lock(KEY).map(|h: LockHolder| h.deployment_id),
        Some("d-0".into())
    );
}
