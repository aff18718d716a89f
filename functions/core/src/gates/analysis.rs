//! Metric analysis: judging the target version by its own Lambda metrics, next to the stable version's over the
//! same window. During a weighted rollout both versions serve the same traffic at the same time, so the stable
//! version is a baseline measured under identical conditions; Lambda publishes Invocations, Errors, Throttles and
//! Duration per `ExecutedVersion` (dimensions FunctionName, Resource = `function:alias`, ExecutedVersion).
//!
//! The statistics: the target's error rate against `maxErrorRate`; with `compareToStable`, a one-sided test of
//! "the target's error rate is higher than the stable version's" — Fisher's exact test when any expected cell of
//! the 2×2 table is below 5 (where the normal approximation is poor), the pooled two-proportion z-test otherwise —
//! significant when its p-value is below `1 - confidence`; the target's p99 Duration against the stable version's
//! times `1 + maxP99LatencyIncrease`; and throttles on the target where the stable version has none.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, DiscreteCDF, Hypergeometric, Normal};

use super::{GateResult, Verdict};
use crate::error::ErrorType;
use crate::error::FieldError;

/// The gate's name in reports.
pub const GATE: &str = "analysis";
use crate::schedule::{Schedule, Step};

pub const DEFAULT_MIN_INVOCATIONS: u64 = 50;
pub const DEFAULT_CONFIDENCE: f64 = 0.95;
pub const DEFAULT_MAX_EXTENSIONS: u32 = 3;
/// Lambda's metrics reach CloudWatch about a minute after the invocations they count.
pub const DEFAULT_METRIC_DELAY_SECONDS: u64 = 60;
/// Each extension adds a bake's worth of history events and time; past a few, more waiting rarely brings traffic.
pub const MAX_EXTENSIONS: u32 = 5;
const MAX_METRIC_DELAY_SECONDS: u64 = 900;
const MAX_MIN_INVOCATIONS: u64 = 1_000_000;
/// An extension of a step whose bake is 0 (an immediate promotion) still waits this long for metrics to arrive.
pub const MIN_EXTENSION_SECONDS: u64 = 60;

/// The `analysis` block as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnalysisInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_p99_latency_increase: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_invocations: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compare_to_stable: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_extensions: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_inconclusive: Option<OnInconclusive>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric_delay_seconds: Option<i64>,
}

/// What a step does when it is still inconclusive after its last extension.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum OnInconclusive {
    /// Roll back: a version nobody could observe is not known to be healthy.
    #[default]
    Fail,
    /// Carry on, with the inconclusive evidence recorded (for functions that see little traffic).
    Pass,
}

/// A validated analysis configuration. Serializes back to an input that validates to the same configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_p99_latency_increase: Option<f64>,
    pub min_invocations: u64,
    pub compare_to_stable: bool,
    pub confidence: f64,
    pub max_extensions: u32,
    pub on_inconclusive: OnInconclusive,
    pub metric_delay_seconds: u64,
}

impl Analysis {
    /// Checks every field, recording each problem against `analysis.<field>`.
    pub fn validate(input: &AnalysisInput, problems: &mut Vec<FieldError>) -> Option<Self> {
        let before = problems.len();
        let mut bad = |field: &str, reason: String| {
            problems.push(FieldError::new(format!("analysis.{field}"), reason));
        };
        if let Some(r) = input.max_error_rate
            && !(r.is_finite() && (0.0..1.0).contains(&r))
        {
            bad(
                "maxErrorRate",
                format!("must be a fraction from 0 up to 1, e.g. 0.01 for 1% (got {r})"),
            );
        }
        if let Some(r) = input.max_p99_latency_increase
            && !(r.is_finite() && (0.0..=100.0).contains(&r))
        {
            bad(
                "maxP99LatencyIncrease",
                format!("must be a relative increase from 0 to 100, e.g. 0.2 for +20% (got {r})"),
            );
        }
        let min_invocations = input
            .min_invocations
            .map_or(Ok(DEFAULT_MIN_INVOCATIONS), |n| {
                u64::try_from(n)
                    .ok()
                    .filter(|n| (1..=MAX_MIN_INVOCATIONS).contains(n))
                    .ok_or(n)
            })
            .map_err(|n| {
                bad(
                    "minInvocations",
                    format!(
                        "must be from 1 to {MAX_MIN_INVOCATIONS} (got {n}): a verdict needs traffic, zero is never healthy"
                    ),
                )
            })
            .ok();
        let confidence = input.confidence.unwrap_or(DEFAULT_CONFIDENCE);
        if !(confidence.is_finite() && confidence > 0.5 && confidence < 1.0) {
            bad(
                "confidence",
                format!("must be above 0.5 and below 1, e.g. 0.95 (got {confidence})"),
            );
        }
        let max_extensions = input
            .max_extensions
            .map_or(Ok(DEFAULT_MAX_EXTENSIONS), |n| {
                u32::try_from(n)
                    .ok()
                    .filter(|n| *n <= MAX_EXTENSIONS)
                    .ok_or(n)
            })
            .map_err(|n| {
                bad(
                    "maxExtensions",
                    format!("must be from 0 to {MAX_EXTENSIONS} (got {n})"),
                )
            })
            .ok();
        let metric_delay_seconds = input
            .metric_delay_seconds
            .map_or(Ok(DEFAULT_METRIC_DELAY_SECONDS), |s| {
                u64::try_from(s)
                    .ok()
                    .filter(|s| *s <= MAX_METRIC_DELAY_SECONDS)
                    .ok_or(s)
            })
            .map_err(|s| {
                bad(
                    "metricDelaySeconds",
                    format!("must be from 0 to {MAX_METRIC_DELAY_SECONDS} seconds (got {s})"),
                )
            })
            .ok();
        let compare_to_stable = input.compare_to_stable.unwrap_or(true);
        if input.max_error_rate.is_none()
            && input.max_p99_latency_increase.is_none()
            && !compare_to_stable
        {
            problems.push(FieldError::new(
                "analysis",
                "checks nothing: set maxErrorRate, maxP99LatencyIncrease or compareToStable",
            ));
        }
        if problems.len() > before {
            return None;
        }
        Some(Self {
            max_error_rate: input.max_error_rate,
            max_p99_latency_increase: input.max_p99_latency_increase,
            min_invocations: min_invocations?,
            compare_to_stable,
            confidence,
            max_extensions: max_extensions?,
            on_inconclusive: input.on_inconclusive.unwrap_or_default(),
            metric_delay_seconds: metric_delay_seconds?,
        })
    }

    /// Whether the gate needs Duration percentiles (a separate, costlier query).
    pub fn needs_latency(&self) -> bool {
        self.max_p99_latency_increase.is_some()
    }
}

/// How long an extension of a step waits: the step's own bake, so the window grows by what the step was given.
pub fn extension_seconds(bake_seconds: u64) -> u64 {
    if bake_seconds == 0 {
        MIN_EXTENSION_SECONDS
    } else {
        bake_seconds
    }
}

/// Whether a step's metrics are judged. A promotion held for no bake (`bakeSeconds` 0, the default) has nothing
/// to observe: judging it would only wait out every extension, then roll back a version every earlier step
/// passed.
pub fn is_analysed(step: &Step) -> bool {
    !(step.is_promotion() && step.bake_seconds == 0)
}

/// The longest a schedule can take when every analysed step is extended `extensions` times.
pub fn longest_seconds(schedule: &Schedule, extensions: u32) -> u64 {
    schedule
        .steps()
        .iter()
        .map(|s| {
            let extended = if is_analysed(s) { extensions } else { 0 };
            s.bake_seconds.saturating_add(
                extension_seconds(s.bake_seconds).saturating_mul(u64::from(extended)),
            )
        })
        .fold(0, u64::saturating_add)
}

/// The window a step's metrics are read over, in Unix seconds, `[start, end)`: the step's time since its shift,
/// moved back by the metric delay so the newest, still-incomplete minute is not read as "no errors".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Window {
    pub start: u64,
    pub end: u64,
    /// One period spanning the whole window, a multiple of 60 s: a percentile over one period is the window's
    /// percentile (percentiles of several periods cannot be combined).
    pub period_seconds: u64,
}

impl Window {
    pub fn for_step(step_started_at: u64, now: u64, delay: u64) -> Self {
        let start = step_started_at.saturating_sub(delay);
        let end = now.saturating_sub(delay).max(start + 1);
        let period_seconds = (end - start).div_ceil(60).max(1) * 60;
        Self {
            start,
            end,
            period_seconds,
        }
    }
}

/// One version's metrics over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionMetrics {
    pub version: String,
    pub invocations: u64,
    pub errors: u64,
    pub throttles: u64,
    /// p99 Duration in milliseconds; absent without latency analysis or without invocations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
}

impl VersionMetrics {
    pub fn empty(version: impl Into<String>) -> Self {
        Self {
            version: version.into(),
            invocations: 0,
            errors: 0,
            throttles: 0,
            p99_ms: None,
        }
    }

    /// Errors per invocation; `None` without invocations (no rate, rather than a healthy-looking 0).
    pub fn error_rate(&self) -> Option<f64> {
        (self.invocations > 0)
            .then(|| self.errors.min(self.invocations) as f64 / self.invocations as f64)
    }
}

/// Which test compared the error rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Test {
    /// Fisher's exact test, one-sided (target worse).
    FisherExact,
    /// Pooled two-proportion z-test, one-sided (target worse).
    TwoProportionZ,
}

/// The error-rate comparison with the stable version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    pub test: Test,
    /// Probability of an error rate at least this much higher if both versions were equally good.
    pub p_value: f64,
    pub confidence: f64,
    pub significant: bool,
}

/// The metric analysis's answer on one step: its verdict, why, and what it read.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisResult {
    pub verdict: Verdict,
    /// Why the verdict is what it is, one sentence per check, in the order they were made.
    pub findings: Vec<String>,
    pub evidence: AnalysisEvidence,
}

impl From<AnalysisResult> for GateResult {
    fn from(r: AnalysisResult) -> Self {
        GateResult {
            gate: GATE.into(),
            verdict: r.verdict,
            error: (r.verdict == Verdict::Fail).then_some(ErrorType::AnalysisFailed),
            findings: r.findings,
            evidence: serde_json::to_value(&r.evidence).expect("analysis evidence is plain data"),
        }
    }
}

/// The evidence behind an analysis verdict, as the execution's output and logs carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisEvidence {
    pub window: Window,
    pub target: VersionMetrics,
    pub stable: VersionMetrics,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_error_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stable_error_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
    /// The target's p99 over the stable version's, minus 1 (0.25 = 25% slower).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_increase: Option<f64>,
    /// What the numbers were judged against.
    pub thresholds: Thresholds,
}

/// The analysis settings a verdict applied, carried with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Thresholds {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_p99_latency_increase: Option<f64>,
    pub min_invocations: u64,
    pub compare_to_stable: bool,
    pub confidence: f64,
}

impl From<&Analysis> for Thresholds {
    fn from(a: &Analysis) -> Self {
        Self {
            max_error_rate: a.max_error_rate,
            max_p99_latency_increase: a.max_p99_latency_increase,
            min_invocations: a.min_invocations,
            compare_to_stable: a.compare_to_stable,
            confidence: a.confidence,
        }
    }
}

/// One-sided p-value for "the first group's error rate is higher than the second's".
pub fn compare_error_rates(errors_a: u64, n_a: u64, errors_b: u64, n_b: u64) -> (Test, f64) {
    let (errors_a, errors_b) = (errors_a.min(n_a), errors_b.min(n_b));
    let n = n_a + n_b;
    let errors = errors_a + errors_b;
    if n_a == 0 || n_b == 0 || errors == 0 || errors == n {
        // Nothing distinguishes the groups: no evidence that one is worse.
        return (Test::FisherExact, 1.0);
    }
    let expected_min = [errors, n - errors]
        .into_iter()
        .flat_map(|column| [n_a, n_b].map(|row| row as f64 * column as f64 / n as f64))
        .fold(f64::INFINITY, f64::min);
    if expected_min < 5.0 {
        (Test::FisherExact, fisher_greater(errors_a, n_a, errors, n))
    } else {
        (
            Test::TwoProportionZ,
            z_test_greater(errors_a, n_a, errors_b, n_b),
        )
    }
}

/// P(X >= a) for X hypergeometric: `a` errors among the first group's `n_a` draws from `n` invocations of which
/// `errors` failed.
fn fisher_greater(a: u64, n_a: u64, errors: u64, n: u64) -> f64 {
    let h = Hypergeometric::new(n, errors, n_a).expect("errors <= n and n_a <= n");
    if a == 0 {
        1.0
    } else {
        h.sf(a - 1).clamp(0.0, 1.0)
    }
}

fn z_test_greater(errors_a: u64, n_a: u64, errors_b: u64, n_b: u64) -> f64 {
    let (n_a, n_b) = (n_a as f64, n_b as f64);
    let (p_a, p_b) = (errors_a as f64 / n_a, errors_b as f64 / n_b);
    let pooled = (errors_a + errors_b) as f64 / (n_a + n_b);
    let se = (pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b)).sqrt();
    Normal::standard().sf((p_a - p_b) / se)
}

fn percent(rate: f64) -> String {
    format!("{:.2}%", rate * 100.0)
}

/// Judges the target against the thresholds and the stable version. `fail` when any check with enough data fails;
/// otherwise `inconclusive` when the target has fewer than `minInvocations`; otherwise `pass`.
pub fn judge(
    config: &Analysis,
    window: Window,
    target: VersionMetrics,
    stable: VersionMetrics,
) -> AnalysisResult {
    let mut findings = Vec::new();
    let mut failed = false;
    let enough = target.invocations >= config.min_invocations;
    let target_rate = target.error_rate();
    let stable_rate = stable.error_rate();

    if !enough {
        findings.push(format!(
            "version {} served {} invocations in the window; minInvocations is {}",
            target.version, target.invocations, config.min_invocations
        ));
    }
    if let Some(max) = config.max_error_rate {
        // Decisive early: these errors alone exceed the bound even if every invocation still needed succeeds.
        let decided = target.errors as f64 > max * config.min_invocations as f64;
        match target_rate {
            Some(rate) if rate > max && (enough || decided) => {
                failed = true;
                findings.push(format!(
                    "error rate {} ({}/{}) is above maxErrorRate {}",
                    percent(rate),
                    target.errors,
                    target.invocations,
                    percent(max)
                ));
            }
            Some(rate) if enough => findings.push(format!(
                "error rate {} ({}/{}) is within maxErrorRate {}",
                percent(rate),
                target.errors,
                target.invocations,
                percent(max)
            )),
            _ => {}
        }
    }

    let mut comparison = None;
    if config.compare_to_stable && enough {
        if stable.invocations == 0 {
            findings.push(format!(
                "stable version {} served no invocations in the window: no error-rate comparison",
                stable.version
            ));
        } else {
            let (test, p_value) = compare_error_rates(
                target.errors,
                target.invocations,
                stable.errors,
                stable.invocations,
            );
            let significant = p_value < 1.0 - config.confidence;
            let name = match test {
                Test::FisherExact => "Fisher's exact test",
                Test::TwoProportionZ => "two-proportion z-test",
            };
            let p = if p_value < 1e-4 {
                "p < 0.0001".to_owned()
            } else {
                format!("p = {p_value:.4}")
            };
            findings.push(format!(
                "error rate {} vs stable {} ({}/{}): {name}, one-sided {p} — {} at {}% confidence",
                percent(target_rate.unwrap_or(0.0)),
                percent(stable_rate.unwrap_or(0.0)),
                stable.errors,
                stable.invocations,
                if significant {
                    "significantly worse"
                } else {
                    "not significantly worse"
                },
                config.confidence * 100.0
            ));
            failed |= significant;
            comparison = Some(Comparison {
                test,
                p_value,
                confidence: config.confidence,
                significant,
            });
        }
    }

    let mut p99_increase = None;
    if let Some(max) = config.max_p99_latency_increase
        && enough
    {
        match (target.p99_ms, stable.p99_ms) {
            (Some(t), Some(s)) if s > 0.0 => {
                let increase = t / s - 1.0;
                p99_increase = Some(increase);
                let over = increase > max;
                failed |= over;
                findings.push(format!(
                    "p99 duration {t:.1} ms vs stable {s:.1} ms ({:+.1}%): {} maxP99LatencyIncrease {:+.1}%",
                    increase * 100.0,
                    if over { "above" } else { "within" },
                    max * 100.0
                ));
            }
            _ => findings.push(format!(
                "no p99 duration for {}: no latency comparison",
                if target.p99_ms.is_none() {
                    format!("version {}", target.version)
                } else {
                    format!("stable version {}", stable.version)
                }
            )),
        }
    }

    if target.throttles > 0 {
        if stable.invocations > 0 && stable.throttles == 0 {
            failed = true;
            findings.push(format!(
                "version {} was throttled {} times; stable version {} was not throttled",
                target.version, target.throttles, stable.version
            ));
        } else {
            findings.push(format!(
                "version {} was throttled {} times, as was stable version {} ({}): not the new version's doing",
                target.version, target.throttles, stable.version, stable.throttles
            ));
        }
    }

    AnalysisResult {
        verdict: if failed {
            Verdict::Fail
        } else if !enough {
            Verdict::Inconclusive
        } else {
            Verdict::Pass
        },
        findings,
        evidence: AnalysisEvidence {
            window,
            target_error_rate: target_rate,
            stable_error_rate: stable_rate,
            target,
            stable,
            comparison,
            p99_increase,
            thresholds: config.into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn fisher_matches_the_lady_tasting_tea() {
        // Fisher (1935): 3 of 4 cups right in each row, one-sided p = 17/70.
        let (test, p) = compare_error_rates(3, 4, 1, 4);
        assert_eq!(test, Test::FisherExact);
        assert!(close(p, 17.0 / 70.0, 1e-12), "{p}");
    }

    #[test]
    fn fisher_matches_a_hand_computed_table() {
        // 2 errors of 10 vs 0 of 10: P(X >= 2) = C(10,2)/C(20,2) = 45/190.
        let (test, p) = compare_error_rates(2, 10, 0, 10);
        assert_eq!(test, Test::FisherExact);
        assert!(close(p, 45.0 / 190.0, 1e-12), "{p}");
    }

    #[test]
    fn the_z_test_matches_the_textbook_value() {
        // 30/1000 vs 20/1000: pooled p = 0.025, z = 1.4322, one-sided p = 0.0760 (normal table at 1.43: 0.0764).
        let (test, p) = compare_error_rates(30, 1000, 20, 1000);
        assert_eq!(test, Test::TwoProportionZ);
        assert!(close(p, 0.07604, 5e-5), "{p}");
        // 45/500 vs 25/500: pooled p = 0.07, z = 2.4788, p = 0.00659 (table at 2.48: 0.00657).
        let (_, p) = compare_error_rates(45, 500, 25, 500);
        assert!(close(p, 0.00659, 5e-5), "{p}");
    }

    #[test]
    fn no_errors_or_no_traffic_is_no_evidence_of_worse() {
        assert_eq!(compare_error_rates(0, 100, 0, 100).1, 1.0);
        assert_eq!(compare_error_rates(0, 0, 5, 100).1, 1.0);
        assert_eq!(compare_error_rates(3, 100, 0, 0).1, 1.0);
        // A better target is never "significantly worse".
        assert!(compare_error_rates(0, 1000, 50, 1000).1 > 0.99);
    }

    fn config() -> Analysis {
        let mut problems = Vec::new();
        Analysis::validate(
            &AnalysisInput {
                max_error_rate: Some(0.05),
                max_p99_latency_increase: Some(0.2),
                min_invocations: Some(100),
                ..Default::default()
            },
            &mut problems,
        )
        .unwrap()
    }

    fn metrics(version: &str, invocations: u64, errors: u64, p99: f64) -> VersionMetrics {
        VersionMetrics {
            version: version.into(),
            invocations,
            errors,
            throttles: 0,
            p99_ms: Some(p99),
        }
    }

    const W: Window = Window {
        start: 0,
        end: 60,
        period_seconds: 60,
    };

    #[test]
    fn a_healthy_target_passes_with_its_evidence() {
        let e = judge(
            &config(),
            W,
            metrics("7", 500, 2, 110.0),
            metrics("6", 500, 3, 100.0),
        );
        assert_eq!(e.verdict, Verdict::Pass, "{:?}", e.findings);
        assert_eq!(e.evidence.target_error_rate, Some(0.004));
        assert!(
            e.evidence
                .comparison
                .as_ref()
                .is_some_and(|c| !c.significant)
        );
        assert!(close(e.evidence.p99_increase.unwrap(), 0.1, 1e-12));
        assert_eq!(e.evidence.thresholds.max_error_rate, Some(0.05));
        assert_eq!(e.evidence.thresholds.min_invocations, 100);
        assert_eq!(e.findings.len(), 3, "{:?}", e.findings);
    }

    #[test]
    fn each_check_fails_on_its_own() {
        let c = config();
        // Above maxErrorRate.
        let e = judge(
            &c,
            W,
            metrics("7", 200, 12, 100.0),
            metrics("6", 200, 11, 100.0),
        );
        assert_eq!(e.verdict, Verdict::Fail);
        assert!(
            e.findings[0].contains("above maxErrorRate 5.00%"),
            "{:?}",
            e.findings
        );
        // Within maxErrorRate but significantly worse than stable.
        let e = judge(
            &c,
            W,
            metrics("7", 1000, 40, 100.0),
            metrics("6", 1000, 5, 100.0),
        );
        assert_eq!(e.verdict, Verdict::Fail);
        assert!(e.evidence.comparison.unwrap().significant);
        // Latency over the bound.
        let e = judge(
            &c,
            W,
            metrics("7", 500, 0, 125.0),
            metrics("6", 500, 0, 100.0),
        );
        assert_eq!(e.verdict, Verdict::Fail);
        assert!(
            e.findings
                .iter()
                .any(|f| f.contains("above maxP99LatencyIncrease"))
        );
        // Throttled where stable is not.
        let mut t = metrics("7", 500, 0, 100.0);
        t.throttles = 3;
        let e = judge(&c, W, t.clone(), metrics("6", 500, 0, 100.0));
        assert_eq!(e.verdict, Verdict::Fail);
        // ... but not when stable is throttled too.
        let mut s = metrics("6", 500, 0, 100.0);
        s.throttles = 4;
        assert_eq!(judge(&c, W, t, s).verdict, Verdict::Pass);
    }

    #[test]
    fn too_little_traffic_is_inconclusive_never_healthy() {
        let c = config();
        let e = judge(
            &c,
            W,
            VersionMetrics::empty("7"),
            metrics("6", 500, 0, 100.0),
        );
        assert_eq!(e.verdict, Verdict::Inconclusive);
        assert_eq!(e.evidence.target_error_rate, None);
        assert!(
            e.findings[0].contains("served 0 invocations"),
            "{:?}",
            e.findings
        );
        let e = judge(
            &c,
            W,
            metrics("7", 99, 0, 100.0),
            metrics("6", 500, 0, 100.0),
        );
        assert_eq!(e.verdict, Verdict::Inconclusive);
    }

    #[test]
    fn errors_that_already_decide_fail_before_min_invocations() {
        // 6 errors exceed 5% of the 100 invocations needed, whatever the rest do.
        let e = judge(
            &config(),
            W,
            metrics("7", 10, 6, 100.0),
            metrics("6", 500, 0, 100.0),
        );
        assert_eq!(e.verdict, Verdict::Fail, "{:?}", e.findings);
        // 5 do not (5/100 is not above 5%).
        let e = judge(
            &config(),
            W,
            metrics("7", 10, 5, 100.0),
            metrics("6", 500, 0, 100.0),
        );
        assert_eq!(e.verdict, Verdict::Inconclusive, "{:?}", e.findings);
    }

    #[test]
    fn no_stable_traffic_skips_the_comparison_but_not_the_threshold() {
        let e = judge(
            &config(),
            W,
            metrics("7", 500, 1, 100.0),
            VersionMetrics::empty("6"),
        );
        assert_eq!(e.verdict, Verdict::Pass, "{:?}", e.findings);
        assert!(e.evidence.comparison.is_none());
        assert!(
            e.findings
                .iter()
                .any(|f| f.contains("no error-rate comparison"))
        );
        assert!(
            e.findings
                .iter()
                .any(|f| f.contains("no latency comparison"))
        );
    }

    #[test]
    fn the_window_is_the_step_moved_back_by_the_delay() {
        let w = Window::for_step(1_000, 1_300, 60);
        assert_eq!((w.start, w.end, w.period_seconds), (940, 1_240, 300));
        let w = Window::for_step(1_000, 1_001, 0);
        assert_eq!((w.start, w.end, w.period_seconds), (1_000, 1_001, 60));
        // A clock behind the step's start still gives a non-empty window.
        let w = Window::for_step(1_000, 990, 0);
        assert_eq!((w.start, w.end), (1_000, 1_001));
    }

    #[test]
    fn validation_names_each_field() {
        let mut problems = Vec::new();
        let got = Analysis::validate(
            &AnalysisInput {
                max_error_rate: Some(5.0),
                max_p99_latency_increase: Some(-0.1),
                min_invocations: Some(0),
                confidence: Some(1.0),
                max_extensions: Some(9),
                metric_delay_seconds: Some(-1),
                ..Default::default()
            },
            &mut problems,
        );
        assert!(got.is_none());
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "analysis.maxErrorRate",
                "analysis.maxP99LatencyIncrease",
                "analysis.minInvocations",
                "analysis.confidence",
                "analysis.maxExtensions",
                "analysis.metricDelaySeconds"
            ]
        );
        let mut problems = Vec::new();
        let nothing = AnalysisInput {
            compare_to_stable: Some(false),
            ..Default::default()
        };
        assert!(Analysis::validate(&nothing, &mut problems).is_none());
        assert_eq!(problems[0].field, "analysis");
    }
}
