//! Strategies: how traffic grows. The nine CodeDeploy predefined names, with CodeDeploy's meaning, and four
//! custom forms. A strategy yields the *traffic steps* (every weight below 100%); the deployment adds the final
//! promotion step.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use strum::VariantArray;

use crate::error::FieldError;
use crate::schedule::{MAX_TRAFFIC_STEPS, Step};

/// CodeDeploy's predefined Lambda deployment configurations, spelled as SAM's `DeploymentPreference.Type` spells
/// them. CodeDeploy's full names (`CodeDeployDefault.LambdaCanary10Percent5Minutes`) are accepted too.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    strum::EnumString,
    strum::VariantArray,
    strum::IntoStaticStr,
)]
pub enum Predefined {
    Canary10Percent5Minutes,
    Canary10Percent10Minutes,
    Canary10Percent15Minutes,
    Canary10Percent30Minutes,
    Linear10PercentEvery1Minute,
    Linear10PercentEvery2Minutes,
    Linear10PercentEvery3Minutes,
    Linear10PercentEvery10Minutes,
    AllAtOnce,
}

const CODEDEPLOY_PREFIX: &str = "CodeDeployDefault.Lambda";

impl Predefined {
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The custom strategy with the same meaning; `None` for AllAtOnce, which has no traffic step.
    pub fn as_custom(self) -> Option<CustomStrategy> {
        use Predefined::*;
        let (kind, minutes): (fn(Interval) -> CustomStrategy, i64) = match self {
            Canary10Percent5Minutes => (CustomStrategy::Canary, 5),
            Canary10Percent10Minutes => (CustomStrategy::Canary, 10),
            Canary10Percent15Minutes => (CustomStrategy::Canary, 15),
            Canary10Percent30Minutes => (CustomStrategy::Canary, 30),
            Linear10PercentEvery1Minute => (CustomStrategy::Linear, 1),
            Linear10PercentEvery2Minutes => (CustomStrategy::Linear, 2),
            Linear10PercentEvery3Minutes => (CustomStrategy::Linear, 3),
            Linear10PercentEvery10Minutes => (CustomStrategy::Linear, 10),
            AllAtOnce => return None,
        };
        Some(kind(Interval {
            percent: 10.0,
            interval_seconds: minutes * 60,
        }))
    }

    /// Parses a predefined name; the error says what the user most likely meant.
    pub fn parse(name: &str) -> Result<Self, String> {
        let short = name.strip_prefix(CODEDEPLOY_PREFIX).unwrap_or(name);
        if let Ok(p) = short.parse() {
            return Ok(p);
        }
        let lower = name.to_ascii_lowercase();
        if ["canary", "linear", "steps", "exponential"].contains(&lower.as_str()) {
            return Err(format!(
                "`{name}` is a custom strategy form, written as an object, e.g. {}",
                example_for(&lower)
            ));
        }
        let names = Self::VARIANTS.iter().map(|v| v.name());
        let closest = names
            .clone()
            .map(|v| {
                (
                    strsim::normalized_damerau_levenshtein(
                        &v.to_ascii_lowercase(),
                        &short.to_ascii_lowercase(),
                    ),
                    v,
                )
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .filter(|(score, _)| *score >= 0.6)
            .map(|(_, v)| v);
        Err(match closest {
            Some(suggestion) => format!("unknown strategy `{name}`; did you mean `{suggestion}`?"),
            None => format!(
                "unknown strategy `{name}`; use one of {} or a custom form (canary, linear, steps, exponential)",
                names.collect::<Vec<_>>().join(", ")
            ),
        })
    }
}

fn example_for(form: &str) -> &'static str {
    match form {
        "canary" => r#"{"canary": {"percent": 10, "intervalSeconds": 300}}"#,
        "linear" => r#"{"linear": {"percent": 20, "intervalSeconds": 60}}"#,
        "steps" => {
            r#"{"steps": [{"percent": 1, "bakeSeconds": 60}, {"percent": 25, "bakeSeconds": 300}]}"#
        }
        _ => r#"{"exponential": {"startPercent": 1, "factor": 2, "intervalSeconds": 60}}"#,
    }
}

/// A fixed increment or canary share held for an interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Interval {
    pub percent: f64,
    // Signed so that a negative interval gets our message, not serde's "expected u64".
    pub interval_seconds: i64,
}

/// One explicit step of the `steps` form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomStep {
    pub percent: f64,
    pub bake_seconds: i64,
}

/// Traffic that starts at `startPercent` and multiplies by `factor` every interval until it would reach 100%.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Exponential {
    pub start_percent: f64,
    pub factor: f64,
    pub interval_seconds: i64,
}

/// The custom forms, as objects with one key naming the form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum CustomStrategy {
    /// `percent` for one interval, then 100%.
    Canary(Interval),
    /// `percent` more every interval until 100%.
    Linear(Interval),
    /// Explicit weights, strictly increasing, each below 100%; 100% is added as the last step.
    Steps(Vec<CustomStep>),
    Exponential(Exponential),
}

/// The strategy as the input writes it: a predefined name (checked during validation, so that a typo gets a
/// suggestion) or a custom form.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum StrategyInput {
    Named(String),
    Custom(CustomStrategy),
}

impl<'de> Deserialize<'de> for StrategyInput {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Hand-rolled instead of `#[serde(untagged)]` so that errors inside a custom form keep serde's precise
        // message and path instead of "data did not match any variant".
        struct StrategyVisitor;
        impl<'de> Visitor<'de> for StrategyVisitor {
            type Value = StrategyInput;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a strategy name like "Canary10Percent5Minutes" or an object like {"linear": {"percent": 20, "intervalSeconds": 60}}"#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StrategyInput::Named(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                if let Some(keys) = map.size_hint().filter(|n| *n != 1) {
                    return Err(de::Error::custom(format!(
                        "a custom strategy is an object with exactly one key naming its form (canary, linear, \
                         steps or exponential); found {keys} keys"
                    )));
                }
                CustomStrategy::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(StrategyInput::Custom)
            }
        }
        deserializer.deserialize_any(StrategyVisitor)
    }
}

/// A validated strategy.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Strategy {
    Predefined(Predefined),
    Custom(CustomStrategy),
}

/// The predefined name, or the custom form as compact JSON: how a user would write it.
impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::Predefined(p) => f.write_str(p.name()),
            Strategy::Custom(c) => f.write_str(&serde_json::to_string(c).map_err(|_| fmt::Error)?),
        }
    }
}

impl Strategy {
    /// Resolves and checks the input form; problems are reported against `field` and its sub-paths.
    pub fn from_input(
        input: &StrategyInput,
        field: &str,
    ) -> Result<(Self, Vec<Step>), Vec<FieldError>> {
        let strategy = match input {
            StrategyInput::Named(name) => Strategy::Predefined(
                Predefined::parse(name).map_err(|reason| vec![FieldError::new(field, reason)])?,
            ),
            StrategyInput::Custom(custom) => Strategy::Custom(custom.clone()),
        };
        let steps = strategy.traffic_steps(field)?;
        Ok((strategy, steps))
    }

    /// Every weight below 100%, in order, each with its bake.
    fn traffic_steps(&self, field: &str) -> Result<Vec<Step>, Vec<FieldError>> {
        match self {
            Strategy::Predefined(p) => match p.as_custom() {
                Some(custom) => custom.traffic_steps(field),
                None => Ok(Vec::new()),
            },
            Strategy::Custom(custom) => custom.traffic_steps(field),
        }
    }
}

impl CustomStrategy {
    fn traffic_steps(&self, field: &str) -> Result<Vec<Step>, Vec<FieldError>> {
        let mut problems = Vec::new();
        let steps = match self {
            CustomStrategy::Canary(i) => {
                let at = format!("{field}.canary");
                let percent = check_percent(&mut problems, &format!("{at}.percent"), i.percent);
                let interval = check_seconds(
                    &mut problems,
                    &format!("{at}.intervalSeconds"),
                    i.interval_seconds,
                );
                vec![Step::new(percent, interval)]
            }
            CustomStrategy::Linear(i) => {
                let at = format!("{field}.linear");
                let percent = check_percent(&mut problems, &format!("{at}.percent"), i.percent);
                let interval = check_seconds(
                    &mut problems,
                    &format!("{at}.intervalSeconds"),
                    i.interval_seconds,
                );
                if problems.is_empty() {
                    // k × increment rather than a running sum, so 10% steps are exactly 10, 20, … 90.
                    grow(&mut problems, &format!("{at}.percent"), interval, |k| {
                        percent * k as f64
                    })
                } else {
                    Vec::new()
                }
            }
            CustomStrategy::Exponential(e) => {
                let at = format!("{field}.exponential");
                let start = check_percent(
                    &mut problems,
                    &format!("{at}.startPercent"),
                    e.start_percent,
                );
                let interval = check_seconds(
                    &mut problems,
                    &format!("{at}.intervalSeconds"),
                    e.interval_seconds,
                );
                if !(e.factor.is_finite() && e.factor > 1.0) {
                    problems.push(FieldError::new(
                        format!("{at}.factor"),
                        format!(
                            "must be greater than 1 so that traffic grows (got {})",
                            e.factor
                        ),
                    ));
                }
                if problems.is_empty() {
                    // start × factor^k computed afresh each step, so rounding does not accumulate.
                    grow(&mut problems, &format!("{at}.factor"), interval, |k| {
                        start * e.factor.powi(k as i32 - 1)
                    })
                } else {
                    Vec::new()
                }
            }
            CustomStrategy::Steps(list) => {
                let at = format!("{field}.steps");
                if list.is_empty() {
                    problems.push(FieldError::new(
                        &at,
                        "must hold at least one step; for no traffic steps use \"AllAtOnce\"",
                    ));
                }
                if list.len() > MAX_TRAFFIC_STEPS {
                    problems.push(too_many_steps(&at, list.len()));
                }
                let mut previous: Option<f64> = None;
                let mut steps = Vec::with_capacity(list.len());
                for (i, s) in list.iter().enumerate() {
                    let percent_field = format!("{at}[{i}].percent");
                    let percent = check_percent(&mut problems, &percent_field, s.percent);
                    let bake = check_seconds(
                        &mut problems,
                        &format!("{at}[{i}].bakeSeconds"),
                        s.bake_seconds,
                    );
                    if let Some(p) = previous
                        && percent.is_finite()
                        && percent <= p
                    {
                        problems.push(FieldError::new(
                            percent_field,
                            format!("must be greater than the step before it ({percent} is not above {p})"),
                        ));
                    }
                    previous = Some(percent);
                    steps.push(Step::new(percent, bake));
                }
                steps
            }
        };
        if problems.is_empty() {
            Ok(steps)
        } else {
            Err(problems)
        }
    }
}

/// Steps `percent_at(1)`, `percent_at(2)`, … for as long as they stay below 100%.
fn grow(
    problems: &mut Vec<FieldError>,
    field: &str,
    interval: u64,
    percent_at: impl Fn(usize) -> f64,
) -> Vec<Step> {
    let mut steps = Vec::new();
    for k in 1..=MAX_TRAFFIC_STEPS + 1 {
        let percent = percent_at(k);
        if percent >= 100.0 {
            return steps;
        }
        steps.push(Step::new(percent, interval));
    }
    problems.push(too_many_steps(field, steps.len()));
    Vec::new()
}

fn too_many_steps(field: &str, count: usize) -> FieldError {
    let count = if count > MAX_TRAFFIC_STEPS {
        format!("more than {MAX_TRAFFIC_STEPS}")
    } else {
        count.to_string()
    };
    FieldError::new(
        field,
        format!("gives {count} traffic steps; a rollout may take at most {MAX_TRAFFIC_STEPS}"),
    )
}

/// Records a problem unless `percent` is a traffic share strictly between 0 and 100; returns it as given.
fn check_percent(problems: &mut Vec<FieldError>, field: &str, percent: f64) -> f64 {
    let reason = if !percent.is_finite() {
        Some(format!("must be a number (got {percent})"))
    } else if percent <= 0.0 {
        Some(format!("must be greater than 0 (got {percent})"))
    } else if percent >= 100.0 {
        Some(format!(
            "must be less than 100 (got {percent}); the final 100% step is added for you"
        ))
    } else {
        None
    };
    if let Some(reason) = reason {
        problems.push(FieldError::new(field, reason));
    }
    percent
}

/// Records a problem unless `seconds` is at least 1; returns it as unsigned (0 when it was not).
fn check_seconds(problems: &mut Vec<FieldError>, field: &str, seconds: i64) -> u64 {
    if seconds < 1 {
        problems.push(FieldError::new(
            field,
            format!("must be at least 1 second (got {seconds})"),
        ));
    }
    seconds.max(0).unsigned_abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_predefined_name_parses_in_both_spellings() {
        for p in Predefined::VARIANTS {
            assert_eq!(Predefined::parse(p.name()).unwrap(), *p);
            assert_eq!(
                Predefined::parse(&format!("{CODEDEPLOY_PREFIX}{}", p.name())).unwrap(),
                *p
            );
        }
    }

    #[test]
    fn misspelled_names_get_the_closest_suggestion() {
        let cases = [
            ("Canary10Percent5Minute", "Canary10Percent5Minutes"),
            ("canary10percent5minutes", "Canary10Percent5Minutes"),
            (
                "Linear10PercentEvery2Minute",
                "Linear10PercentEvery2Minutes",
            ),
            ("AllAtOne", "AllAtOnce"),
        ];
        for (typo, suggestion) in cases {
            let err = Predefined::parse(typo).unwrap_err();
            assert_eq!(
                err,
                format!("unknown strategy `{typo}`; did you mean `{suggestion}`?")
            );
        }
    }

    #[test]
    fn far_off_names_list_every_valid_name() {
        let err = Predefined::parse("BlueGreen").unwrap_err();
        for p in Predefined::VARIANTS {
            assert!(err.contains(p.name()), "{err}");
        }
    }

    #[test]
    fn form_names_as_strings_point_to_the_object_form() {
        let err = Predefined::parse("linear").unwrap_err();
        assert!(err.contains(r#"{"linear": {"percent": 20"#), "{err}");
    }

    #[test]
    fn exponential_doubles_until_it_would_reach_100() {
        let s = CustomStrategy::Exponential(Exponential {
            start_percent: 1.0,
            factor: 2.0,
            interval_seconds: 60,
        });
        let percents: Vec<f64> = s
            .traffic_steps("strategy")
            .unwrap()
            .iter()
            .map(|s| s.percent)
            .collect();
        assert_eq!(percents, [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]);
    }

    #[test]
    fn growth_that_needs_too_many_steps_is_rejected_without_building_them_all() {
        let s = CustomStrategy::Linear(Interval {
            percent: 0.01,
            interval_seconds: 1,
        });
        let err = s.traffic_steps("strategy").unwrap_err();
        assert_eq!(err[0].field, "strategy.linear.percent");
        assert!(
            err[0]
                .reason
                .contains(&format!("more than {MAX_TRAFFIC_STEPS}")),
            "{:?}",
            err
        );
    }
}
