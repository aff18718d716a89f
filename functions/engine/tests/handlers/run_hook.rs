//! run-hook: a hook is invoked with the documented event, judged by the hook contract, started asynchronously
//! with a task token, and skipped when not configured; and the example hook keeps that contract.

use safeshift_core::hooks::{HookEvent, HookResponse, Phase, judge_hook};
use safeshift_core::rollout::Rollout;
use safeshift_engine::fake::{Call, FakeAws};
use safeshift_engine::ports::InvokeMode;
use serde_json::{Value, json};

use crate::support::*;

/// The canary rollout, prepared, with `orders-smoke` as its preTraffic hook.
fn rollout_with_hooks(fake: &FakeAws) -> Rollout {
    let mut i = canary();
    i["hooks"] = json!({"preTraffic": "orders-smoke"});
    prepared(fake, i)
}

/// The event the hook receives for this rollout before traffic moves.
fn hook_event(task_token: Option<&str>) -> Value {
    let mut event = json!({"deploymentId": "d-1", "functionName": "orders", "alias": "live",
                           "stableVersion": "6", "targetVersion": "7", "phase": "preTraffic", "percent": 0.0,
                           "stepCount": 2,
                           "targets": [{"functionName": "orders", "alias": "live", "stableVersion": "6", "targetVersion": "7"}]});
    if let Some(token) = task_token {
        event["taskToken"] = json!(token);
    }
    event
}

#[tokio::test]
async fn a_hook_that_raises_fails_with_its_own_message() {
    // GIVEN a hook that raises
    let fake = orders();
    fake.hook_answers(
        "orders-smoke",
        Some("Unhandled"),
        r#"{"errorType":"Error","errorMessage":"checkout returned 500"}"#,
    );
    // WHEN the preTraffic phase runs
    let err = invoke(
        run_hook(&fake),
        json!({"phase": "preTraffic", "rollout": rollout_with_hooks(&fake), "executionArn": EXECUTION}),
    )
    .await
    .unwrap_err();
    // THEN it was invoked once, synchronously, with the documented event, and fails with the hook's own message
    assert_eq!(
        fake.hook_calls(),
        [Call::Invoke {
            function: "orders-smoke".into(),
            payload: hook_event(None),
            mode: InvokeMode::Sync,
        }]
    );
    assert_eq!(err.error_type, "HookFailed");
    assert_eq!(
        err.error_message,
        "preTraffic hook `orders-smoke` failed: Error: checkout returned 500 (Unhandled error)"
    );
}

#[tokio::test]
async fn a_hook_that_succeeds_passes_and_an_unconfigured_one_is_skipped() {
    let fake = orders();
    fake.hook_answers("orders-smoke", None, r#"{"status":"Succeeded"}"#);
    let rollout = rollout_with_hooks(&fake);
    let pre = invoke(
        run_hook(&fake),
        json!({"phase": "preTraffic", "rollout": rollout.clone(), "executionArn": EXECUTION}),
    )
    .await
    .unwrap();
    assert_eq!(
        pre,
        json!({"phase": "preTraffic", "hook": "orders-smoke", "verdict": "pass", "step": null,
               "output": {"status": "Succeeded"}})
    );
    let post = invoke(
        run_hook(&fake),
        json!({"phase": "postTraffic", "rollout": rollout, "executionArn": EXECUTION}),
    )
    .await
    .unwrap();
    assert_eq!(
        post,
        json!({"phase": "postTraffic", "hook": null, "verdict": "skipped", "step": null})
    );
    assert_eq!(fake.hook_calls().len(), 1);
}

#[tokio::test]
async fn a_hook_that_reports_failed_fails_with_its_message() {
    let fake = orders();
    fake.hook_answers(
        "orders-smoke",
        None,
        r#"{"status":"Failed","message":"checkout is down"}"#,
    );
    let err = invoke(
        run_hook(&fake),
        json!({"phase": "preTraffic", "rollout": rollout_with_hooks(&fake), "executionArn": EXECUTION}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_type, "HookFailed");
    assert_eq!(
        err.error_message,
        "preTraffic hook `orders-smoke` failed: checkout is down"
    );
}

#[tokio::test]
async fn a_callback_hook_is_started_asynchronously_with_the_token() {
    let fake = orders();
    fake.hook("orders-smoke");
    let mut i = canary();
    i["hooks"] = json!({"preTraffic": {"function": "orders-smoke", "mode": "callback", "timeoutSeconds": 600}});
    let rollout = prepared(&fake, i);
    let out = invoke(
        run_hook(&fake),
        json!({"phase": "preTraffic", "rollout": rollout, "taskToken": "tok-1", "executionArn": EXECUTION}),
    )
    .await
    .unwrap();
    assert_eq!(
        fake.hook_calls(),
        [Call::Invoke {
            function: "orders-smoke".into(),
            payload: hook_event(Some("tok-1")),
            mode: InvokeMode::Async,
        }]
    );
    assert_eq!(out["verdict"], "pending");
}

#[tokio::test]
async fn the_approval_phase_invokes_nothing_and_waits() {
    let fake = orders();
    let out = invoke(
        run_hook(&fake),
        json!({"phase": "approval", "rollout": rollout_with_hooks(&fake), "taskToken": "tok-2", "executionArn": EXECUTION}),
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        json!({"phase": "approval", "hook": null, "verdict": "pending", "step": null})
    );
    // The guard's reads of the execution and the hold, then the wait registered with the alarms: no hook.
    assert_eq!(
        operations(&fake),
        ["DescribeExecution", "GetItem", "UpdateItem"]
    );
    assert_eq!(fake.task_token(KEY).as_deref(), Some("tok-2"));
}

#[tokio::test]
async fn an_approval_asked_after_an_alarm_fired_fails_before_it_waits() {
    // GIVEN a listed alarm that went to ALARM (and back) while the step baked
    let fake = orders();
    let rollout = rollout_with_hooks(&fake);
    alarm_fired_on_the_hold(&fake);
    // WHEN the approval starts
    let err = invoke(
        run_hook(&fake),
        json!({"phase": "approval", "rollout": rollout, "taskToken": "tok-2", "executionArn": EXECUTION}),
    )
    .await
    .unwrap_err();
    // THEN it fails with the alarm, waiting for nobody
    assert_eq!(err.error_type, "AlarmFired");
    assert!(
        err.error_message
            .contains("orders-errors (went to ALARM at"),
        "{}",
        err.error_message
    );
    assert_eq!(fake.task_token(KEY), None);
}

#[tokio::test]
async fn a_post_traffic_hook_during_which_an_alarm_fired_fails_when_it_returns() {
    let fake = orders();
    let mut i = canary();
    i["hooks"] = json!({"postTraffic": "orders-e2e"});
    let rollout = prepared(&fake, i);
    fake.hook("orders-e2e");
    // The alarm fires while the hook runs: recorded on the hold, as the watcher records it.
    alarm_fired_on_the_hold(&fake);
    let err = invoke(
        run_hook(&fake),
        json!({"phase": "postTraffic", "rollout": rollout, "executionArn": EXECUTION}),
    )
    .await
    .unwrap_err();
    assert_eq!(fake.hook_calls().len(), 1, "the hook ran");
    assert_eq!(err.error_type, "AlarmFired");
}

#[tokio::test]
async fn a_hook_that_does_not_exist_is_named() {
    let fake = orders();
    let err = invoke(
        run_hook(&fake),
        json!({"phase": "preTraffic", "rollout": rollout_with_hooks(&fake), "executionArn": EXECUTION}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_type, "ResourceNotFound");
    assert_eq!(err.error_message, "hook `orders-smoke` does not exist");
}

// ---- the example hook in examples/hooks keeps the documented contract ---------------------------------------

#[test]
fn the_example_hook_passes_and_fails_by_the_contract() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let event = HookEvent {
        deployment_id: "d-1".into(),
        release: None,
        targets: vec![safeshift_core::hooks::HookTarget {
            function_name: "orders".into(),
            alias: "live".into(),
            stable_version: "6".into(),
            target_version: "7".into(),
        }],
        function_name: "orders".into(),
        alias: "live".into(),
        stable_version: "6".into(),
        target_version: "7".into(),
        phase: Phase::PreTraffic,
        percent: 0.0,
        step: None,
        step_count: 2,
        next_percent: None,
        passed_gates: Vec::new(),
        error: None,
        task_token: None,
    };
    let run = |event: Value| {
        let hook = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/hooks/smoke_hook.py"
        );
        let mut child = Command::new("python3")
            .arg(hook)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(event.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        HookResponse {
            function_error: None,
            payload: out.stdout,
        }
    };
    let healthy = serde_json::to_value(&event).unwrap();
    assert_eq!(healthy, hook_event(None), "the event the engine sends");
    assert!(judge_hook(Phase::PreTraffic, "smoke", &run(healthy.clone())).is_ok());
    let mut failing = healthy;
    failing["simulateFailure"] = json!(true);
    let err = judge_hook(Phase::PreTraffic, "smoke", &run(failing)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "preTraffic hook `smoke` failed: orders:7 health check returned 500"
    );
}

/// `examples/hooks/dual_hook.py` keeps both contracts: safeshift judges its return value; CodeDeploy gets
/// PutLifecycleEventHookExecutionStatus (here a stand-in client records the call: moto does not implement it).
#[test]
fn the_dual_hook_answers_safeshift_by_its_return_and_codedeploy_by_its_report() {
    use std::process::Command;

    let run = |script: &str, target: &str| {
        let out = Command::new("python3")
            .args(["-c", script])
            .env(
                "PYTHONPATH",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/hooks"),
            )
            .env("TARGET_FUNCTION", target)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        HookResponse {
            function_error: None,
            payload: out.stdout,
        }
    };
    let safeshift = |version: &str| {
        format!(
            r#"import json, dual_hook
print(json.dumps(dual_hook.handler({{"deploymentId": "d-1", "functionName": "orders", "targetVersion": "{version}", "phase": "preTraffic"}})))"#
        )
    };
    assert!(judge_hook(Phase::PreTraffic, "dual", &run(&safeshift("7"), "")).is_ok());
    let err = judge_hook(Phase::PreTraffic, "dual", &run(&safeshift("broken"), "")).unwrap_err();
    assert!(
        err.to_string()
            .contains("orders:broken health check returned 500"),
        "{err}"
    );

    let codedeploy = r#"import json, dual_hook
class Recorder:
    def put_lifecycle_event_hook_execution_status(self, **kw):
        print(json.dumps(kw))
dual_hook.handler({"DeploymentId": "d-9", "LifecycleEventHookExecutionId": "h-1"}, codedeploy=Recorder())"#;
    for (target, status) in [("orders:7", "Succeeded"), ("orders:broken", "Failed")] {
        let report: Value = serde_json::from_slice(&run(codedeploy, target).payload).unwrap();
        assert_eq!(
            report,
            json!({"deploymentId": "d-9", "lifecycleEventHookExecutionId": "h-1", "status": status})
        );
    }
}

#[tokio::test]
async fn with_no_post_traffic_hook_an_alarm_recorded_since_the_final_check_still_fails_the_promotion()
 {
    let fake = orders();
    let rollout = prepared(&fake, canary());
    alarm_fired_on_the_hold(&fake);
    let err = invoke(
        run_hook(&fake),
        json!({"phase": "postTraffic", "rollout": rollout, "executionArn": EXECUTION}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_type, "AlarmFired");
}

#[tokio::test]
async fn a_hooks_wait_is_watched_like_a_bake_and_a_sync_hook_is_answered_by_run_hook() {
    // GIVEN a deployment with alarms and a sync afterStep hook, its state waiting with a token
    let fake = orders();
    fake.hook_answers("orders-check", None, r#"{"status":"Succeeded"}"#);
    let mut i = canary();
    i["hooks"] = json!({"afterStep": "orders-check"});
    let rollout = prepared(&fake, i);
    // WHEN the afterStep phase runs
    let out = invoke(
        run_hook(&fake),
        json!({"phase": "afterStep", "rollout": rollout, "taskToken": "tok-3", "executionArn": EXECUTION}),
    )
    .await
    .unwrap();
    // THEN its wait was registered with the alarms before the hook ran, and run-hook answered the token itself
    assert_eq!(out["verdict"], "pass");
    assert_eq!(fake.task_token(KEY).as_deref(), Some("tok-3"));
    let ops = operations(&fake);
    let registered = ops.iter().position(|o| *o == "UpdateItem");
    let invoked = ops.iter().position(|o| *o == "Invoke");
    assert!(registered.is_some() && registered < invoked, "{ops:?}");
    assert_eq!(ops.last().copied(), Some("SendTaskSuccess"), "{ops:?}");
}
