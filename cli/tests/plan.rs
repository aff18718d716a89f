//! `safeshift plan` through the real binary: what a user types, what they see, and the exit status.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

fn plan(input: &Value, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_safeshift"))
        .args(["plan", "--input", "-"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn deployment(strategy: Value) -> Value {
    json!({"functionName": "orders-api", "alias": "live", "targetVersion": "7", "strategy": strategy})
}

fn plan_json(input: &Value) -> Value {
    let out = plan(input, &["--output", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn json_plan_has_the_documented_shape() {
    let p = plan_json(&deployment(json!("Canary10Percent5Minutes")));
    assert_eq!(
        p["steps"],
        json!([{"percent": 10.0, "bakeSeconds": 300}, {"percent": 100.0, "bakeSeconds": 0}])
    );
    assert_eq!(p["totalSeconds"], 300);
    assert_eq!(p["stateTransitions"], 13);
    assert_eq!(p["estimatedCostUsd"], 0.000325);
    assert_eq!(p["strategy"], "Canary10Percent5Minutes");
}

#[test]
fn an_analysis_plan_names_its_checks_and_its_longest_run() {
    let mut input = deployment(json!("Canary10Percent5Minutes"));
    input["analysis"] = json!({"maxErrorRate": 0.01, "maxExtensions": 2});
    let p = plan_json(&input);
    // The 300-s canary step is looked at every 60 s: four looks before its last (3 states each); it may then be
    // extended twice (3 states each). The promotion, held for no bake, is not analysed. The step holds its weight
    // for its bake and the metrics' 60-s delay.
    assert_eq!(p["analysisLooks"], 5);
    assert_eq!(p["stateTransitions"], 13 + 4 * 3);
    assert_eq!(p["maxStateTransitions"], 25 + 2 * 3);
    assert_eq!(p["totalSeconds"], 360);
    assert_eq!(p["maxTotalSeconds"], 360 + 2 * 300);
    let out = plan(&input, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("metric analysis: error rate <= 1%, not significantly worse than stable (95% confidence), no new throttles; looked at every 60 s while a step bakes, on its own traffic (60 s late); needs 50 invocations per step, up to 2 extension(s), then roll back"),
        "{text}"
    );
    assert!(
        text.contains("State transitions: 25 (about $0.000625 at $0.025 per 1,000), 5 metric analysis looks included")
            && text.contains("At most, every analysed step extended for want of traffic: 31 transitions"),
        "{text}"
    );
}

#[test]
fn every_predefined_strategy_plans_with_codedeploys_schedule() {
    let cases = [
        ("Canary10Percent5Minutes", 2, 300),
        ("Canary10Percent10Minutes", 2, 600),
        ("Canary10Percent15Minutes", 2, 900),
        ("Canary10Percent30Minutes", 2, 1800),
        ("Linear10PercentEvery1Minute", 10, 540),
        ("Linear10PercentEvery2Minutes", 10, 1080),
        ("Linear10PercentEvery3Minutes", 10, 1620),
        ("Linear10PercentEvery10Minutes", 10, 5400),
        ("AllAtOnce", 1, 0),
    ];
    for (name, steps, total) in cases {
        let p = plan_json(&deployment(json!(name)));
        assert_eq!(p["steps"].as_array().unwrap().len(), steps, "{name}");
        assert_eq!(p["totalSeconds"], total, "{name}");
        assert_eq!(
            p["steps"][steps - 1],
            json!({"percent": 100.0, "bakeSeconds": 0}),
            "{name}"
        );
        // From statemachine/rollout.asl.json: 4 states per step, 4 outside the loop.
        assert_eq!(p["stateTransitions"], 4 * steps + 5, "{name}");
    }
}

#[test]
fn every_custom_form_plans() {
    let cases = [
        (
            json!({"canary": {"percent": 5, "intervalSeconds": 300}}),
            json!([[5.0, 300], [100.0, 0]]),
        ),
        (
            json!({"linear": {"percent": 25, "intervalSeconds": 60}}),
            json!([[25.0, 60], [50.0, 60], [75.0, 60], [100.0, 0]]),
        ),
        (
            json!({"steps": [{"percent": 0.5, "bakeSeconds": 60}, {"percent": 25, "bakeSeconds": 300}]}),
            json!([[0.5, 60], [25.0, 300], [100.0, 0]]),
        ),
        (
            json!({"exponential": {"startPercent": 10, "factor": 3, "intervalSeconds": 30}}),
            json!([[10.0, 30], [30.0, 30], [90.0, 30], [100.0, 0]]),
        ),
    ];
    for (strategy, expected) in cases {
        let p = plan_json(&deployment(strategy.clone()));
        let steps: Vec<Value> = p["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| json!([s["percent"], s["bakeSeconds"]]))
            .collect();
        assert_eq!(Value::Array(steps), expected, "{strategy}");
        assert_eq!(as_floats(&p["strategy"]), as_floats(&strategy));
    }
}

/// JSON with every number as a float, so that `5` and `5.0` compare equal.
fn as_floats(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(a) => a.iter().map(as_floats).collect(),
        Value::Object(o) => o.iter().map(|(k, v)| (k.clone(), as_floats(v))).collect(),
        other => other.clone(),
    }
}

#[test]
fn hooks_and_final_bake_are_in_the_plan() {
    let mut input = deployment(json!("Canary10Percent5Minutes"));
    input["hooks"] = json!({"preTraffic": "smoke", "postTraffic": "e2e"});
    input["bakeSeconds"] = json!(120);
    let p = plan_json(&input);
    assert_eq!(p["totalSeconds"], 420);
    assert_eq!(p["stateTransitions"], 13);
    assert_eq!(p["estimatedCostUsd"], 0.000325);
}

#[test]
fn text_plan_is_a_table_with_totals_and_cost() {
    let mut input = deployment(json!("Canary10Percent5Minutes"));
    input["alarms"] = json!(["orders-api-errors"]);
    let out = plan(&input, &[]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let expected = "\
Deployment of orders-api:live to version 7 (Canary10Percent5Minutes)

step    weight        bake       elapsed
   1       10%          5m            5m
   2      100%          0s            5m  promotion

Total: 5m (300 s)
Gates: alarms orders-api-errors
State transitions: 13 (about $0.000325 at $0.025 per 1,000)
";
    assert_eq!(text, expected);
}

#[test]
fn bad_input_exits_2_naming_the_field() {
    let out = plan(
        &deployment(json!({"linear": {"percent": 10, "intervalSeconds": 0}})),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with(
            "error: invalid deployment input: `strategy.linear.intervalSeconds`: must be at least 1 second (got 0)\n"
        ),
        "{err}"
    );
}

#[test]
fn malformed_json_exits_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_safeshift"))
        .args([
            "plan",
            "--input",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`input`: is not valid JSON"));
}

#[test]
fn missing_file_is_an_error_that_names_the_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_safeshift"))
        .args(["plan", "--input", "/nonexistent/deployment.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/deployment.json"));
}

#[test]
fn the_readme_examples_all_plan() {
    // Every JSON example shipped in examples/ is a valid input: documentation that cannot rot.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let out = Command::new(env!("CARGO_BIN_EXE_safeshift"))
                .args(["plan", "--input"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            seen += 1;
        }
    }
    assert!(seen >= 5, "only {seen} examples");
}

#[test]
fn an_emergency_plans_one_step_and_says_what_it_gives_up() {
    let mut input = deployment(json!("Linear10PercentEvery10Minutes"));
    input["analysis"] = json!({"maxErrorRate": 0.01});
    input["approval"] = json!("beforePromotion");
    input["emergency"] = json!({"reason": "INC-42: checkout down"});
    let out = plan(&input, &[]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("EMERGENCY (INC-42: checkout down): all at once, no bake, no metric analysis, no approval gate"),
        "{text}"
    );
    assert!(
        text.contains("   1      100%          0s            0s  promotion"),
        "{text}"
    );
    assert_eq!(plan_json(&input)["steps"].as_array().unwrap().len(), 1);
}

#[test]
fn a_release_plans_once_for_all_its_targets() {
    let release = json!({
        "release": "orders-2026-11-29",
        "targets": [
            {"functionName": "orders-api", "alias": "live", "targetVersion": "12"},
            {"functionName": "orders-worker", "alias": "live", "targetVersion": "31"},
            {"functionName": "orders-feed", "alias": "live", "targetVersion": "4"}
        ],
        "strategy": "Canary10Percent5Minutes"
    });
    let p = plan_json(&release);
    // Each step shifts every target in one task: the transitions and cost are a single deployment's.
    let single = plan_json(&deployment(json!("Canary10Percent5Minutes")));
    assert_eq!(p["stateTransitions"], single["stateTransitions"]);
    assert_eq!(p["estimatedCostUsd"], single["estimatedCostUsd"]);
    assert_eq!(p["release"], "orders-2026-11-29");
    assert_eq!(p["targets"].as_array().unwrap().len(), 3);
    assert_eq!(p["targets"][1]["functionName"], "orders-worker");
    let out = plan(&release, &[]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(
            "Release orders-2026-11-29 of 3 targets (Canary10Percent5Minutes), every alias at the same weight after each step:\n  orders-api:live to version 12\n  orders-worker:live to version 31\n  orders-feed:live to version 4\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("State transitions: 13 (about $0.000325 at $0.025 per 1,000); the same for 3 targets: each step shifts them all in one task"),
        "{text}"
    );
}

#[test]
fn a_bad_release_exits_2_naming_the_target() {
    let release = json!({
        "targets": [
            {"functionName": "orders-api", "alias": "live", "targetVersion": "12"},
            {"functionName": "orders-api", "alias": "live", "targetVersion": "13"}
        ],
        "strategy": "AllAtOnce"
    });
    let out = plan(&release, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`targets[1]`"), "{err}");
    assert!(err.contains("listed twice"), "{err}");
}
