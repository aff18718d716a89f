//! `safeshift start|watch|status|list|abort` through the real binary, against a local stack, configured the aws
//! CLI's way (AWS_ENDPOINT_URL, region, SAFESHIFT_STATE_MACHINE).

use std::process::Output;
use std::time::{Duration, Instant};

use safeshift_local::executions;
use serde_json::{Value, json};

mod common;

use common::{Env, deployment, env, text};

#[tokio::test(flavor = "multi_thread")]
async fn start_and_wait_follows_a_rollout_to_promotion() {
    let e = env("promote").await;
    e.fx.function("orders", 2).await.unwrap();
    let input = e.input(
        "d.json",
        &deployment(
            "2",
            json!({"canary": {"percent": 20, "intervalSeconds": 1}}),
        ),
    );
    let out = e.run(&["start", "--input", &input, "--wait"]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains(
        "execution: arn:aws:states:us-east-1:123456789012:execution:safeshift-rollout:orders-live-2-47987c5f"
    ));
    assert!(stdout.contains("step 1/2: 20.0% on version 2"), "{stdout}");
    assert!(
        stdout.contains("step 2/2: promoted: 100% on version 2"),
        "{stdout}"
    );
    assert!(stdout.contains("deployment succeeded"), "{stdout}");
    assert_eq!(
        e.fx.routing("orders").await.unwrap(),
        ("2".to_owned(), vec![])
    );

    let list = e.run(&["list", "--output", "json"]).await;
    let rows: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(rows[0]["name"], "orders-live-2-47987c5f");
    assert_eq!(rows[0]["status"], "SUCCEEDED");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_exits_non_zero_with_the_reason() {
    let e = env("rollback").await;
    e.fx.function("orders", 2).await.unwrap();
    e.fx.alarm("orders-errors").await.unwrap();
    let mut d = deployment(
        "2",
        json!({"canary": {"percent": 10, "intervalSeconds": 5}}),
    );
    d["alarms"] = json!(["orders-errors"]);
    let input = e.input("d.json", &d);
    // The alarm fires once the canary takes traffic (one already firing at start refuses the deployment).
    let args = ["start", "--input", &input, "--wait"];
    let (out, ()) = tokio::join!(e.run(&args), async {
        wait_for_split(&e).await;
        e.fx.set_alarm(
            "orders-errors",
            aws_sdk_cloudwatch::types::StateValue::Alarm,
            "errors",
        )
        .await
        .unwrap();
    });
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("rollback: reverted"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("deployment FAILED: AlarmFired"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        e.fx.routing("orders").await.unwrap(),
        ("1".to_owned(), vec![])
    );
}

async fn wait_for_split(e: &Env) {
    e.fx.wait_for_split("orders").await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_start_is_the_same_execution_and_a_different_one_is_refused() {
    let e = env("retry").await;
    e.fx.function("orders", 3).await.unwrap();
    let slow = deployment(
        "2",
        json!({"canary": {"percent": 10, "intervalSeconds": 30}}),
    );
    let first = e
        .run(&[
            "start",
            "--input",
            &e.input("a.json", &slow),
            "--output",
            "json",
        ])
        .await;
    assert!(first.status.success(), "{}", text(&first.stderr));
    // The same deployment written differently is the same input.
    let pretty = serde_json::to_string_pretty(&slow).unwrap();
    std::fs::write(e.dir.join("b.json"), pretty).unwrap();
    let again = e
        .run(&[
            "start",
            "--input",
            &e.dir.join("b.json").to_string_lossy(),
            "--output",
            "json",
        ])
        .await;
    assert!(again.status.success(), "{}", text(&again.stderr));
    let arn =
        |o: &Output| serde_json::from_slice::<Value>(&o.stdout).unwrap()["executionArn"].clone();
    assert_eq!(arn(&first), arn(&again));

    let other_strategy = deployment("2", json!("AllAtOnce"));
    let refused = e
        .run(&["start", "--input", &e.input("c.json", &other_strategy)])
        .await;
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("--attempt 2"),
        "{}",
        text(&refused.stderr)
    );

    wait_for_split(&e).await;
    let other_target = deployment("3", json!("AllAtOnce"));
    let busy = e
        .run(&["start", "--input", &e.input("d.json", &other_target)])
        .await;
    assert!(!busy.status.success());
    assert!(
        text(&busy.stderr).contains("deployment in progress: orders-live-2-47987c5f"),
        "{}",
        text(&busy.stderr)
    );

    let status = e
        .run(&["status", arn(&first).as_str().unwrap(), "--output", "json"])
        .await;
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        (status["status"].clone(), status["step"].clone()),
        (json!("RUNNING"), json!(1))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn abort_stops_the_rollout_and_reverts_the_alias_itself() {
    let e = env("abort").await;
    e.fx.function("orders", 2).await.unwrap();
    let d = deployment(
        "2",
        json!({"canary": {"percent": 10, "intervalSeconds": 60}}),
    );
    let arn = e.start("d.json", &d).await;
    wait_for_split(&e).await;
    let out = e.run(&["abort", &arn]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("rollback: reverted"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        e.fx.routing("orders").await.unwrap(),
        ("1".to_owned(), vec![])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn abort_of_a_finished_execution_is_refused_and_the_alias_kept() {
    let e = env("abort-finished").await;
    e.fx.function("orders", 2).await.unwrap();
    let d = deployment("2", json!("AllAtOnce"));
    let started = e
        .run(&[
            "start",
            "--input",
            &e.input("d.json", &d),
            "--wait",
            "--output",
            "json",
        ])
        .await;
    assert!(started.status.success(), "{}", text(&started.stderr));
    // With --wait, JSON output is one line per event, the start first.
    let first = text(&started.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let arn = serde_json::from_str::<Value>(&first).unwrap()["executionArn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        e.fx.routing("orders").await.unwrap(),
        ("2".to_owned(), vec![])
    );
    // WHEN an operator in a hurry aborts the deployment that already succeeded
    let out = e.run(&["abort", &arn]).await;
    // THEN it is refused, saying why, and the promoted alias is left as it is
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("already ended SUCCEEDED"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        e.fx.routing("orders").await.unwrap(),
        ("2".to_owned(), vec![])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_before_anything_starts() {
    let e = env("bad").await;
    let out = e
        .run(&[
            "start",
            "--input",
            &e.input("d.json", &deployment("$LATEST", json!("AllAtOnce"))),
        ])
        .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("`targetVersion`"),
        "{}",
        text(&out.stderr)
    );
    let list = e.run(&["list", "--output", "json"]).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&list.stdout).unwrap(),
        json!([])
    );
}

/// Retries `approve`/`reject` until the rollout reaches its gate (they refuse while nothing waits).
async fn answer_gate(e: &Env, verb: &str, arn: &str) -> Output {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = e.run(&[verb, arn]).await;
        // An alarm may end the wait first (the alarms are watched through an approval): nothing left to answer.
        if out.status.success() || text(&out.stderr).contains("already ended FAILED") {
            return out;
        }
        assert!(
            text(&out.stderr).contains("is not waiting for an approval"),
            "{}",
            text(&out.stderr)
        );
        assert!(
            Instant::now() < deadline,
            "the rollout never reached its approval gate"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn gated(e: &Env) -> String {
    e.fx.function("orders", 2).await.unwrap();
    let mut d = deployment(
        "2",
        json!({"canary": {"percent": 10, "intervalSeconds": 1}}),
    );
    d["approval"] = json!("beforePromotion");
    e.start("d.json", &d).await
}

#[tokio::test(flavor = "multi_thread")]
async fn approve_lets_a_gated_rollout_finish() {
    let e = env("approve").await;
    let arn = gated(&e).await;
    answer_gate(&e, "approve", &arn).await;
    let watched = e.run(&["watch", &arn]).await;
    assert!(watched.status.success(), "{}", text(&watched.stderr));
    let stdout = text(&watched.stdout);
    assert!(stdout.contains("waiting for approval"), "{stdout}");
    assert!(stdout.contains("approved"), "{stdout}");
    let events = e.stack.events().await.unwrap();
    let pending = events
        .iter()
        .find(|ev| ev["detail-type"] == "Approval Pending")
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(
        pending["detail"]["approve"],
        format!("safeshift approve {arn}")
    );
    assert_eq!(
        e.fx.routing("orders").await.unwrap(),
        ("2".to_owned(), vec![])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_given_while_an_alarm_fires_moves_no_traffic() {
    let e = env("approve-alarm").await;
    e.fx.function("orders", 2).await.unwrap();
    e.fx.alarm("orders-errors").await.unwrap();
    let mut d = deployment(
        "2",
        json!({"canary": {"percent": 10, "intervalSeconds": 1}}),
    );
    d["approval"] = json!("beforePromotion");
    d["alarms"] = json!(["orders-errors"]);
    let arn = e.start("d.json", &d).await;
    // GIVEN the canary passed its gates and waits for approval
    let sfn = aws_sdk_sfn::Client::new(&e.stack.config);
    executions::wait_for_state(&sfn, &arn, "Approval", Duration::from_secs(30))
        .await
        .expect("the rollout reaches its approval gate");
    // WHEN its alarm fires, and someone approves anyway
    e.fx.set_alarm(
        "orders-errors",
        aws_sdk_cloudwatch::types::StateValue::Alarm,
        "errors",
    )
    .await
    .unwrap();
    answer_gate(&e, "approve", &arn).await;
    // THEN the gates are judged again before the promotion: rolled back, never promoted
    let watched = e.run(&["watch", &arn]).await;
    assert_eq!(watched.status.code(), Some(1));
    assert!(
        text(&watched.stderr).contains("AlarmFired"),
        "{}",
        text(&watched.stderr)
    );
    let entered = executions::states_entered(&executions::history(&sfn, &arn).await.unwrap());
    assert_eq!(
        entered.iter().filter(|s| *s == "ShiftWeight").count(),
        1,
        "the promotion never ran"
    );
    assert_eq!(
        e.fx.routing("orders").await.unwrap(),
        ("1".to_owned(), vec![])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reject_rolls_a_gated_rollout_back() {
    let e = env("reject").await;
    let arn = gated(&e).await;
    answer_gate(&e, "reject", &arn).await;
    let watched = e.run(&["watch", &arn]).await;
    assert_eq!(watched.status.code(), Some(1));
    assert!(
        text(&watched.stderr).contains("ApprovalRejected"),
        "{}",
        text(&watched.stderr)
    );
    assert_eq!(
        e.fx.routing("orders").await.unwrap(),
        ("1".to_owned(), vec![])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_state_machine_is_found_from_the_stack_output_and_status_defaults_to_the_latest() {
    let e = env("stack").await;
    e.fx.function("orders", 2).await.unwrap();
    let d = deployment(
        "2",
        json!({"canary": {"percent": 10, "intervalSeconds": 1}}),
    );
    let done = e
        .run(&["start", "--input", &e.input("d.json", &d), "--wait"])
        .await;
    assert!(done.status.success(), "{}", text(&done.stderr));

    // What `sam deploy` leaves behind: a stack whose output names the state machine.
    let template = json!({
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"StateMachineArn": {"Value": e.stack.state_machine_arn}}
    });
    aws_sdk_cloudformation::Client::new(&e.stack.config)
        .create_stack()
        .stack_name("safeshift")
        .template_body(template.to_string())
        .send()
        .await
        .unwrap();
    let mut status = e.command(&["status", "--output", "json"]);
    status.env_remove("SAFESHIFT_STATE_MACHINE");
    let out = tokio::task::spawn_blocking(move || status.output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["status"], "SUCCEEDED");
    assert!(
        status["executionArn"]
            .as_str()
            .unwrap()
            .ends_with(":orders-live-2-47987c5f"),
        "{status}"
    );

    let mut missing = e.command(&["list", "--stack", "no-such-stack"]);
    missing.env_remove("SAFESHIFT_STATE_MACHINE");
    let out = tokio::task::spawn_blocking(move || missing.output().unwrap())
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("which state machine?"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_is_one_deployment_with_a_line_per_target_and_abort_restores_every_alias() {
    let e = env("release").await;
    for f in ["orders-api", "orders-worker"] {
        e.fx.function(f, 2).await.unwrap();
    }
    let release = json!({
        "release": "orders-r1",
        "targets": [
            {"functionName": "orders-api", "alias": "live", "targetVersion": "2"},
            {"functionName": "orders-worker", "alias": "live", "targetVersion": "2"}
        ],
        "strategy": {"canary": {"percent": 10, "intervalSeconds": 60}}
    });
    let arn = e.start("r.json", &release).await;
    assert!(arn.contains(":orders-r1-"), "{arn}");
    for f in ["orders-api", "orders-worker"] {
        e.fx.wait_for_split(f).await.unwrap();
    }
    // status: one deployment, a line per target.
    let out = e.run(&["status", &arn]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("release orders-r1: 2 targets"), "{stdout}");
    assert!(
        stdout.contains("  orders-api:live on version 1 -> version 2")
            && stdout.contains("  orders-worker:live on version 1 -> version 2"),
        "{stdout}"
    );
    // A single deployment of one of its aliases is refused while the release runs.
    let mut clash = deployment("2", json!("AllAtOnce"));
    clash["functionName"] = json!("orders-worker");
    let clash = e.input("c.json", &clash);
    let out = e.run(&["start", "--input", &clash]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("deployment in progress")
            && text(&out.stderr).contains("orders-worker:live"),
        "{}",
        text(&out.stderr)
    );
    // abort: every alias back on 1, a line each.
    let out = e.run(&["abort", &arn]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("  orders-api:live: reverted")
            && stdout.contains("  orders-worker:live: reverted"),
        "{stdout}"
    );
    for f in ["orders-api", "orders-worker"] {
        assert_eq!(
            e.fx.routing(f).await.unwrap(),
            ("1".to_owned(), vec![]),
            "{f}"
        );
    }
}
