//! Steering a rollout in flight through the real binary, on a local stack: pause, resume, promote, an incident's
//! fix and an emergency — each control recorded with who did it and why.

use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::types::StateValue;
use safeshift_local::executions;
use serde_json::{Value, json};

mod common;

use common::{Env, deployment, env, text};

/// The identity moto's STS answers for any credentials: what the CLI records as the caller.
const CALLER: &str = "arn:aws:sts::123456789012:user/moto";

fn sfn(e: &Env) -> aws_sdk_sfn::Client {
    aws_sdk_sfn::Client::new(&e.stack.config)
}

/// `safeshift <verb> <arn> <args…>`, which must succeed; its standard output.
async fn control(e: &Env, verb: &str, arn: &str, args: &[&str]) -> String {
    let mut all = vec![verb, arn];
    all.extend_from_slice(args);
    let out = e.run(&all).await;
    assert!(
        out.status.success(),
        "{verb}: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

async fn status(e: &Env, arn: &str) -> Value {
    let out = e.run(&["status", arn, "--output", "json"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The execution's states entered, in order.
async fn entered(e: &Env, arn: &str) -> Vec<String> {
    executions::states_entered(&executions::history(&sfn(e), arn).await.unwrap())
}

async fn wait_for_state(e: &Env, arn: &str, state: &str) {
    executions::wait_for_state(&sfn(e), arn, state, Duration::from_secs(30))
        .await
        .unwrap_or_else(|err| panic!("{state} never entered: {err}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_rollout_holds_its_weight_and_a_resume_bakes_what_was_left() {
    let e = env("pause-resume").await;
    e.fx.function("orders", 2).await.unwrap();
    let d = deployment(
        "2",
        json!({"canary": {"percent": 20, "intervalSeconds": 6}}),
    );
    let arn = e.start("d.json", &d).await;
    wait_for_state(&e, &arn, "Bake").await;
    let paused = control(&e, "pause", &arn, &["--reason", "checking the dashboard"]).await;
    assert!(
        paused.contains(&format!(
            "pause by {CALLER} (checking the dashboard): applied"
        )),
        "{paused}"
    );
    let pausing = Instant::now();
    let s = status(&e, &arn).await;
    assert_eq!(s["waitingIn"], "Paused", "{s:#}");
    let until = s["paused"]["until"].as_u64().unwrap();
    let since = s["paused"]["since"].as_u64().unwrap();
    assert_eq!(until - since, 86_400, "the default pause limit: {s:#}");
    let left = s["paused"]["remainingWaitSeconds"].as_u64().unwrap();
    assert!((1..=6).contains(&left), "{s:#}");
    let text_status = e.run(&["status", &arn]).await;
    assert!(
        text(&text_status.stdout).contains("PAUSED since"),
        "{}",
        text(&text_status.stdout)
    );
    // Held past the whole bake: still at 20%.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        e.fx.routing("orders").await.unwrap(),
        ("1".to_owned(), vec![("2".to_owned(), 0.2)])
    );
    assert_eq!(
        entered(&e, &arn)
            .await
            .iter()
            .filter(|s| *s == "ShiftWeight")
            .count(),
        1
    );
    let resumed = control(&e, "resume", &arn, &["--reason", "looks fine"]).await;
    let resuming = Instant::now();
    assert!(
        resumed.contains(&format!("resume by {CALLER} (looks fine): applied")),
        "{resumed}"
    );
    let watched = e.run(&["watch", &arn]).await;
    let done = resuming.elapsed();
    assert!(watched.status.success(), "{}", text(&watched.stderr));
    // The resumed step baked what it had left, not a fresh bake and not nothing.
    assert!(
        done >= Duration::from_secs(left.saturating_sub(1)),
        "done {done:?} after resuming, {left} s were left"
    );
    assert!(pausing.elapsed() >= Duration::from_secs(7));
    let lines = text(&watched.stdout);
    assert!(
        lines.contains(&format!("pause by {CALLER} (checking the dashboard)")),
        "{lines}"
    );
    assert!(
        lines.contains(&format!("resume by {CALLER} (looks fine)")),
        "{lines}"
    );
    assert_eq!(
        e.fx.routing("orders").await.unwrap(),
        ("2".to_owned(), vec![])
    );
    // The final output keeps the record.
    let s = status(&e, &arn).await;
    let ops = s["operations"].as_array().unwrap();
    assert_eq!(ops.len(), 2, "{s:#}");
    assert_eq!(
        (ops[0]["action"].as_str(), ops[0]["by"]["arn"].as_str()),
        (Some("pause"), Some(CALLER))
    );
    assert_eq!(ops[1]["reason"], "looks fine");
    // Subscribers heard both, with who and why.
    let events = e.stack.events().await.unwrap();
    let of = |t: &str| {
        events
            .iter()
            .find(|ev| ev["detail-type"] == t)
            .unwrap_or_else(|| panic!("no {t} in {events:#?}"))["detail"]
            .clone()
    };
    let paused = of("Deployment Paused");
    assert_eq!(
        (paused["by"].as_str(), paused["reason"].as_str()),
        (Some(CALLER), Some("checking the dashboard"))
    );
    assert_eq!(paused["until"], until);
    assert_eq!(of("Deployment Resumed")["reason"], "looks fine");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pause_past_its_limit_rolls_back() {
    let e = env("pause-timeout").await;
    e.fx.function("orders", 2).await.unwrap();
    let mut d = deployment(
        "2",
        json!({"canary": {"percent": 20, "intervalSeconds": 30}}),
    );
    d["maxPauseSeconds"] = json!(2);
    let arn = e.start("d.json", &d).await;
    wait_for_state(&e, &arn, "Bake").await;
    control(&e, "pause", &arn, &["--reason", "lunch"]).await;
    let watched = e.run(&["watch", &arn]).await;
    assert_eq!(watched.status.code(), Some(1));
    assert!(
        text(&watched.stderr).contains("PauseTimedOut"),
        "{}",
        text(&watched.stderr)
    );
    assert!(
        text(&watched.stdout).contains("the pause ran out"),
        "{}",
        text(&watched.stdout)
    );
    assert_eq!(
        e.fx.routing("orders").await.unwrap(),
        ("1".to_owned(), vec![])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alarm_while_paused_still_rolls_back() {
    let e = env("pause-alarm").await;
    e.fx.function("orders", 2).await.unwrap();
    e.fx.alarm("orders-errors").await.unwrap();
    let mut d = deployment(
        "2",
        json!({"canary": {"percent": 20, "intervalSeconds": 60}}),
    );
    d["alarms"] = json!(["orders-errors"]);
    let arn = e.start("d.json", &d).await;
    wait_for_state(&e, &arn, "Bake").await;
    control(&e, "pause", &arn, &["--reason", "hold"]).await;
    wait_for_state(&e, &arn, "Paused").await;
    e.fx.set_alarm("orders-errors", StateValue::Alarm, "errors")
        .await
        .unwrap();
    let watched = e.run(&["watch", &arn]).await;
    assert_eq!(watched.status.code(), Some(1));
    assert!(
        text(&watched.stderr).contains("AlarmFired"),
        "{}",
        text(&watched.stderr)
    );
    assert_eq!(
        e.fx.routing("orders").await.unwrap(),
        ("1".to_owned(), vec![])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn promote_ends_a_bake_and_promote_full_goes_to_100_with_the_post_hook() {
    let e = env("promote").await;
    e.fx.function("orders", 2).await.unwrap();
    e.fx.function("SafeshiftHook_orders-e2e", 1).await.unwrap();
    let mut d = deployment(
        "2",
        json!({"steps": [{"percent": 10, "bakeSeconds": 300}, {"percent": 50, "bakeSeconds": 300}]}),
    );
    d["hooks"] = json!({"postTraffic": "SafeshiftHook_orders-e2e"});
    d["approval"] = json!("beforePromotion");
    // No traffic at all: only an operator's promote can end these steps early.
    d["analysis"] = json!({"maxErrorRate": 0.05, "minInvocations": 100, "metricDelaySeconds": 0});
    let arn = e.start("d.json", &d).await;
    wait_for_state(&e, &arn, "Bake").await;
    // A promote without --full ends this bake: the next step.
    let out = control(&e, "promote", &arn, &["--reason", "canary is clean"]).await;
    assert!(out.contains("ending the bake now"), "{out}");
    e.fx.wait_for_routing("orders", |(_, w)| w == &[("2".to_owned(), 0.5)])
        .await
        .unwrap();
    // --full: 100% now, past the approval gate, the post-traffic hook still run.
    let out = control(
        &e,
        "promote",
        &arn,
        &["--full", "--reason", "hotfix needed everywhere"],
    )
    .await;
    assert!(out.contains("going to 100% now"), "{out}");
    let watched = e.run(&["watch", &arn]).await;
    let lines = text(&watched.stdout);
    assert!(
        watched.status.success(),
        "{lines}\n{}",
        text(&watched.stderr)
    );
    assert!(
        lines.contains("postTraffic hook SafeshiftHook_orders-e2e"),
        "{lines}"
    );
    assert!(
        lines.contains(&format!(
            "promote --full by {CALLER} (hotfix needed everywhere)"
        )),
        "{lines}"
    );
    assert_eq!(
        e.fx.routing("orders").await.unwrap(),
        ("2".to_owned(), vec![])
    );
    let states = entered(&e, &arn).await;
    assert!(!states.contains(&"Approval".to_owned()), "{states:?}");
    assert_eq!(
        states.iter().filter(|s| *s == "ShiftWeight").count(),
        3,
        "{states:?}"
    );
    let s = status(&e, &arn).await;
    let ops = s["operations"].as_array().unwrap();
    assert_eq!(ops.len(), 2, "{s:#}");
    assert_eq!(ops[1]["full"], true);
    assert_eq!(ops[1]["step"], 2);
    // The step whose bake was cut says so in its record.
    assert!(status_output_mentions(&e, &arn, "ended early").await);
}

/// Whether the execution's final output mentions `needle`.
async fn status_output_mentions(e: &Env, arn: &str, needle: &str) -> bool {
    let d = sfn(e)
        .describe_execution()
        .execution_arn(arn)
        .send()
        .await
        .unwrap();
    d.output().unwrap_or_default().contains(needle)
}

#[tokio::test(flavor = "multi_thread")]
async fn controls_that_do_not_fit_are_refused_before_anything_is_sent() {
    let e = env("misfit").await;
    e.fx.function("orders", 2).await.unwrap();
    let d = deployment(
        "2",
        json!({"canary": {"percent": 20, "intervalSeconds": 20}}),
    );
    let arn = e.start("d.json", &d).await;
    wait_for_state(&e, &arn, "Bake").await;
    let out = e.run(&["resume", &arn]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is not paused"),
        "{}",
        text(&out.stderr)
    );
    let out = e.run(&["pause", &arn]).await;
    assert_eq!(out.status.code(), Some(2), "--reason is required");
    // The abort's cause names who and why (moto keeps no StopExecution cause: the CLI's own line says it).
    let out = control(&e, "abort", &arn, &["--reason", "wrong build"]).await;
    assert!(out.contains(&format!("by {CALLER}: wrong build")), "{out}");
    assert!(
        status(&e, &arn).await["operations"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

async fn incident(e: &Env) {
    e.fx.function("orders", 2).await.unwrap();
    e.fx.alarm("orders-errors").await.unwrap();
    e.fx.set_alarm("orders-errors", StateValue::Alarm, "the incident")
        .await
        .unwrap();
}

fn fix() -> Value {
    let mut d = deployment("2", json!({"steps": [{"percent": 50, "bakeSeconds": 4}]}));
    d["alarms"] = json!(["orders-errors"]);
    d["incidentFix"] = json!(true);
    d["analysis"] = json!({"maxErrorRate": 0.05, "minInvocations": 100, "metricDelaySeconds": 0});
    d
}

async fn traffic(e: &Env, target: [u32; 3], stable: [u32; 3]) {
    for (version, counts) in [("2", target), ("1", stable)] {
        e.fx.put_version_metrics("orders", "live", version, counts)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fix_for_an_incident_ships_while_its_alarm_fires_and_a_bad_fix_still_rolls_back() {
    let good = async {
        let e = env("fix-good").await;
        incident(&e).await;
        // Without the option, the firing alarm refuses the deployment.
        let mut refused = fix();
        refused["incidentFix"] = json!(false);
        let out = e
            .run(&["start", "--input", &e.input("r.json", &refused), "--wait"])
            .await;
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("AlarmFiringAtStart"),
            "{}",
            text(&out.stderr)
        );
        let out = e
            .run(&[
                "start",
                "--input",
                &e.input("d.json", &fix()),
                "--attempt",
                "2",
                "--output",
                "json",
            ])
            .await;
        assert!(out.status.success(), "{}", text(&out.stderr));
        let arn = serde_json::from_slice::<Value>(&out.stdout).unwrap()["executionArn"]
            .as_str()
            .unwrap()
            .to_owned();
        e.fx.wait_for_split("orders").await.unwrap();
        traffic(&e, [500, 1, 0], [500, 40, 0]).await;
        let watched = e.run(&["watch", &arn]).await;
        let lines = text(&watched.stdout);
        assert!(
            watched.status.success(),
            "{lines}\n{}",
            text(&watched.stderr)
        );
        assert!(lines.contains("still in the incident's ALARM"), "{lines}");
        assert_eq!(
            e.fx.routing("orders").await.unwrap(),
            ("2".to_owned(), vec![])
        );
    };
    let bad = async {
        let e = env("fix-bad").await;
        incident(&e).await;
        let arn = e.start("d.json", &fix()).await;
        e.fx.wait_for_split("orders").await.unwrap();
        // The fix fails a fifth of its calls: its own metrics stop it, whatever the alarm says.
        traffic(&e, [500, 100, 0], [500, 40, 0]).await;
        let watched = e.run(&["watch", &arn]).await;
        assert_eq!(watched.status.code(), Some(1));
        assert!(
            text(&watched.stderr).contains("AnalysisFailed"),
            "{}",
            text(&watched.stderr)
        );
        assert_eq!(
            e.fx.routing("orders").await.unwrap(),
            ("1".to_owned(), vec![])
        );
    };
    let relapse = async {
        let e = env("fix-relapse").await;
        incident(&e).await;
        let mut d = fix();
        d["strategy"] = json!({"steps": [{"percent": 50, "bakeSeconds": 60}]});
        let arn = e.start("d.json", &d).await;
        e.fx.wait_for_split("orders").await.unwrap();
        // The incident clears, then the alarm fires again under the fix: that is the fix's to answer for.
        e.fx.set_alarm("orders-errors", StateValue::Ok, "recovered")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        e.fx.set_alarm("orders-errors", StateValue::Alarm, "again")
            .await
            .unwrap();
        let watched = e.run(&["watch", &arn]).await;
        assert_eq!(watched.status.code(), Some(1));
        assert!(
            text(&watched.stderr).contains("AlarmFired"),
            "{}",
            text(&watched.stderr)
        );
        assert_eq!(
            e.fx.routing("orders").await.unwrap(),
            ("1".to_owned(), vec![])
        );
    };
    tokio::join!(good, bad, relapse);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_emergency_goes_all_at_once_through_a_firing_alarm_and_needs_a_reason() {
    let e = env("emergency").await;
    incident(&e).await;
    let mut d = deployment("2", json!("Linear10PercentEvery10Minutes"));
    d["alarms"] = json!(["orders-errors"]);
    d["emergency"] = json!({});
    let out = e.run(&["start", "--input", &e.input("bad.json", &d)]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("emergency.reason"),
        "{}",
        text(&out.stderr)
    );
    d["emergency"] = json!({"reason": "INC-42: checkout down"});
    let out = e
        .run(&["start", "--input", &e.input("d.json", &d), "--wait"])
        .await;
    let lines = text(&out.stdout);
    assert!(out.status.success(), "{lines}\n{}", text(&out.stderr));
    assert!(
        lines.contains("step 1/1: promoted: 100% on version 2"),
        "{lines}"
    );
    assert_eq!(
        e.fx.routing("orders").await.unwrap(),
        ("2".to_owned(), vec![])
    );
}
