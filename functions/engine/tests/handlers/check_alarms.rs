//! check-alarms: the alarm gate (fail closed, only ALARM fails) and the metric analysis (both versions in one
//! read, extensions while the target is silent), each answering in the report's one shape.

use safeshift_core::ErrorType;
use safeshift_core::gates::analysis::Window;
use safeshift_core::gates::{GateReport, Verdict};
use safeshift_engine::check_alarms::CheckEvent;
use safeshift_engine::fake::{Call, FakeAws};
use safeshift_engine::runtime::Handler;
use serde_json::json;

use crate::support::*;

// ---- alarms -----------------------------------------------------------------------------------------------

#[tokio::test]
async fn alarms_of_both_kinds_are_read_and_judged() {
    // GIVEN two metric alarms, one in ALARM, and a composite one
    let fake = FakeAws::new();
    fake.alarm("errors", "OK", "errors threshold not crossed")
        .alarm("latency", "ALARM", "latency threshold crossed")
        .alarm_of_kind("health", "composite", "OK", "ok");
    // WHEN the step is checked
    let report = check_alarms(&fake)
        .handle(check(rollout_with_alarms(&["errors", "latency", "health"])))
        .await
        .unwrap();
    // THEN it fails on the one in ALARM, with every alarm's state as evidence, from one read of all three
    assert_eq!(
        (report.verdict, report.error),
        (Verdict::Fail, Some(ErrorType::AlarmFired))
    );
    let alarms = result(&report, "alarms");
    assert_eq!(alarms["findings"], json!(["in ALARM: latency"]));
    assert_eq!(
        alarms["evidence"]["alarms"][1],
        json!({"name": "latency", "kind": "metric", "state": "ALARM", "reason": "latency threshold crossed",
               "updatedAt": "2026-11-29T10:00:00Z"})
    );
    assert_eq!(alarms["evidence"]["alarms"][2]["kind"], "composite");
    assert_eq!(
        fake.calls(),
        [Call::DescribeAlarms {
            names: vec!["errors".into(), "latency".into(), "health".into()]
        }]
    );
}

#[tokio::test]
async fn a_missing_alarm_fails_closed() {
    let fake = FakeAws::new();
    fake.alarm("errors", "OK", "fine");
    let err = invoke(
        check_alarms(&fake),
        serde_json::to_value(rollout_with_alarms(&["errors", "typo-alarm"])).unwrap(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_type, "ResourceNotFound");
    assert_eq!(err.error_message, "alarm `typo-alarm` does not exist");
}

#[tokio::test]
async fn no_alarms_configured_passes_without_a_call() {
    let fake = FakeAws::new();
    let report = check_alarms(&fake)
        .handle(check(rollout_with_alarms(&[])))
        .await
        .unwrap();
    assert_eq!(report.verdict, Verdict::Pass);
    assert!(report.results.is_empty(), "{report:?}");
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}

#[tokio::test]
async fn the_report_leaves_in_its_wire_shape() {
    // GIVEN the state as CheckGates receives it: the rollout and fields the state machine adds
    let fake = FakeAws::new();
    fake.alarm("orders-errors", "OK", "fine");
    let mut state = serde_json::to_value(rollout_with_alarms(&["orders-errors"])).unwrap();
    state["gates"] = json!(null);
    state["hook"] = json!({"phase": "preTraffic", "verdict": "skipped"});
    // WHEN invoked
    let report = invoke(check_alarms(&fake), state).await.unwrap();
    // THEN the report is exactly the documented shape
    assert_eq!(
        report,
        json!({"verdict": "pass", "step": 0, "extensions": 0, "baking": false, "results": [
            {"gate": "alarms", "verdict": "pass", "findings": ["no alarm in ALARM (1 checked)"],
             "evidence": {"alarms": [{"name": "orders-errors", "kind": "metric", "state": "OK",
                                      "reason": "fine", "updatedAt": "2026-11-29T10:00:00Z"}]}}],
            "afterStepDue": false})
    );
}

// ---- metric analysis --------------------------------------------------------------------------------------

#[tokio::test]
async fn analysis_reads_both_versions_in_one_call_and_fails_a_worse_target() {
    // GIVEN the target erring at 4% and the stable version at 0.5%, 30% slower at p99
    let fake = FakeAws::new();
    fake.metrics_with_p99("7", 1000, 40, 0, Some(130.0))
        .metrics_with_p99("6", 1000, 5, 0, Some(100.0));
    let rollout = analysed_rollout(json!({"maxErrorRate": 0.05, "maxP99LatencyIncrease": 0.5}));
    // WHEN the step started at 1,000 s with a 300-s bake is checked once its whole bake's metrics are in (60 s
    // later)
    let report = check_alarms(&fake)
        .check_at(check(rollout), 1_360)
        .await
        .unwrap();
    // THEN one read of both versions over the step's own traffic, and a failure on the comparison
    let window = Window {
        start: 1_000,
        end: 1_300,
        period_seconds: 300,
    };
    assert_eq!(
        fake.calls(),
        [Call::VersionMetrics {
            function_name: "orders".into(),
            alias: "live".into(),
            versions: ["7".into(), "6".into()],
            window,
            latency: true,
        }],
        "no alarms listed, so no DescribeAlarms"
    );
    assert_eq!(
        (report.verdict, report.error),
        (Verdict::Fail, Some(ErrorType::AnalysisFailed)),
        "{report:#?}"
    );
    let a = result(&report, "analysis");
    assert_eq!(a["verdict"], "fail");
    assert_eq!(a["error"], "AnalysisFailed");
    let e = &a["evidence"];
    assert_eq!(e["target"]["errors"], 40);
    assert_eq!(e["stable"]["errors"], 5);
    assert_eq!(e["targetErrorRate"], 0.04);
    assert_eq!(e["comparison"]["test"], "twoProportionZ");
    assert_eq!(e["comparison"]["significant"], true);
    assert!(e["comparison"]["pValue"].as_f64().unwrap() < 0.001);
    assert!((e["p99Increase"].as_f64().unwrap() - 0.3).abs() < 1e-9);
    assert_eq!(
        e["window"],
        json!({"start": 1000, "end": 1300, "periodSeconds": 300})
    );
    assert_eq!(e["thresholds"]["maxErrorRate"], 0.05);
    assert_eq!(e["thresholds"]["maxP99LatencyIncrease"], 0.5);
}

#[tokio::test]
async fn a_silent_target_is_extended_then_fails_inconclusive() {
    // GIVEN only the stable version serves traffic
    let fake = FakeAws::new();
    fake.metrics("6", 500, 0, 0);
    let rollout = analysed_rollout(json!({"maxErrorRate": 0.01, "maxExtensions": 1}));
    let gates = check_alarms(&fake);
    // WHEN checked once the whole bake's metrics are in
    let first = gates.check_at(check(rollout.clone()), 1_360).await.unwrap();
    // THEN inconclusive: extend by the step's bake
    assert_eq!(first.verdict, Verdict::Inconclusive, "{first:#?}");
    assert_eq!(first.extend_seconds, Some(300));
    assert_eq!(
        result(&first, "analysis")["evidence"]["target"]["invocations"],
        0
    );
    // WHEN the state machine extends the bake and sends the state back with this report as `gates`
    let mut state = serde_json::to_value(rollout).unwrap();
    state["gates"] = serde_json::to_value(&first).unwrap();
    let again: CheckEvent = serde_json::from_value(state).unwrap();
    let second = gates.check_at(again, 1_660).await.unwrap();
    // THEN out of extensions: fail inconclusive, over a window that grew with the extension
    assert_eq!(
        (second.verdict, second.error),
        (Verdict::Fail, Some(ErrorType::AnalysisInconclusive)),
        "{second:#?}"
    );
    assert_eq!(second.extensions, 1);
    assert_eq!(
        result(&second, "analysis")["evidence"]["window"]["end"],
        1_600,
        "the window grew with the extension"
    );
    assert_eq!(count(&fake, "GetMetricData"), 2);
}

#[tokio::test]
async fn a_promotion_with_no_bake_is_not_analysed_but_a_baked_one_is() {
    let fake = FakeAws::new();
    fake.metrics("7", 100, 0, 0);
    let analysed = |bake: u64| {
        let mut i = canary();
        i["alarms"] = json!([]);
        i["analysis"] = json!({"maxErrorRate": 0.05});
        i["bakeSeconds"] = json!(bake);
        at_step_one(i).advanced(1, vec!["r2".into()], 1_000)
    };
    // GIVEN a promotion held for no bake (watched for the one second a task's timeout needs at least)
    let promoted = analysed(0);
    assert!(promoted.promoted && promoted.percent == 100.0 && promoted.bake_seconds == 1);
    assert_eq!(promoted.wait_seconds, 1);
    let report = check_alarms(&fake)
        .check_at(check(promoted), 1_300)
        .await
        .unwrap();
    // THEN it passes without reading metrics
    assert_eq!(report.verdict, Verdict::Pass);
    assert!(report.result("analysis").is_none(), "{report:#?}");
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
    // GIVEN a promotion held for 120 s: THEN it is analysed
    let baked = analysed(120);
    assert_eq!(baked.bake_seconds, 120);
    let report = check_alarms(&fake)
        .check_at(check(baked), 1_300)
        .await
        .unwrap();
    assert_eq!(
        result(&report, "analysis")["evidence"]["target"]["invocations"],
        100
    );
    assert_eq!(count(&fake, "GetMetricData"), 1);
}

#[tokio::test]
async fn an_alarm_in_alarm_fails_the_step_without_reading_metrics() {
    let fake = FakeAws::new();
    fake.alarm("errors", "ALARM", "errors threshold crossed");
    let mut i = canary();
    i["alarms"] = json!(["errors"]);
    i["analysis"] = json!({"maxErrorRate": 0.05});
    let report = check_alarms(&fake)
        .check_at(check(at_step_one(i)), 1_300)
        .await
        .unwrap();
    assert_eq!(
        (report.verdict, report.error),
        (Verdict::Fail, Some(ErrorType::AlarmFired))
    );
    assert_eq!(operations(&fake), ["DescribeAlarms"]);
    assert!(report.result("analysis").is_none());
}

#[tokio::test]
async fn a_previous_report_that_does_not_read_is_the_engines_error_not_a_fresh_count() {
    // GIVEN a step whose previous gate report is garbled (the state machine passes it back on an extension)
    let fake = FakeAws::new();
    let mut state = serde_json::to_value(analysed_rollout(json!({"maxErrorRate": 0.05}))).unwrap();
    state["gates"] = json!({"verdict": "sideways"});
    // WHEN the step is checked
    let err = invoke(check_alarms(&fake), state).await.unwrap_err();
    // THEN it is an engine error, not the user's input, and nothing was read
    assert_eq!(err.error_type, "Internal");
    assert!(
        err.error_message
            .contains("the previous gate report does not read"),
        "{}",
        err.error_message
    );
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}

/// The state the state machine sends the next look: the rollout, with this look's report as `gates`.
fn next_look(rollout: &safeshift_core::rollout::Rollout, report: &GateReport) -> CheckEvent {
    let mut state = serde_json::to_value(rollout).unwrap();
    state["gates"] = serde_json::to_value(report).unwrap();
    serde_json::from_value(state).unwrap()
}

#[tokio::test]
async fn a_baking_step_is_looked_at_every_interval_on_its_own_traffic_and_decided_at_its_end() {
    // GIVEN a 300-s step shifted at 1,000, looked at every 60 s, metrics arriving 60 s late, a healthy target
    let fake = FakeAws::new();
    fake.metrics("7", 500, 1, 0).metrics("6", 4500, 10, 0);
    let rollout = analysed_rollout(json!({"maxErrorRate": 0.05}));
    assert_eq!(
        rollout.wait_seconds, 120,
        "the first look: one interval of traffic, plus the delay"
    );
    let gates = check_alarms(&fake);
    // WHEN the first look runs (60 s of the step's traffic seen)
    let first = gates.check_at(check(rollout.clone()), 1_120).await.unwrap();
    // THEN it passes for now and asks for the next look in one interval
    assert_eq!(
        (
            first.verdict,
            first.baking,
            first.extend_seconds,
            first.extensions
        ),
        (Verdict::Pass, true, Some(60), 0),
        "{first:#?}"
    );
    let e = &result(&first, "analysis")["evidence"];
    assert_eq!(
        e["window"],
        json!({"start": 1000, "end": 1060, "periodSeconds": 60})
    );
    // AND its comparison spent only the first look's share of alpha: 0.05 · (60/300)³
    assert!(
        (e["alphaSpent"].as_f64().unwrap() - 0.0004).abs() < 1e-12,
        "{e}"
    );
    // WHEN the look that sees 270 s runs: the next look waits only for the bake's last 30 s
    let later = gates
        .check_at(next_look(&rollout, &first), 1_330)
        .await
        .unwrap();
    assert_eq!((later.baking, later.extend_seconds), (true, Some(30)));
    // WHEN the look that sees the whole bake runs: it decides the step
    let last = gates
        .check_at(next_look(&rollout, &later), 1_360)
        .await
        .unwrap();
    assert_eq!(
        (last.verdict, last.baking, last.extend_seconds),
        (Verdict::Pass, false, None)
    );
    let e = &result(&last, "analysis")["evidence"];
    assert!(
        (e["alphaSpent"].as_f64().unwrap() - 0.05).abs() < 1e-12,
        "{e}"
    );
}

#[tokio::test]
async fn a_grossly_worse_target_fails_at_its_first_look_long_before_the_bake_ends() {
    let fake = FakeAws::new();
    fake.metrics("7", 200, 60, 0).metrics("6", 1800, 9, 0);
    let rollout = analysed_rollout(json!({"maxErrorRate": 0.05}));
    let report = check_alarms(&fake)
        .check_at(check(rollout), 1_120)
        .await
        .unwrap();
    assert_eq!(
        (report.verdict, report.error, report.baking),
        (Verdict::Fail, Some(ErrorType::AnalysisFailed), false),
        "{report:#?}"
    );
}

#[tokio::test]
async fn too_little_traffic_at_an_early_look_waits_for_the_next_without_using_an_extension() {
    let fake = FakeAws::new();
    fake.metrics("7", 3, 0, 0).metrics("6", 27, 0, 0);
    let rollout = analysed_rollout(json!({"maxErrorRate": 0.05, "maxExtensions": 1}));
    let report = check_alarms(&fake)
        .check_at(check(rollout), 1_120)
        .await
        .unwrap();
    assert_eq!(
        (
            report.verdict,
            report.baking,
            report.extensions,
            report.extend_seconds
        ),
        (Verdict::Pass, true, 0, Some(60)),
        "{report:#?}"
    );
    assert_eq!(result(&report, "analysis")["verdict"], "inconclusive");
}

#[tokio::test]
async fn a_passed_traffic_step_asks_for_its_after_step_hook_once() {
    let fake = FakeAws::new();
    fake.alarm("orders-errors", "OK", "fine");
    let mut input = canary();
    input["hooks"] = json!({"afterStep": "SafeshiftHook_synthetic"});
    let rollout = at_step_one(input);
    let first = check_alarms(&fake)
        .handle(check(rollout.clone()))
        .await
        .unwrap();
    assert!(first.after_step_due && first.verdict == Verdict::Pass);
    assert!(!first.after_step_ran);
    // The only way on from that report is through the hook: judged again, whatever the hook answered (a callback
    // hook's output is its own), it is not asked for twice — nor after an approval judges the step once more.
    let again = check_alarms(&fake)
        .handle(CheckEvent {
            gates: Some(serde_json::to_value(&first).unwrap()),
            ..check(rollout.clone())
        })
        .await
        .unwrap();
    assert!(!again.after_step_due && again.after_step_ran);
    let after_approval = check_alarms(&fake)
        .handle(CheckEvent {
            gates: Some(serde_json::to_value(&again).unwrap()),
            ..check(rollout.clone())
        })
        .await
        .unwrap();
    assert!(!after_approval.after_step_due);
    // The report always says whether it is due: the state machine's Verdict reads it.
    assert_eq!(serde_json::to_value(&again).unwrap()["afterStepDue"], false);
    // Without the hook, never.
    let none = check_alarms(&fake)
        .handle(check(at_step_one(canary())))
        .await
        .unwrap();
    assert!(!none.after_step_due);
}

#[tokio::test]
async fn a_release_fails_when_one_targets_analysis_fails_and_the_evidence_names_it() {
    // GIVEN a release of two functions: the api's version 7 is as healthy as its 6, the worker's errs at 4%
    let fake = FakeAws::new();
    fake.metrics_of("orders-api", "7", 1000, 5)
        .metrics_of("orders-api", "6", 1000, 5)
        .metrics_of("orders-worker", "7", 1000, 40)
        .metrics_of("orders-worker", "6", 1000, 5);
    let input = json!({
        "release": "orders-2026-11-29",
        "targets": [
            {"functionName": "orders-api", "alias": "live", "targetVersion": "7"},
            {"functionName": "orders-worker", "alias": "live", "targetVersion": "7"}
        ],
        "strategy": "Canary10Percent5Minutes",
        "analysis": {"maxErrorRate": 0.01}
    });
    let v6 = || safeshift_core::names::Version::new(6).unwrap();
    let rollout = safeshift_core::rollout::Rollout::prepared(
        "d-1".into(),
        safeshift_core::Deployment::from_value(input).unwrap(),
        vec![(v6(), "a0".into()), (v6(), "w0".into())],
    )
    .advanced(0, vec!["a1".into(), "w1".into()], 1_000);
    // WHEN the step is checked once its whole bake's metrics are in
    let report = check_alarms(&fake)
        .check_at(check(rollout), 1_360)
        .await
        .unwrap();
    // THEN each target's metrics were read on their own, and the release fails on the worker's, naming it
    let read: Vec<String> = fake
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::VersionMetrics { function_name, .. } => Some(function_name),
            _ => None,
        })
        .collect();
    assert_eq!(read, ["orders-api", "orders-worker"]);
    assert_eq!(
        (report.verdict, report.error),
        (Verdict::Fail, Some(ErrorType::AnalysisFailed)),
        "{report:#?}"
    );
    let verdicts: Vec<(String, Verdict)> = report
        .results
        .iter()
        .map(|r| {
            (
                r.evidence["targetAlias"].as_str().unwrap().to_owned(),
                r.verdict,
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("orders-api:live".to_owned(), Verdict::Pass),
            ("orders-worker:live".to_owned(), Verdict::Fail)
        ]
    );
    assert!(
        report.summary().contains("orders-worker:live: "),
        "{}",
        report.summary()
    );
    assert_eq!(report.results[1].evidence["target"]["errors"], 40);
    // Two comparisons: each spends at most its half of the alpha (the default 95% confidence's 5%).
    for r in &report.results {
        let spent = r.evidence["alphaSpent"].as_f64().unwrap();
        assert!(spent > 0.0 && spent <= 0.025 + 1e-12, "{spent}");
    }
}
