//! The schedule each strategy yields, written out by hand from CodeDeploy's definitions and the custom forms'.

use safeshift_core::{Deployment, Step};
use serde_json::{Value, json};

fn schedule(strategy: Value, bake_seconds: u64) -> (Vec<(f64, u64)>, u64) {
    let d = Deployment::from_value(json!({
        "functionName": "orders-api",
        "alias": "live",
        "targetVersion": "7",
        "strategy": strategy,
        "bakeSeconds": bake_seconds
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let steps = d
        .schedule()
        .steps()
        .iter()
        .map(|s: &Step| (s.percent, s.bake_seconds))
        .collect();
    (steps, d.schedule().total_seconds())
}

fn linear(interval: u64) -> Vec<(f64, u64)> {
    let mut steps: Vec<(f64, u64)> = (1..=9).map(|k| (f64::from(k * 10), interval)).collect();
    steps.push((100.0, 0));
    steps
}

#[test]
fn predefined_strategies_mean_what_codedeploy_means() {
    let cases = [
        (
            "Canary10Percent5Minutes",
            vec![(10.0, 300), (100.0, 0)],
            300,
        ),
        (
            "Canary10Percent10Minutes",
            vec![(10.0, 600), (100.0, 0)],
            600,
        ),
        (
            "Canary10Percent15Minutes",
            vec![(10.0, 900), (100.0, 0)],
            900,
        ),
        (
            "Canary10Percent30Minutes",
            vec![(10.0, 1800), (100.0, 0)],
            1800,
        ),
        ("Linear10PercentEvery1Minute", linear(60), 540),
        ("Linear10PercentEvery2Minutes", linear(120), 1080),
        ("Linear10PercentEvery3Minutes", linear(180), 1620),
        ("Linear10PercentEvery10Minutes", linear(600), 5400),
        ("AllAtOnce", vec![(100.0, 0)], 0),
    ];
    for (name, steps, total) in cases {
        assert_eq!(schedule(json!(name), 0), (steps, total), "{name}");
    }
}

#[test]
fn codedeploy_full_names_are_accepted() {
    assert_eq!(
        schedule(json!("CodeDeployDefault.LambdaCanary10Percent5Minutes"), 0),
        schedule(json!("Canary10Percent5Minutes"), 0)
    );
}

#[test]
fn final_bake_holds_the_promotion() {
    assert_eq!(
        schedule(json!("Canary10Percent5Minutes"), 120),
        (vec![(10.0, 300), (100.0, 120)], 420)
    );
    assert_eq!(schedule(json!("AllAtOnce"), 90), (vec![(100.0, 90)], 90));
}

#[test]
fn custom_canary() {
    assert_eq!(
        schedule(json!({"canary": {"percent": 5, "intervalSeconds": 300}}), 0),
        (vec![(5.0, 300), (100.0, 0)], 300)
    );
}

#[test]
fn custom_linear_stops_below_100_and_promotes() {
    assert_eq!(
        schedule(json!({"linear": {"percent": 20, "intervalSeconds": 60}}), 0),
        (
            vec![(20.0, 60), (40.0, 60), (60.0, 60), (80.0, 60), (100.0, 0)],
            240
        )
    );
    // An increment that does not divide 100: the last traffic step is the last one below 100%.
    assert_eq!(
        schedule(json!({"linear": {"percent": 30, "intervalSeconds": 10}}), 0),
        (vec![(30.0, 10), (60.0, 10), (90.0, 10), (100.0, 0)], 30)
    );
}

#[test]
fn custom_steps_allow_fractions_and_get_100_appended() {
    assert_eq!(
        schedule(
            json!({"steps": [{"percent": 0.5, "bakeSeconds": 60}, {"percent": 25, "bakeSeconds": 300}]}),
            0
        ),
        (vec![(0.5, 60), (25.0, 300), (100.0, 0)], 360)
    );
}

#[test]
fn custom_exponential_caps_then_promotes() {
    assert_eq!(
        schedule(
            json!({"exponential": {"startPercent": 1, "factor": 2, "intervalSeconds": 60}}),
            0
        ),
        (
            vec![
                (1.0, 60),
                (2.0, 60),
                (4.0, 60),
                (8.0, 60),
                (16.0, 60),
                (32.0, 60),
                (64.0, 60),
                (100.0, 0)
            ],
            420
        )
    );
}

#[test]
fn exactly_48_hours_is_allowed() {
    let (_, total) = schedule(
        json!({"canary": {"percent": 10, "intervalSeconds": 48 * 3600}}),
        0,
    );
    assert_eq!(total, 48 * 3600);
}

#[test]
fn target_version_may_be_a_number() {
    let d = Deployment::from_value(json!({
        "functionName": "123456789012:function:orders-api",
        "alias": "live",
        "targetVersion": 12,
        "strategy": "AllAtOnce"
    }))
    .unwrap();
    assert_eq!(d.primary().target_version.get(), 12);
    assert_eq!(d.primary().function_name.name, "orders-api");
}

fn named(function: &str, alias: &str, target: &str) -> Deployment {
    Deployment::from_value(
        json!({"functionName": function, "alias": alias, "targetVersion": target,
                                  "strategy": "AllAtOnce"}),
    )
    .unwrap()
}

#[test]
fn execution_names_are_deterministic_valid_and_bounded() {
    let d = named;
    // Pinned: a name that changed between releases would start a second execution for a retried deployment.
    assert_eq!(
        d("orders-api", "live", "7").execution_name(1),
        "orders-api-live-7-6793970e"
    );
    assert_eq!(
        d("orders-api", "live", "7").execution_name(2),
        "orders-api-live-7-6793970e-attempt-2"
    );
    assert_ne!(
        d("orders-api", "live", "7").execution_name(1),
        d("orders-api", "live", "8").execution_name(1)
    );

    let long = d(&"f".repeat(64), &"a".repeat(128), "7");
    let (one, again) = (long.execution_name(1), long.execution_name(1));
    assert_eq!(one, again);
    assert_eq!(one.len(), 80);
    assert!(
        one.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "{one}"
    );
    assert_ne!(
        one,
        d(&"f".repeat(64), &"a".repeat(128), "8").execution_name(1)
    );
    // Only the readable function and alias are cut: the target, the digest and the attempt stay.
    let tail: Vec<&str> = one.rsplitn(3, '-').collect();
    assert_eq!(tail[1], "7", "{one}");
    assert!(
        tail[0].len() == 8 && tail[0].chars().all(|c| c.is_ascii_hexdigit()),
        "{one}"
    );
    let retry = long.execution_name(12);
    assert_eq!(retry.len(), 80);
    assert!(retry.ends_with("-attempt-12"), "{retry}");
    assert_ne!(retry, long.execution_name(13));
}

#[test]
fn execution_names_tell_apart_function_and_alias_that_read_the_same() {
    // `a-b` + alias `c` and `a` + alias `b-c` both read `a-b-c`; the digest of the function and alias differs.
    let (one, other) = (
        named("a-b", "c", "7").execution_name(1),
        named("a", "b-c", "7").execution_name(1),
    );
    assert_eq!(one, "a-b-c-7-695274f6");
    assert_eq!(other, "a-b-c-7-02654a5c");
    // The functionName as written counts: the same name in another account or region is another function.
    let arn = |region: &str, account: &str| {
        format!("arn:aws:lambda:{region}:{account}:function:orders-api")
    };
    assert_eq!(
        named(&arn("us-east-1", "123456789012"), "live", "7").execution_name(1),
        "orders-api-live-7-4e85436f"
    );
    assert_eq!(
        named(&arn("eu-west-1", "210987654321"), "live", "7").execution_name(1),
        "orders-api-live-7-ffbd32fd"
    );
}

#[test]
fn a_release_is_named_after_itself_and_every_targets_version() {
    let release = |worker_version: &str| {
        Deployment::from_value(json!({
            "release": "orders-2026-11-29",
            "targets": [
                {"functionName": "orders-api", "alias": "live", "targetVersion": "12"},
                {"functionName": "orders-worker", "alias": "live", "targetVersion": worker_version}
            ],
            "strategy": "AllAtOnce"
        }))
        .unwrap()
    };
    let name = release("31").execution_name(1);
    assert!(name.starts_with("orders-2026-11-29-"), "{name}");
    let digest = name.rsplit('-').next().unwrap();
    assert!(
        digest.len() == 8 && digest.chars().all(|c| c.is_ascii_hexdigit()),
        "{name}"
    );
    // The same release again is the same execution; another version of any target is another.
    assert_eq!(name, release("31").execution_name(1));
    assert_ne!(name, release("32").execution_name(1));
    assert_eq!(release("31").execution_name(3), format!("{name}-attempt-3"));
    // A single deployment keeps its name: executions already started under it are the same deployment.
    assert_eq!(
        named("orders-api", "live", "7").execution_name(1),
        "orders-api-live-7-6793970e"
    );
}
