//! The shipped state machine (`statemachine/rollout.asl.json`) keeps its promises: every Task is bounded, retried
//! and caught into the rollback path, the rollback path ends in Fail, the error names it matches are the engine's,
//! it stays within 4 transitions per step, and no valid input can reach the history limit.

use std::collections::BTreeSet;

use safeshift_core::ErrorType;
use safeshift_core::asl::{Definition, HISTORY_EVENT_LIMIT, ROLLOUT_DEFINITION, TransitionModel};
use safeshift_core::gates::analysis::MAX_EXTENSIONS;
use safeshift_core::schedule::MAX_TRAFFIC_STEPS;
use serde_json::{Value, json};

const ROLLBACK: &str = "RollBack";
const PREPARE: &str = "Prepare";
const RELEASE: &str = "ReleaseLock";
/// The watched waits: a bake, a bake extension. Their timeout is the bake (`TimeoutSecondsPath`), which ends them
/// the normal way on to CheckGates; a listed alarm fails them with AlarmFired.
const WAITS: [&str; 3] = ["Bake", "ExtendBake", "Paused"];
/// The hook points: each waits for its task token as long as its hook may take (`hookTimeouts`).
const HOOKS: [&str; 5] = [
    "PreTrafficHook",
    "BeforeStepHook",
    "AfterStepHook",
    "PostTrafficHook",
    "OnRollbackHook",
];

fn rollout() -> &'static Definition {
    Definition::rollout()
}

fn tasks() -> Vec<(&'static str, &'static Value)> {
    rollout()
        .states()
        .filter(|(_, s)| s["Type"] == "Task")
        .collect()
}

#[test]
fn every_task_is_bounded_retried_and_caught_into_the_rollback_path() {
    let required_retries = [
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
        "Throttled",
    ];
    assert!(tasks().len() >= 5);
    for (name, s) in tasks() {
        if WAITS.contains(&name) {
            assert!(
                s["TimeoutSecondsPath"].as_str().is_some() && s["TimeoutSeconds"].is_null(),
                "{name} should time out after its bake"
            );
        } else if HOOKS.contains(&name) {
            assert!(
                s["TimeoutSecondsPath"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("$.hookTimeouts.")),
                "{name} should time out after its hook's time"
            );
        } else {
            assert!(
                s["TimeoutSeconds"].as_u64().is_some_and(|t| t > 0),
                "{name} has no TimeoutSeconds"
            );
        }
        let retried: BTreeSet<&str> = s["Retry"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no Retry"))
            .iter()
            .flat_map(|r| {
                r["ErrorEquals"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e.as_str().unwrap())
            })
            .collect();
        for e in required_retries {
            assert!(retried.contains(e), "{name} does not retry {e}");
        }
        for r in s["Retry"].as_array().unwrap() {
            assert!(
                r["BackoffRate"].as_f64().unwrap_or(2.0) > 1.0,
                "{name} retries without backoff"
            );
        }
        let catch = s["Catch"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no Catch"));
        assert!(
            catch.iter().any(|c| c["ErrorEquals"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e == "States.ALL")),
            "{name} does not catch States.ALL"
        );
        let targets: Vec<&str> = catch.iter().map(|c| c["Next"].as_str().unwrap()).collect();
        let ends_in = |ty: &str| {
            targets
                .iter()
                .all(|t| rollout().state(t).unwrap()["Type"] == ty)
        };
        match name {
            // The rollback's own failure, and Prepare's (it wrote nothing: nothing to roll back, and nothing in
            // a refused input may steer a rollback), end the execution failed.
            ROLLBACK | PREPARE => assert!(ends_in("Fail"), "{name}: {targets:?}"),
            // The deployment has succeeded by then; a lock left behind is taken over once its holder ended.
            RELEASE => assert!(ends_in("Succeed"), "{name}: {targets:?}"),
            // The bake's end goes on to the gates; anything else rolls back.
            // A pause that runs out rolls back too, by way of recording why.
            "Paused" => assert_eq!(targets, ["PauseTimedOut", ROLLBACK], "{name}: {targets:?}"),
            // After the rollback: the onRollback hook's failure never blocks it.
            "OnRollbackHook" => assert_eq!(targets, ["RolledBack"], "{name}: {targets:?}"),
            // A hook that does not answer in time fails with HookFailed, by way of naming it.
            _ if HOOKS.contains(&name) => {
                assert_eq!(targets, ["HookTimedOut", ROLLBACK], "{name}: {targets:?}")
            }
            _ if WAITS.contains(&name) => {
                assert_eq!(targets, ["CheckGates", ROLLBACK], "{name}: {targets:?}")
            }
            _ => assert_eq!(targets, [ROLLBACK], "{name} must catch into the rollback"),
        }
    }
}

/// ASL cannot share a Retry or Catch between states, so the definition repeats them, one line per state. They are
/// one policy: every Task retries the same transient errors the same way, and every Task but the rollback sends any
/// other error to the rollback with it recorded in `$.error`. A copy edited alone fails here.
#[test]
fn every_task_repeats_the_one_retry_and_catch() {
    let retry = json!([{
        "ErrorEquals": [
            "Lambda.ServiceException",
            "Lambda.AWSLambdaException",
            "Lambda.SdkClientException",
            "Lambda.TooManyRequestsException",
            "Throttled",
            "AwsError"
        ],
        "IntervalSeconds": 2,
        "MaxAttempts": 4,
        "BackoffRate": 2.0
    }]);
    let catch = json!([{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": ROLLBACK}]);
    // The rollback keeps the error that sent it there and records its own beside it.
    let rollback_catch = json!([{
        "ErrorEquals": ["States.ALL"],
        "ResultPath": "$.rollbackError",
        "Next": "RollbackFailed"
    }]);
    let prepare_catch =
        json!([{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "PrepareFailed"}]);
    let release_catch = json!([{"ErrorEquals": ["States.ALL"], "ResultPath": "$.releaseError", "Next": "Deployed"}]);
    // A wait's timeout is its bake's normal end: on to the gates, leaving the state as it was.
    let wait_catch = json!([
        {"ErrorEquals": ["States.Timeout"], "ResultPath": null, "Next": "CheckGates"},
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": ROLLBACK}
    ]);
    let hook_catch = json!([
        {"ErrorEquals": ["States.Timeout"], "ResultPath": "$.error", "Next": "HookTimedOut"},
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": ROLLBACK}
    ]);
    let on_rollback_catch = json!([
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.onRollbackError", "Next": "RolledBack"}
    ]);
    let pause_catch = json!([
        {"ErrorEquals": ["States.Timeout"], "ResultPath": null, "Next": "PauseTimedOut"},
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": ROLLBACK}
    ]);
    // A wait retries sooner and less: a retry starts its bake again, and each attempt writes four history events.
    let mut wait_retry = retry.clone();
    wait_retry[0]["IntervalSeconds"] = json!(1);
    wait_retry[0]["MaxAttempts"] = json!(2);
    for special in [ROLLBACK, PREPARE, RELEASE] {
        assert!(tasks().iter().any(|(name, _)| *name == special));
    }
    for (name, s) in tasks() {
        let expected_retry = if WAITS.contains(&name) {
            &wait_retry
        } else {
            &retry
        };
        assert_eq!(
            &s["Retry"], expected_retry,
            "{name}'s Retry is not the one every Task shares"
        );
        let expected = match name {
            ROLLBACK => &rollback_catch,
            PREPARE => &prepare_catch,
            RELEASE => &release_catch,
            "Paused" => &pause_catch,
            "OnRollbackHook" => &on_rollback_catch,
            _ if HOOKS.contains(&name) => &hook_catch,
            _ if WAITS.contains(&name) => &wait_catch,
            _ => &catch,
        };
        assert_eq!(
            &s["Catch"], expected,
            "{name}'s Catch is not the shared one"
        );
    }
    for (name, s) in rollout().states().filter(|(_, s)| s["Type"] != "Task") {
        for key in ["Retry", "Catch"] {
            assert!(s.get(key).is_none(), "{name} is not a Task but has a {key}");
        }
    }
}

/// A denied call fails the same way every time: retrying only delays the rollback. AccessDenied must reach the
/// Catch at once, so no Retry may name it, nor a wildcard that would match it.
#[test]
fn access_denied_is_caught_never_retried() {
    assert!("AccessDenied".parse::<ErrorType>().is_ok());
    for (name, s) in tasks() {
        for r in s["Retry"].as_array().unwrap() {
            for e in r["ErrorEquals"].as_array().unwrap() {
                assert!(
                    !["AccessDenied", "States.ALL", "States.TaskFailed"]
                        .contains(&e.as_str().unwrap()),
                    "{name} retries {e}, so an AccessDenied would be retried"
                );
            }
        }
    }
}

#[test]
fn the_rollback_path_always_ends_in_fail() {
    // Every state reachable from RollBack, by any transition, is Fail or leads only to Fail: a rolled-back
    // deployment never looks green.
    let mut seen = BTreeSet::new();
    let mut stack = vec![ROLLBACK.to_owned()];
    while let Some(s) = stack.pop() {
        if !seen.insert(s.clone()) {
            continue;
        }
        let ty = rollout().state(&s).unwrap()["Type"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_ne!(ty, "Succeed", "{s} on the rollback path succeeds");
        let next = rollout().edges(&s);
        assert!(
            ty == "Fail" || !next.is_empty(),
            "{s} ends the rollback path without failing"
        );
        stack.extend(next.into_iter().map(|(t, _)| t));
    }
    assert!(seen.len() >= 2);
}

#[test]
fn a_failing_gate_goes_to_the_rollback() {
    let verdict = rollout().state("Verdict").unwrap();
    let fail = verdict["Choices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["StringEquals"] == "fail")
        .expect("a choice on the fail verdict");
    let next = fail["Next"].as_str().unwrap();
    assert_eq!(rollout().edges(next), [(ROLLBACK.to_owned(), false)]);
}

#[test]
fn every_engine_error_name_the_definition_uses_exists() {
    for name in rollout().error_names() {
        if name.starts_with("States.") || name.starts_with("Lambda.") {
            continue;
        }
        assert!(
            name.parse::<ErrorType>().is_ok(),
            "the definition matches `{name}`, which no engine error is named"
        );
    }
}

#[test]
fn the_approval_gate_waits_for_a_token_and_a_rejection_rolls_back() {
    let approval = rollout().state("Approval").expect("an Approval state");
    assert!(
        approval["Resource"]
            .as_str()
            .unwrap()
            .ends_with(".waitForTaskToken")
    );
    assert_eq!(
        approval["Parameters"]["Payload"]["taskToken.$"],
        "$$.Task.Token"
    );
    // Approved, Steer records who approved and why, and the gates are judged again before the next shift.
    assert_eq!(approval["Next"], "Steer");
    assert_eq!(approval["ResultPath"], "$.control");
    let steered = rollout().state("Steered").unwrap();
    assert!(
        steered["Choices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["StringEquals"] == "check" && c["Next"] == "CheckGates")
    );
    let verdict = rollout().state("Verdict").unwrap();
    assert!(
        verdict["Choices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["Variable"] == "$.approvalRequired")
    );
    // The execution outlasts the longest rollout plus the approval wait, so a waiting rollout is not cut short.
    let v: Value = serde_json::from_str(ROLLOUT_DEFINITION).unwrap();
    let execution = v["TimeoutSeconds"].as_u64().unwrap();
    assert!(
        execution
            >= safeshift_core::schedule::MAX_TOTAL_SECONDS
                + approval["TimeoutSeconds"].as_u64().unwrap()
                + safeshift_core::deployment::DEFAULT_MAX_PAUSE_SECONDS
    );
}

#[test]
fn jsonpath_only_for_the_local_executor() {
    let v: Value = serde_json::from_str(ROLLOUT_DEFINITION).unwrap();
    assert_ne!(v["QueryLanguage"], "JSONata");
    for (name, s) in rollout().states() {
        for key in ["Assign", "Arguments", "Output", "QueryLanguage"] {
            assert!(
                s.get(key).is_none(),
                "{name} uses {key}, which the local executor cannot run"
            );
        }
    }
    assert_eq!(
        rollout().state("Bake").unwrap()["TimeoutSecondsPath"],
        "$.waitSeconds"
    );
}

#[test]
fn at_most_four_transitions_per_step() {
    let model = rollout().transition_model().unwrap();
    assert_eq!(
        model,
        TransitionModel {
            per_step: 4,
            // Prepare, PreTrafficHook, PostTrafficHook, ReleaseLock, Deployed.
            fixed: 5,
            // Approval, Steer (which records the approval), Steered, then CheckGates and Verdict again.
            approval: 5,
            extension: 3,
            // ExtendBake, CheckGates, Verdict: a look at a step still baking costs what an extension does.
            look: 3,
            // BeforeStepHook, on the way to the shift.
            before_step_hook: 1,
            // AfterStepHook, then CheckGates and Verdict again.
            after_step_hook: 3,
        }
    );
}

#[test]
fn an_inconclusive_gate_extends_the_bake_and_judges_again() {
    let verdict = rollout().state("Verdict").unwrap();
    let inconclusive = verdict["Choices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["StringEquals"] == "inconclusive")
        .expect("a choice on the inconclusive verdict");
    let extend = rollout()
        .state(inconclusive["Next"].as_str().unwrap())
        .unwrap();
    assert_eq!(extend["Type"], "Task");
    assert_eq!(extend["TimeoutSecondsPath"], "$.gates.extendSeconds");
    // Its end (a timeout) is judged; an operator's control goes to Steer.
    assert_eq!(extend["Catch"][0]["Next"], "CheckGates");
    assert_eq!(extend["Next"], "Steer");
    // A failed gate records the gate's own error name (AlarmFired, AnalysisFailed, AnalysisInconclusive).
    let failed = rollout().state("GateFailed").unwrap();
    assert_eq!(failed["Parameters"]["Error.$"], "$.gates.error");
}

#[test]
fn no_valid_input_can_reach_the_history_limit() {
    let worst = rollout()
        .worst_case_history(MAX_TRAFFIC_STEPS + 1, MAX_EXTENSIONS, 0, (false, false))
        .unwrap();
    assert!(worst < HISTORY_EVENT_LIMIT, "{worst} events");
    // Extensions count: each adds to every step.
    assert!(
        worst
            > rollout()
                .worst_case_history(MAX_TRAFFIC_STEPS + 1, 0, 0, (false, false))
                .unwrap()
    );
    // The bound is real: a schedule long enough would cross it.
    assert!(
        rollout()
            .worst_case_history(10_000, 0, 0, (false, false))
            .unwrap()
            > HISTORY_EVENT_LIMIT
    );
}

#[test]
fn the_placeholders_are_the_five_functions() {
    assert_eq!(
        Definition::placeholders(ROLLOUT_DEFINITION),
        BTreeSet::from(
            [
                "CheckAlarmsFunctionArn",
                "RollbackFunctionArn",
                "RunHookFunctionArn",
                "ShiftWeightFunctionArn",
                "WatchGatesFunctionArn"
            ]
            .map(String::from)
        )
    );
}

/// Every engine Task but CheckGates (which only reads) names its execution, so the function can read it back and
/// refuse a direct invocation or a rollout that is not the execution's own.
#[test]
fn every_writing_task_names_its_execution() {
    for (name, s) in tasks() {
        if name == "CheckGates" {
            continue;
        }
        let parameters = if s["Resource"]
            .as_str()
            .unwrap()
            .ends_with(".waitForTaskToken")
        {
            &s["Parameters"]["Payload"]
        } else {
            &s["Parameters"]
        };
        let named = |p: &Value| p["executionArn.$"] == "$$.Execution.Id";
        let inner = parameters
            .as_object()
            .and_then(|o| o.values().find(|v| v.is_object()));
        assert!(
            named(parameters) || inner.is_some_and(named),
            "{name} does not pass $$.Execution.Id: {parameters}"
        );
    }
}

/// A refused Prepare never reaches the rollback: a start input shaped like a rollout cannot steer it.
#[test]
fn a_failed_prepare_ends_the_execution_without_a_rollback() {
    let prepare = rollout().state(PREPARE).unwrap();
    let targets: Vec<String> = rollout()
        .edges(PREPARE)
        .into_iter()
        .filter(|(_, caught)| *caught)
        .map(|(t, _)| t)
        .collect();
    assert_eq!(targets, ["PrepareFailed"], "{prepare}");
    let failed = rollout().state("PrepareFailed").unwrap();
    assert_eq!(failed["Type"], "Fail");
    assert_eq!(failed["ErrorPath"], "$.error.Error");
}
