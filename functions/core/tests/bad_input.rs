//! Every way an input can be wrong gets a named error: which field, and why. One row per case; each row is the
//! input with one thing wrong and the exact problem it must produce.

use safeshift_core::{Deployment, FieldError};
use serde_json::{Value, json};

/// A valid input that each case breaks in one place.
fn valid() -> Value {
    json!({
        "functionName": "orders-api",
        "alias": "live",
        "targetVersion": "7",
        "strategy": "Canary10Percent5Minutes",
        "alarms": ["orders-api-errors"],
        "hooks": { "preTraffic": "orders-api-smoke", "postTraffic": "orders-api-e2e" },
        "bakeSeconds": 120
    })
}

fn with(key: &str, value: Value) -> Value {
    let mut v = valid();
    v[key] = value;
    v
}

fn without(key: &str) -> Value {
    let mut v = valid();
    v.as_object_mut().unwrap().remove(key);
    v
}

fn problems(input: &Value) -> Vec<FieldError> {
    match Deployment::from_value(input.clone()) {
        Ok(d) => panic!("accepted {input}: {d:?}"),
        Err(e) => e.problems,
    }
}

#[test]
fn the_valid_base_input_is_accepted() {
    Deployment::from_value(valid()).unwrap();
}

#[test]
fn each_bad_input_names_its_field_and_reason() {
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "unknown field (typo that would drop a safety check)",
            with("alarm", json!(["x"])),
            "alarm",
            "unknown field `alarm`, expected one of `functionName`, `alias`, `targetVersion`, `strategy`, `alarms`, `hooks`, `bakeSeconds`, `approval`, `analysis`, `maxPauseSeconds`, `incidentFix`, `emergency`, `release`, `targets`",
        ),
        (
            "a sync hook given a timeout",
            with(
                "hooks",
                json!({"afterStep": {"function": "SafeshiftHook_x", "timeoutSeconds": 60}}),
            ),
            "hooks.afterStep.timeoutSeconds",
            "applies to callback hooks; a sync hook is waited for up to 870 s (use \"mode\": \"callback\" for longer work)",
        ),
        (
            "a callback hook given more than a day",
            with(
                "hooks",
                json!({"onRollback": {"function": "SafeshiftHook_x", "mode": "callback", "timeoutSeconds": 86_401}}),
            ),
            "hooks.onRollback.timeoutSeconds",
            "must be from 1 to 86400 seconds (24 h), got 86401",
        ),
        (
            "a hook without its function",
            with("hooks", json!({"beforeStep": {"mode": "callback"}})),
            "hooks.beforeStep.function",
            "is required",
        ),
        (
            "an emergency without its reason",
            with("emergency", json!({})),
            "emergency.reason",
            "is required: an emergency deployment goes to 100% at once without bakes or metric analysis, and the record says why",
        ),
        (
            "an emergency with a blank reason",
            with("emergency", json!({"reason": "  "})),
            "emergency.reason",
            "is required: an emergency deployment goes to 100% at once without bakes or metric analysis, and the record says why",
        ),
        (
            "an incident fix with nothing to judge it",
            with("incidentFix", json!(true)),
            "incidentFix",
            "needs an analysis block: with the incident's alarms not judging the fix until they leave ALARM, the fix's own metrics are what stop a bad one",
        ),
        (
            "a pause limit past a day",
            with("maxPauseSeconds", json!(86_401)),
            "maxPauseSeconds",
            "must be from 0 (no pausing) to 86400 seconds (got 86401)",
        ),
        (
            "missing function",
            without("functionName"),
            "functionName",
            "is required",
        ),
        (
            "empty function",
            with("functionName", json!("")),
            "functionName",
            "must not be empty",
        ),
        (
            "malformed ARN",
            with(
                "functionName",
                json!("arn:aws:lambda:us-east-1:12345:function:orders-api"),
            ),
            "functionName",
            "`12345` is not a 12-digit AWS account id",
        ),
        (
            "ARN of another service",
            with(
                "functionName",
                json!("arn:aws:sqs:us-east-1:123456789012:queue"),
            ),
            "functionName",
            "`arn:aws:sqs:us-east-1:123456789012:queue` is not a Lambda function ARN like arn:aws:lambda:us-east-1:123456789012:function:NAME",
        ),
        (
            "qualified function name",
            with("functionName", json!("orders-api:live")),
            "functionName",
            "must name the function without a version or alias (found `:live`); put the alias in `alias`",
        ),
        (
            "empty alias",
            with("alias", json!("")),
            "alias",
            "must not be empty",
        ),
        (
            "numeric alias",
            with("alias", json!("3")),
            "alias",
            "`3` is all digits, which Lambda reads as a version number",
        ),
        (
            "missing target",
            without("targetVersion"),
            "targetVersion",
            "is required",
        ),
        (
            "$LATEST target",
            with("targetVersion", json!("$LATEST")),
            "targetVersion",
            "must be a published version number, not `$LATEST`: publish a version and deploy that",
        ),
        (
            "non-numeric target",
            with("targetVersion", json!("v7")),
            "targetVersion",
            "`v7` is not a version number; use the number `publish-version` printed, like \"7\"",
        ),
        (
            "fractional target",
            with("targetVersion", json!(7.5)),
            "targetVersion",
            "must be a published version number like \"7\"",
        ),
        (
            "version zero",
            with("targetVersion", json!("0")),
            "targetVersion",
            "must be a published version number (1 or more)",
        ),
        (
            "missing strategy",
            without("strategy"),
            "strategy",
            "is required: a predefined name like \"Canary10Percent5Minutes\" or a custom form",
        ),
        (
            "misspelled strategy",
            with("strategy", json!("Canary10Percent5Minute")),
            "strategy",
            "unknown strategy `Canary10Percent5Minute`; did you mean `Canary10Percent5Minutes`?",
        ),
        (
            "canary percent of 100",
            with(
                "strategy",
                json!({"canary": {"percent": 100, "intervalSeconds": 60}}),
            ),
            "strategy.canary.percent",
            "must be less than 100 (got 100); the final 100% step is added for you",
        ),
        (
            "canary percent of 0",
            with(
                "strategy",
                json!({"canary": {"percent": 0, "intervalSeconds": 60}}),
            ),
            "strategy.canary.percent",
            "must be greater than 0 (got 0)",
        ),
        (
            "negative linear percent",
            with(
                "strategy",
                json!({"linear": {"percent": -5, "intervalSeconds": 60}}),
            ),
            "strategy.linear.percent",
            "must be greater than 0 (got -5)",
        ),
        (
            "zero interval",
            with(
                "strategy",
                json!({"linear": {"percent": 10, "intervalSeconds": 0}}),
            ),
            "strategy.linear.intervalSeconds",
            "must be at least 1 second (got 0)",
        ),
        (
            "negative interval",
            with(
                "strategy",
                json!({"canary": {"percent": 10, "intervalSeconds": -60}}),
            ),
            "strategy.canary.intervalSeconds",
            "must be at least 1 second (got -60)",
        ),
        (
            "non-increasing steps",
            with(
                "strategy",
                json!({"steps": [{"percent": 25, "bakeSeconds": 60}, {"percent": 25, "bakeSeconds": 60}]}),
            ),
            "strategy.steps[1].percent",
            "must be greater than the step before it (25 is not above 25)",
        ),
        (
            "empty steps",
            with("strategy", json!({"steps": []})),
            "strategy.steps",
            "must hold at least one step; for no traffic steps use \"AllAtOnce\"",
        ),
        (
            "exponential that does not grow",
            with(
                "strategy",
                json!({"exponential": {"startPercent": 1, "factor": 1, "intervalSeconds": 60}}),
            ),
            "strategy.exponential.factor",
            "must be greater than 1 so that traffic grows (got 1)",
        ),
        (
            "unknown custom form",
            with("strategy", json!({"bluegreen": {"percent": 10}})),
            "strategy.bluegreen",
            "unknown variant `bluegreen`, expected one of `canary`, `linear`, `steps`, `exponential`",
        ),
        (
            "unknown field inside a custom form",
            with(
                "strategy",
                json!({"canary": {"percent": 10, "interval": 60}}),
            ),
            "strategy.canary.interval",
            "unknown field `interval`, expected `percent` or `intervalSeconds`",
        ),
        (
            "two custom forms at once",
            with(
                "strategy",
                json!({"canary": {"percent": 10, "intervalSeconds": 60}, "linear": {"percent": 10, "intervalSeconds": 60}}),
            ),
            "strategy",
            "a custom strategy is an object with exactly one key naming its form (canary, linear, steps or exponential); found 2 keys",
        ),
        (
            "longer than 48 hours",
            with(
                "strategy",
                json!({"linear": {"percent": 10, "intervalSeconds": 86400}}),
            ),
            "strategy",
            "the rollout would take 777720 s (216.0 h); the limit is 172800 s (48 h)",
        ),
        (
            "final bake longer than 48 hours",
            with("bakeSeconds", json!(200000)),
            "bakeSeconds",
            "the rollout would take 200300 s (55.6 h); the limit is 172800 s (48 h)",
        ),
        (
            "negative final bake",
            with("bakeSeconds", json!(-1)),
            "bakeSeconds",
            "must be 0 or more seconds (got -1)",
        ),
        (
            "empty alarm name",
            with("alarms", json!(["ok", " "])),
            "alarms[1]",
            "must not be empty",
        ),
        (
            "duplicate alarm",
            with("alarms", json!(["errors", "latency", "errors"])),
            "alarms[2]",
            "`errors` is listed twice",
        ),
        (
            "alarms as a string",
            with("alarms", json!("errors")),
            "alarms",
            "invalid type: string \"errors\", expected a sequence",
        ),
        (
            "unknown hook phase",
            with("hooks", json!({"beforeTraffic": "smoke"})),
            "hooks.beforeTraffic",
            "unknown field `beforeTraffic`, expected one of `preTraffic`, `beforeStep`, `afterStep`, `postTraffic`, `onRollback`",
        ),
        (
            "malformed hook name",
            with("hooks", json!({"preTraffic": "smoke test"})),
            "hooks.preTraffic",
            "the function name `smoke test` contains ` `; only letters, digits, `-` and `_` are allowed",
        ),
        (
            "approval before the first step",
            with("approval", json!({"beforeStep": 1})),
            "approval.beforeStep",
            "must be a step from 2 to 2 of this schedule (got 1): approval follows a step you can observe",
        ),
        (
            "approval past the last step",
            with("approval", json!({"beforeStep": 3})),
            "approval.beforeStep",
            "must be a step from 2 to 2 of this schedule (got 3): approval follows a step you can observe",
        ),
        (
            "approval of a rollout that promotes at once",
            {
                let mut v = with("approval", json!("beforePromotion"));
                v["strategy"] = json!("AllAtOnce");
                v
            },
            "approval",
            "needs a traffic step to look at before the promotion; this strategy promotes at once",
        ),
        (
            "unknown approval form",
            with("approval", json!("always")),
            "approval",
            "unknown variant `always`, expected `beforePromotion` or `beforeStep`",
        ),
        (
            "error rate given in percent",
            with("analysis", json!({"maxErrorRate": 5})),
            "analysis.maxErrorRate",
            "must be a fraction from 0 up to 1, e.g. 0.01 for 1% (got 5)",
        ),
        (
            "analysis that waits for no traffic",
            with(
                "analysis",
                json!({"maxErrorRate": 0.01, "minInvocations": 0}),
            ),
            "analysis.minInvocations",
            "must be from 1 to 1000000 (got 0): a verdict needs traffic, zero is never healthy",
        ),
        (
            "analysis that checks nothing",
            with("analysis", json!({"compareToStable": false})),
            "analysis",
            "checks nothing: set maxErrorRate, maxP99LatencyIncrease or compareToStable",
        ),
        (
            "typo in the analysis block",
            with("analysis", json!({"maxErrorRates": 0.01})),
            "analysis.maxErrorRates",
            "unknown field `maxErrorRates`, expected one of `maxErrorRate`, `maxP99LatencyIncrease`, `minInvocations`, `compareToStable`, `confidence`, `maxExtensions`, `onInconclusive`, `metricDelaySeconds`, `intervalSeconds`",
        ),
        (
            "unknown inconclusive outcome",
            with("analysis", json!({"onInconclusive": "retry"})),
            "analysis.onInconclusive",
            "unknown variant `retry`, expected `fail` or `pass`",
        ),
        (
            "extensions that could outlast the limit",
            {
                let mut v = with("analysis", json!({"maxExtensions": 5}));
                v["strategy"] = json!({"linear": {"percent": 10, "intervalSeconds": 14400}});
                v
            },
            "analysis.maxExtensions",
            "with 5 extension(s) of every step the rollout could take 778920 s (216.4 h); the limit is 172800 s (48 h)",
        ),
        (
            "not an object",
            json!(["orders-api", "live"]),
            "input",
            "must be a JSON object like {\"functionName\": …}, not an array",
        ),
    ];
    assert!(cases.len() >= 20);
    for (name, input, field, reason) in cases {
        assert_eq!(
            problems(&input),
            [FieldError::new(field, reason)],
            "case: {name}"
        );
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let input = json!({
        "functionName": "",
        "alias": "",
        "strategy": {"steps": [{"percent": 50, "bakeSeconds": 0}, {"percent": 20, "bakeSeconds": 5}]},
        "alarms": ["a", "a"]
    });
    let fields: Vec<String> = problems(&input).into_iter().map(|p| p.field).collect();
    assert_eq!(
        fields,
        [
            "functionName",
            "alias",
            "targetVersion",
            "alarms[1]",
            "strategy.steps[0].bakeSeconds",
            "strategy.steps[1].percent"
        ]
    );
}

#[test]
fn invalid_json_text_says_where() {
    let err = Deployment::parse(r#"{"functionName": "f",}"#).unwrap_err();
    assert_eq!(
        err.problems,
        [FieldError::new(
            "input",
            "is not valid JSON: trailing comma at line 1 column 22"
        )]
    );
}

#[test]
fn nan_and_infinite_percents_are_rejected() {
    // JSON cannot carry NaN, but inputs built in code can; the checks must not rely on the parser.
    use safeshift_core::deployment::DeploymentInput;
    use safeshift_core::strategy::{CustomStrategy, Interval, StrategyInput};
    for bad in [f64::NAN, f64::INFINITY] {
        let mut input: DeploymentInput = serde_json::from_value(valid()).unwrap();
        input.strategy = Some(StrategyInput::Custom(CustomStrategy::Canary(Interval {
            percent: bad,
            interval_seconds: 60,
        })));
        let err = Deployment::validate(&input).unwrap_err();
        assert_eq!(err.problems[0].field, "strategy.canary.percent");
        assert_eq!(
            err.problems[0].reason,
            format!("must be a number (got {bad})")
        );
    }
}

/// A valid release of two targets that each case breaks in one place.
fn release() -> Value {
    json!({
        "release": "orders-2026-11-29",
        "targets": [
            {"functionName": "orders-api", "alias": "live", "targetVersion": "12"},
            {"functionName": "orders-worker", "alias": "live", "targetVersion": "31"}
        ],
        "strategy": "Linear10PercentEvery1Minute",
        "alarms": ["orders-errors"],
        "analysis": {"maxErrorRate": 0.01}
    })
}

#[test]
fn a_release_is_accepted_and_a_single_deployment_is_a_release_of_one() {
    let d = Deployment::from_value(release()).unwrap();
    assert_eq!(d.release.as_deref(), Some("orders-2026-11-29"));
    let labels: Vec<String> = d.targets.iter().map(|t| t.label()).collect();
    assert_eq!(labels, ["orders-api:live", "orders-worker:live"]);
    assert_eq!(d.lock_keys(), ["orders-api:live", "orders-worker:live"]);
    // It serializes back to the release form, which parses to the same deployment.
    let back = serde_json::to_value(&d).unwrap();
    assert_eq!(back["targets"][1]["targetVersion"], "31");
    assert!(back.get("functionName").is_none(), "{back}");
    assert_eq!(Deployment::from_value(back).unwrap(), d);

    let single = Deployment::from_value(valid()).unwrap();
    assert_eq!((single.targets.len(), single.release.as_ref()), (1, None));
    // A single deployment still writes itself in the single form: executions already running read it.
    let back = serde_json::to_value(&single).unwrap();
    assert_eq!(back["functionName"], "orders-api");
    assert!(back.get("targets").is_none(), "{back}");
}

#[test]
fn every_bad_release_names_the_target_by_index() {
    let with_target = |i: usize, key: &str, value: Value| {
        let mut v = release();
        v["targets"][i][key] = value;
        v
    };
    let mut too_many = release();
    too_many["targets"] = Value::Array(
        (0..11)
            .map(
                |i| json!({"functionName": format!("f{i}"), "alias": "live", "targetVersion": "2"}),
            )
            .collect(),
    );
    let mut both = release();
    both["functionName"] = json!("orders-api");
    let mut duplicate = release();
    // The same function by ARN is the same alias.
    duplicate["targets"][1] = json!({"functionName": "arn:aws:lambda:us-east-1:123456789012:function:orders-api", "alias": "live", "targetVersion": "13"});
    let mut none = release();
    none["targets"] = json!([]);
    let mut missing = release();
    missing["targets"][1]
        .as_object_mut()
        .unwrap()
        .remove("alias");
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "a target's bad version",
            with_target(1, "targetVersion", json!("$LATEST")),
            "targets[1].targetVersion",
            "must be a published version number, not `$LATEST`: publish a version and deploy that",
        ),
        (
            "a target's missing alias",
            missing,
            "targets[1].alias",
            "is required",
        ),
        (
            "the same alias twice",
            duplicate,
            "targets[1]",
            "`orders-api:live` is listed twice (also targets[0]): a release moves each alias once",
        ),
        (
            "both forms",
            both,
            "functionName",
            "cannot be given with `targets`: a release names each target's functionName, alias and targetVersion inside `targets` (found functionName at the top level)",
        ),
        (
            "no targets",
            none,
            "targets",
            "must list at least one target",
        ),
        (
            "a release without targets",
            {
                let mut v = release();
                v.as_object_mut().unwrap().remove("targets");
                v
            },
            "targets",
            "is required with `release`: list each target as {\"functionName\", \"alias\", \"targetVersion\"}",
        ),
        (
            "too many targets",
            too_many,
            "targets",
            "lists 11 targets; a release moves at most 10 (split it into several releases)",
        ),
        (
            "a release name that cannot name an execution",
            {
                let mut v = release();
                v["release"] = json!("orders 2026");
                v
            },
            "release",
            "may hold only letters, digits, `-`, `_` and `.` (it names the execution), not ' '",
        ),
    ];
    for (name, input, field, reason) in cases {
        assert_eq!(
            problems(&input),
            [FieldError::new(field, reason)],
            "case: {name}"
        );
    }
}
