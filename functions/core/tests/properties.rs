//! Properties every accepted deployment has, over generated inputs that range well past the valid ones.

use proptest::prelude::*;
use safeshift_core::Deployment;
use safeshift_core::schedule::{MAX_TOTAL_SECONDS, MAX_TRAFFIC_STEPS};
use serde_json::{Value, json};

/// Percents from clearly invalid to valid, fractional ones included.
fn percent() -> impl Strategy<Value = f64> {
    prop_oneof![
        -10.0..110.0f64,
        0.001..100.0f64,
        Just(0.0),
        Just(100.0),
        (1u32..100).prop_map(f64::from)
    ]
}

fn seconds() -> impl Strategy<Value = i64> {
    prop_oneof![-5i64..5, 1i64..3600, Just(i64::from(u32::MAX))]
}

fn strategy() -> impl Strategy<Value = Value> {
    let predefined = prop::sample::select(vec![
        "Canary10Percent5Minutes",
        "Canary10Percent10Minutes",
        "Canary10Percent15Minutes",
        "Canary10Percent30Minutes",
        "Linear10PercentEvery1Minute",
        "Linear10PercentEvery2Minutes",
        "Linear10PercentEvery3Minutes",
        "Linear10PercentEvery10Minutes",
        "AllAtOnce",
    ])
    .prop_map(|n| json!(n));
    prop_oneof![
        predefined,
        (percent(), seconds())
            .prop_map(|(p, s)| json!({"canary": {"percent": p, "intervalSeconds": s}})),
        (percent(), seconds())
            .prop_map(|(p, s)| json!({"linear": {"percent": p, "intervalSeconds": s}})),
        prop::collection::vec((percent(), seconds()), 0..8).prop_map(|steps| {
            let steps: Vec<Value> = steps
                .into_iter()
                .map(|(p, s)| json!({"percent": p, "bakeSeconds": s}))
                .collect();
            json!({ "steps": steps })
        }),
        (percent(), 0.5..4.0f64, seconds()).prop_map(|(p, f, s)| {
            json!({"exponential": {"startPercent": p, "factor": f, "intervalSeconds": s}})
        }),
    ]
}

fn input() -> impl Strategy<Value = Value> {
    (strategy(), prop::option::of(-5i64..100_000)).prop_map(|(strategy, bake)| {
        let mut v = json!({"functionName": "orders-api", "alias": "live", "targetVersion": "7", "strategy": strategy});
        if let Some(b) = bake {
            v["bakeSeconds"] = json!(b);
        }
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn accepted_schedules_increase_strictly_and_end_at_exactly_full_weight(input in input()) {
        let Ok(d) = Deployment::from_value(input) else { return Ok(()); };
        let steps = d.schedule().steps();
        for s in steps {
            prop_assert!(s.weight() > 0.0 && s.weight() <= 1.0, "weight {} out of (0, 1]", s.weight());
        }
        for pair in steps.windows(2) {
            prop_assert!(pair[0].weight() < pair[1].weight(), "{:?} then {:?}", pair[0], pair[1]);
        }
        let last = steps.last().unwrap();
        prop_assert_eq!(last.weight(), 1.0);
        prop_assert!(last.is_promotion());
        prop_assert_eq!(last.bake_seconds, d.bake_seconds);
        prop_assert!(steps[..steps.len() - 1].iter().all(|s| !s.is_promotion()));
        prop_assert!(steps.len() <= MAX_TRAFFIC_STEPS + 1);
        let sum: u64 = steps.iter().map(|s| s.bake_seconds).sum();
        prop_assert_eq!(d.schedule().total_seconds(), sum);
        prop_assert!(sum <= MAX_TOTAL_SECONDS);
        prop_assert!(steps[..steps.len() - 1].iter().all(|s| s.bake_seconds >= 1));
    }

    #[test]
    fn accepted_deployments_round_trip_through_their_json(input in input()) {
        let Ok(d) = Deployment::from_value(input) else { return Ok(()); };
        let again = Deployment::from_value(serde_json::to_value(&d).unwrap()).unwrap();
        prop_assert_eq!(again, d);
    }

    #[test]
    fn rejected_inputs_always_name_a_field(input in input()) {
        if let Err(e) = Deployment::from_value(input) {
            prop_assert!(!e.problems.is_empty());
            for p in &e.problems {
                prop_assert!(!p.field.is_empty() && !p.reason.is_empty());
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        let _ = Deployment::parse(&text);
    }
}

#[test]
fn the_generator_reaches_both_valid_and_invalid_inputs() {
    // Guards the properties above against a generator that only ever makes rejected inputs.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut ok, mut err) = (0, 0);
    for _ in 0..500 {
        let v = input().new_tree(&mut runner).unwrap().current();
        match Deployment::from_value(v) {
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        }
    }
    assert!(ok > 100 && err > 50, "ok {ok}, err {err}");
}
