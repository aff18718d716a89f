//! The guard: every writing handler acts only for a running execution of the engine's state machine, named for
//! the deployment and started with its input. Anything else is `ExecutionMismatch`, with nothing read but the
//! execution (not even that without an ARN), nothing written, no lock touched and no hook invoked.

use lambda_runtime::Diagnostic;
use safeshift_core::asl::ROLLOUT_DEFINITION;
use safeshift_core::rollout::Rollout;
use safeshift_engine::fake::FakeAws;
use safeshift_engine::guard::LOCK_SECONDS;
use serde_json::{Value, json};

use crate::support::*;

/// What Step Functions knows of the execution the event names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    /// The rollout's own running execution: the control, which the guard lets through.
    Own,
    /// Someone invokes the function directly: the event names no execution.
    Direct,
    /// The execution has ended.
    Ended,
    /// There is no such execution.
    Missing,
    /// A running execution of another state machine.
    OtherStateMachine,
    /// A running execution of the engine's state machine, but named for another deployment (d-0).
    OtherName,
    /// The deployment's running execution, but started with another input.
    OtherInput,
}

const CASES: [Case; 7] = [
    Case::Own,
    Case::Direct,
    Case::Ended,
    Case::Missing,
    Case::OtherStateMachine,
    Case::OtherName,
    Case::OtherInput,
];

impl Case {
    /// Arranges the execution for a rollout of `input`; returns the ARN the event names, if any, and what the
    /// refusal must say.
    fn arrange(self, fake: &FakeAws, input: &Value) -> (Option<&'static str>, &'static str) {
        let text = input.to_string();
        match self {
            Case::Own => {
                running(fake, input);
                (Some(EXECUTION), "")
            }
            Case::Direct => {
                running(fake, input);
                (None, "invoked outside an execution")
            }
            Case::Ended => {
                fake.execution(EXECUTION, "SUCCEEDED", Some(&text), vec![]);
                (Some(EXECUTION), "is SUCCEEDED, not running")
            }
            Case::Missing => (Some(EXECUTION), "does not exist"),
            Case::OtherStateMachine => {
                fake.execution_of(
                    "arn:aws:states:us-east-1:123456789012:stateMachine:someone-else",
                    EXECUTION,
                    "RUNNING",
                    Some(&text),
                    vec![],
                );
                (Some(EXECUTION), "belongs to")
            }
            Case::OtherName => {
                fake.execution(OTHER_EXECUTION, "RUNNING", Some(&text), vec![]);
                (Some(OTHER_EXECUTION), "is `d-0`")
            }
            Case::OtherInput => {
                let mut other = input.clone();
                other["strategy"] = json!("AllAtOnce");
                fake.execution(EXECUTION, "RUNNING", Some(&other.to_string()), vec![]);
                (Some(EXECUTION), "is not the input")
            }
        }
    }
}

/// The handler and event under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Prepare,
    Shift,
    Release,
    RunHook,
    CatchRollback,
}

/// The canary with a preTraffic hook.
fn hooked() -> Value {
    let mut i = canary();
    i["hooks"] = json!({"preTraffic": "orders-smoke"});
    i
}

/// The world before the call, with no call made and no execution known: for Prepare, the alias on 6 alone;
/// otherwise the canary at 10% as execution d-1 left it (its write's revision on the alias, its lock held).
fn world(target: Target) -> (FakeAws, Rollout) {
    let fake = orders();
    fake.hook("orders-smoke");
    let prepared = rollout_of(&fake, hooked());
    if target == Target::Prepare {
        return (fake, prepared);
    }
    fake.set_alias("orders", "live", "6", &[("7", 0.1)]);
    let first = prepared.advanced(0, vec![live(&fake).revision_id], 1_000);
    held_by(&fake, EXECUTION, "d-1");
    (fake, first)
}

/// `event` with `executionArn` set at `path` (the top level when empty), unless there is no ARN.
fn naming(mut event: Value, path: &[&str], arn: Option<&str>) -> Value {
    if let Some(arn) = arn {
        let at = path.iter().fold(&mut event, |v, key| &mut v[*key]);
        at["executionArn"] = json!(arn);
    }
    event
}

async fn call(
    target: Target,
    fake: &FakeAws,
    rollout: &Rollout,
    arn: Option<&str>,
) -> Result<Value, Diagnostic> {
    let state = serde_json::to_value(rollout).unwrap();
    match target {
        Target::Prepare => {
            let event = json!({"prepare": {"deploymentId": "d-1", "input": hooked()}});
            invoke(shift_weight(fake), naming(event, &["prepare"], arn)).await
        }
        Target::Shift => {
            let event = json!({"shift": {"state": state}});
            invoke(shift_weight(fake), naming(event, &["shift"], arn)).await
        }
        Target::Release => {
            let event = json!({"release": {"state": state}});
            invoke(shift_weight(fake), naming(event, &["release"], arn)).await
        }
        Target::RunHook => {
            let event = json!({"phase": "preTraffic", "rollout": state});
            invoke(run_hook(fake), naming(event, &[], arn)).await
        }
        Target::CatchRollback => {
            let event = json!({"rollback": state});
            invoke(rollback(fake), naming(event, &[], arn)).await
        }
    }
}

/// Runs `target` in every case: its own running execution is served (and the handler visibly acts); every other
/// case is refused with nothing but DescribeExecution called.
async fn only_its_own_running_execution_is_served(target: Target) {
    for case in CASES {
        // GIVEN the world for `target`, and the execution as `case` has it
        let (fake, rollout) = world(target);
        let (alias, lock) = (live(&fake), fake.lock(KEY));
        let (arn, says) = case.arrange(&fake, &hooked());
        // WHEN the handler is invoked for that execution
        let result = call(target, &fake, &rollout, arn).await;
        if case == Case::Own {
            // THEN (control) it acts
            assert!(result.is_ok(), "{target:?}: {result:?}");
            let acted = match target {
                Target::Prepare => fake.lock(KEY).is_some_and(|h| h.execution_arn == EXECUTION),
                Target::Shift => fake.writes().len() == 1,
                Target::Release => fake.lock(KEY).is_none(),
                Target::RunHook => fake.hook_calls().len() == 1,
                Target::CatchRollback => fake.writes().len() == 1 && fake.lock(KEY).is_none(),
            };
            assert!(acted, "{target:?} did not act: {:?}", fake.calls());
            continue;
        }
        // THEN refused, and nothing but the execution was read
        let err = result.expect_err(&format!("{target:?} served {case:?}"));
        assert_eq!(err.error_type, "ExecutionMismatch", "{target:?} {case:?}");
        assert!(
            err.error_message.contains(says),
            "{target:?} {case:?}: {}",
            err.error_message
        );
        let expected: &[&str] = match case {
            Case::Direct => &[],
            _ => &["DescribeExecution"],
        };
        assert_eq!(operations(&fake), expected, "{target:?} {case:?}");
        assert_eq!(live(&fake), alias, "{target:?} {case:?}");
        assert_eq!(fake.lock(KEY), lock, "{target:?} {case:?}");
        assert!(fake.hook_calls().is_empty(), "{target:?} {case:?}");
    }
}

#[tokio::test]
async fn prepare_is_refused_for_anything_but_its_running_execution() {
    only_its_own_running_execution_is_served(Target::Prepare).await;
}

#[tokio::test]
async fn a_shift_is_refused_for_anything_but_its_running_execution() {
    only_its_own_running_execution_is_served(Target::Shift).await;
}

#[tokio::test]
async fn release_is_refused_for_anything_but_its_running_execution() {
    only_its_own_running_execution_is_served(Target::Release).await;
}

#[tokio::test]
async fn a_hook_is_not_invoked_for_anything_but_its_running_execution() {
    only_its_own_running_execution_is_served(Target::RunHook).await;
}

#[tokio::test]
async fn the_catch_rollback_is_refused_for_anything_but_its_running_execution() {
    only_its_own_running_execution_is_served(Target::CatchRollback).await;
}

#[test]
fn a_lock_outlives_the_longest_execution() {
    // GIVEN the state machine's own bound on an execution
    let definition: Value = serde_json::from_str(ROLLOUT_DEFINITION).unwrap();
    let timeout = definition["TimeoutSeconds"]
        .as_u64()
        .expect("the state machine bounds its executions");
    // THEN a lock lasts longer: it never lapses under a running holder
    assert!(
        LOCK_SECONDS > timeout,
        "LOCK_SECONDS {LOCK_SECONDS} <= TimeoutSeconds {timeout}"
    );
}

// ---- the rollout handed in must be the one its execution's Prepare locked --------------------------------

#[tokio::test]
async fn a_rollout_claiming_another_stable_version_is_refused_by_shift_and_rollback() {
    // GIVEN d-1 runs, holding the alias its Prepare found on stable version 6, and split at 10%
    let fake = orders();
    let mut rollout = at_first_step(&fake).await;
    let before = live(&fake);
    // WHEN someone hands its functions the same rollout claiming stable version 5
    rollout.aliases[0].stable_version = safeshift_core::names::Version::new(5).unwrap();
    let shifted = invoke(shift_weight(&fake), shift_event(&rollout)).await;
    let rolled_back = invoke(rollback(&fake), catch_event(&rollout)).await;
    // THEN both refuse, and the alias is as it was
    for refused in [shifted.unwrap_err(), rolled_back.unwrap_err()] {
        assert_eq!(refused.error_type, "ExecutionMismatch");
        assert!(
            refused.error_message.contains("claims stable version 5"),
            "{}",
            refused.error_message
        );
    }
    assert_eq!(live(&fake), before);
}

#[tokio::test]
async fn an_execution_whose_lock_was_released_cannot_shift_again() {
    // GIVEN d-1 at 10%, and its lock released (the reconciler handled it; then it was redriven)
    let fake = orders();
    let rollout = at_first_step(&fake).await;
    fake.release_lock_quietly(KEY);
    let before = live(&fake);
    // WHEN its next shift runs
    let err = invoke(shift_weight(&fake), shift_event(&rollout))
        .await
        .unwrap_err();
    // THEN it is refused, and nothing was written
    assert_eq!(err.error_type, "ExecutionMismatch");
    assert!(
        err.error_message.contains("its lock was released"),
        "{}",
        err.error_message
    );
    assert_eq!(live(&fake), before);
}
