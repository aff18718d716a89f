//! Metric analysis: judging the target version by its own Lambda metrics, next to the stable version's over the
//! same window. During a weighted rollout both versions serve the same traffic at the same time, so the stable
//! version is a baseline measured under identical conditions; Lambda publishes Invocations, Errors, Throttles and
//! Duration per `ExecutedVersion` (dimensions FunctionName, Resource = `function:alias`, ExecutedVersion).
//!
//! The statistics: the target's error rate against `maxErrorRate`; with `compareToStable`, a one-sided test of
//! "the target's error rate is higher than the stable version's" — Fisher's exact test when any expected cell of
//! the 2×2 table is below 5 (where the normal approximation is poor), the pooled two-proportion z-test otherwise —
//! significant when its p-value is below the alpha this look may spend; the target's p99 Duration against the
//! stable version's times `1 + maxP99LatencyIncrease`; and throttles on the target where the stable version has
//! none.
//!
//! Continuously: a step is looked at every `intervalSeconds` of its own traffic, on the data since its shift, and
//! its last look sees the whole bake (which takes the bake plus `metricDelaySeconds`: Lambda's metrics arrive
//! late). Looking many times must not make a false rollback likelier than `1 - confidence`, so the comparison
//! spends its alpha over the step's looks (Lan–DeMets alpha spending, the power family `alpha · t³`, an
//! O'Brien–Fleming-like shape: little early, the most at the end): a look at the fraction `t` of the bake tests at
//! `alpha · t³` minus what the step's earlier tests spent, so all its tests together spend at most `alpha`
//! (Bonferroni over the looks: conservative, whatever their correlation).

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
/// How often a step is looked at by default: Lambda's metrics have one-minute resolution.
pub const DEFAULT_INTERVAL_SECONDS: u64 = 60;
const MIN_INTERVAL_SECONDS: u64 = 10;
const MAX_INTERVAL_SECONDS: u64 = 3600;
/// The most looks at one step: a longer bake is looked at every `bake / 10` seconds instead, which keeps a long
/// rollout's history within Step Functions' limit.
pub const MAX_LOOKS_PER_STEP: u64 = 10;
/// The power of the alpha-spending function `alpha · t^ρ`.
const SPENDING_POWER: i32 = 3;

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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<i64>,
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
    /// How often a step is looked at while it bakes.
    pub interval_seconds: u64,
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
        let interval_seconds = input
            .interval_seconds
            .map_or(Ok(DEFAULT_INTERVAL_SECONDS), |s| {
                u64::try_from(s)
                    .ok()
                    .filter(|s| (MIN_INTERVAL_SECONDS..=MAX_INTERVAL_SECONDS).contains(s))
                    .ok_or(s)
            })
            .map_err(|s| {
                bad(
                    "intervalSeconds",
                    format!(
                        "must be from {MIN_INTERVAL_SECONDS} to {MAX_INTERVAL_SECONDS} seconds (got {s}): how often a baking step is looked at"
                    ),
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
            interval_seconds: interval_seconds?,
        })
    }

    /// How many times an analysed step is looked at when every look passes: one per `intervalSeconds` of its bake,
    /// the last when the whole bake's metrics have arrived. 0 for a step that is not analysed.
    pub fn looks(&self, step: &Step) -> u64 {
        if is_analysed(step) {
            step.bake_seconds.div_ceil(self.interval(step)).max(1)
        } else {
            0
        }
    }

    /// How often `step` is looked at: every `intervalSeconds`, at most [`MAX_LOOKS_PER_STEP`] times.
    pub fn interval(&self, step: &Step) -> u64 {
        self.interval_seconds
            .max(step.bake_seconds.div_ceil(MAX_LOOKS_PER_STEP))
    }

    /// How long an analysed step waits for its first look: one interval of its traffic (or its whole bake, if
    /// shorter), plus the time its metrics take to arrive.
    pub fn first_wait(&self, step: &Step) -> u64 {
        self.metric_delay_seconds + self.interval(step).min(step.bake_seconds).max(1)
    }

    /// How long an analysed step holds its weight before its last look: its bake, then its metrics' delay.
    pub fn hold_seconds(&self, step: &Step) -> u64 {
        step.bake_seconds.saturating_add(self.metric_delay_seconds)
    }

    /// After a look that saw `observed` seconds of the step's traffic: how long until the next look, or `None`
    /// when it saw the whole bake (the step's verdict is this look's).
    pub fn next_look(&self, step: &Step, observed: u64) -> Option<u64> {
        (observed < step.bake_seconds)
            .then(|| self.interval(step).min(step.bake_seconds - observed).max(1))
    }

    /// The alpha the comparison may have spent, in all, once `observed` seconds of a `bake`-second step are seen.
    pub fn alpha_spent_by(&self, bake: u64, observed: u64) -> f64 {
        let t = if bake == 0 {
            1.0
        } else {
            (observed as f64 / bake as f64).min(1.0)
        };
        (1.0 - self.confidence) * t.powi(SPENDING_POWER)
    }

    /// Whether the gate needs Duration percentiles (a separate, costlier query).
    pub fn needs_latency(&self) -> bool {
        self.max_p99_latency_increase.is_some()
    }
}

/// The analysis of a step whose bake an operator ended early (`promote`): not judged, and saying who ended it.
pub fn skipped(by: Option<&crate::control::Operation>) -> super::GateResult {
    let who = by
        .and_then(|o| o.by.as_ref())
        .map_or("an operator".to_owned(), |b| b.arn.clone());
    let why = by
        .and_then(|o| o.reason.as_deref())
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    super::GateResult {
        gate: GATE.into(),
        verdict: super::Verdict::Pass,
        error: None,
        findings: vec![format!(
            "not judged: the bake was ended early by {who} (promote){why}"
        )],
        evidence: serde_json::json!({"skipped": true}),
    }
    .bounded()
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

/// How long a schedule takes when every gate passes at its first check: an analysed step holds its weight for
/// its bake and its metrics' delay.
pub fn total_seconds(schedule: &Schedule, analysis: Option<&Analysis>) -> u64 {
    longest_seconds(schedule, analysis, 0)
}

/// The longest a schedule can take when every analysed step is extended `extensions` times.
pub fn longest_seconds(schedule: &Schedule, analysis: Option<&Analysis>, extensions: u32) -> u64 {
    schedule
        .steps()
        .iter()
        .map(|s| match analysis {
            Some(a) if is_analysed(s) => a.hold_seconds(s).saturating_add(
                extension_seconds(s.bake_seconds).saturating_mul(u64::from(extensions)),
            ),
            _ => s.bake_seconds,
        })
        .fold(0, u64::saturating_add)
}

/// The looks of a schedule before each analysed step's last: each costs a wait, a check and a verdict.
pub fn interim_looks(schedule: &Schedule, analysis: Option<&Analysis>) -> u64 {
    analysis.map_or(0, |a| {
        schedule
            .steps()
            .iter()
            .map(|s| a.looks(s).saturating_sub(1))
            .sum()
    })
}

/// The window a step's metrics are read over, in Unix seconds, `[start, end)`: from the step's shift to the
/// metric delay before now, so the newest, still-incomplete minute is not read as "no errors" — and the step's
/// own traffic is what is judged, never the previous step's.
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
        let start = step_started_at;
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
    /// The alpha this look tested at: `1 - confidence` for a step looked at once, less at each of several looks.
    #[serde(default)]
    pub alpha: f64,
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
    /// The alpha the step's comparisons have spent so far, this look's included.
    #[serde(default)]
    pub alpha_spent: f64,
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

/// [`compare_error_rates`] with Fisher's exact test whatever the counts.
pub fn exact_error_rates(errors_a: u64, n_a: u64, errors_b: u64, n_b: u64) -> (Test, f64) {
    let (errors_a, errors_b) = (errors_a.min(n_a), errors_b.min(n_b));
    let (n, errors) = (n_a + n_b, errors_a + errors_b);
    if n_a == 0 || n_b == 0 || errors == 0 || errors == n {
        return (Test::FisherExact, 1.0);
    }
    (Test::FisherExact, fisher_greater(errors_a, n_a, errors, n))
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

/// A look at a step: how much alpha the comparison may spend, in all, by this look, how much earlier looks of
/// the step spent, and the fraction of the step's bake it sees (1: its last look).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Look {
    pub spendable: f64,
    pub spent_before: f64,
    pub seen: f64,
}

impl Look {
    /// A step's only look, or its last with nothing spent before: the whole `1 - confidence`.
    pub fn only(config: &Analysis) -> Self {
        Self {
            spendable: 1.0 - config.confidence,
            spent_before: 0.0,
            seen: 1.0,
        }
    }

    /// Whether this look sees the whole bake: the step's verdict.
    pub fn is_last(&self) -> bool {
        self.seen >= 1.0
    }
}

/// Below this alpha a look compares the error rates with Fisher's exact test whatever the counts: the normal
/// approximation's tail is too light that far out, and a test must hold its level for the looks' bound to hold.
const EXACT_BELOW_ALPHA: f64 = 0.01;

/// Judges the target against the thresholds and the stable version at a step's only look.
pub fn judge(
    config: &Analysis,
    window: Window,
    target: VersionMetrics,
    stable: VersionMetrics,
) -> AnalysisResult {
    judge_look(config, window, target, stable, Look::only(config))
}

/// Judges the target against the thresholds and the stable version at one look. `fail` when any check with enough
/// data fails (the comparison at the alpha left to this look); otherwise `inconclusive` when the target has fewer
/// than `minInvocations`; otherwise `pass`. Before the last look only what is already decided fails: the
/// comparison at its spent alpha, and errors that exceed `maxErrorRate` of the whole bake's expected
/// invocations even if every later call succeeds; p99 and throttles are judged on the whole bake, at the last.
pub fn judge_look(
    config: &Analysis,
    window: Window,
    target: VersionMetrics,
    stable: VersionMetrics,
    look: Look,
) -> AnalysisResult {
    let alpha = (look.spendable - look.spent_before).max(0.0);
    let full = 1.0 - config.confidence;
    let mut alpha_spent = look.spent_before;
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
    let last = look.is_last();
    if let Some(max) = config.max_error_rate {
        // Decisive early: these errors alone exceed the bound even if every invocation still needed succeeds —
        // needed for a verdict, and, before the last look, expected by the bake's end at the traffic seen so far.
        let expected = if last {
            0.0
        } else {
            target.invocations as f64 / look.seen.max(f64::MIN_POSITIVE)
        };
        let decided = target.errors as f64 > max * expected.max(config.min_invocations as f64);
        match target_rate {
            Some(rate) if rate > max && ((enough && last) || decided) => {
                failed = true;
                findings.push(format!(
                    "error rate {} ({}/{}) is above maxErrorRate {}",
                    percent(rate),
                    target.errors,
                    target.invocations,
                    percent(max)
                ));
            }
            Some(rate) if enough && last => findings.push(format!(
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
            let (test, p_value) = if alpha < EXACT_BELOW_ALPHA {
                exact_error_rates(
                    target.errors,
                    target.invocations,
                    stable.errors,
                    stable.invocations,
                )
            } else {
                compare_error_rates(
                    target.errors,
                    target.invocations,
                    stable.errors,
                    stable.invocations,
                )
            };
            let significant = p_value < alpha;
            alpha_spent = look.spendable.max(look.spent_before);
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
                "error rate {} vs stable {} ({}/{}): {name}, one-sided {p} — {} at {}% confidence{}",
                percent(target_rate.unwrap_or(0.0)),
                percent(stable_rate.unwrap_or(0.0)),
                stable.errors,
                stable.invocations,
                if significant {
                    "significantly worse"
                } else {
                    "not significantly worse"
                },
                config.confidence * 100.0,
                if (alpha - full).abs() > 1e-12 {
                    format!(" (this look tests at alpha {alpha:.4} of {full:.4}, spent over the step's looks)")
                } else {
                    String::new()
                }
            ));
            failed |= significant;
            comparison = Some(Comparison {
                test,
                p_value,
                confidence: config.confidence,
                alpha,
                significant,
            });
        }
    }

    let mut p99_increase = None;
    if let Some(max) = config.max_p99_latency_increase
        && enough
        && last
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

    if target.throttles > 0 && last {
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
            alpha_spent,
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
    fn the_window_is_the_steps_own_traffic_up_to_the_delay_before_now() {
        // The step shifted at 1,000; at 1,300 with a 60-s delay the metrics up to 1,240 have arrived. Never the
        // previous step's traffic: the window starts at the shift.
        let w = Window::for_step(1_000, 1_300, 60);
        assert_eq!((w.start, w.end, w.period_seconds), (1_000, 1_240, 240));
        let w = Window::for_step(1_000, 1_001, 0);
        assert_eq!((w.start, w.end, w.period_seconds), (1_000, 1_001, 60));
        // A clock behind the step's start still gives a non-empty window.
        let w = Window::for_step(1_000, 990, 0);
        assert_eq!((w.start, w.end), (1_000, 1_001));
    }

    fn with(input: AnalysisInput) -> Analysis {
        Analysis::validate(&input, &mut Vec::new()).unwrap()
    }

    #[test]
    fn a_step_is_looked_at_every_interval_and_last_once_its_whole_bake_has_arrived() {
        let a = with(AnalysisInput {
            max_error_rate: Some(0.01),
            ..Default::default()
        });
        assert_eq!((a.interval_seconds, a.metric_delay_seconds), (60, 60));
        let step = Step::new(10.0, 300);
        // Five looks at 60, 120, … 300 s of traffic, each one delay after that traffic.
        assert_eq!(a.looks(&step), 5);
        assert_eq!(a.first_wait(&step), 120);
        assert_eq!(a.hold_seconds(&step), 360);
        assert_eq!(a.next_look(&step, 60), Some(60));
        assert_eq!(a.next_look(&step, 270), Some(30), "never past the bake");
        assert_eq!(
            a.next_look(&step, 300),
            None,
            "the whole bake seen: this look decides"
        );
        assert_eq!(a.next_look(&step, 301), None);
        // A bake shorter than the interval is looked at once, when its metrics are in.
        let short = Step::new(10.0, 30);
        assert_eq!((a.looks(&short), a.first_wait(&short)), (1, 90));
        // A promotion with no bake is not analysed at all.
        assert_eq!(a.looks(&Step::new(100.0, 0)), 0);
        // A long bake is looked at ten times, not every minute.
        let long = Step::new(10.0, 4 * 3600);
        assert_eq!((a.looks(&long), a.interval(&long)), (10, 1440));
    }

    #[test]
    fn the_looks_spend_at_most_one_minus_confidence_in_all() {
        let a = with(AnalysisInput {
            compare_to_stable: Some(true),
            confidence: Some(0.95),
            ..Default::default()
        });
        let spent: Vec<f64> = [60, 120, 180, 240, 300]
            .map(|seen| a.alpha_spent_by(300, seen))
            .to_vec();
        // alpha · t³: little early, the most at the end, all of it by the last look.
        assert!((spent[0] - 0.05 * 0.008).abs() < 1e-12, "{spent:?}");
        assert!(spent.windows(2).all(|w| w[0] < w[1]));
        assert!((spent[4] - 0.05).abs() < 1e-12);
        assert!(
            (a.alpha_spent_by(300, 9_999) - 0.05).abs() < 1e-12,
            "capped at the bake"
        );
    }

    #[test]
    fn an_early_look_tests_at_the_alpha_it_may_spend() {
        let c = with(AnalysisInput {
            min_invocations: Some(100),
            ..Default::default()
        });
        // p ≈ 0.0066 (45/500 vs 25/500): significant at 0.05, not at the first of five looks' 0.0004.
        let early = Look {
            spendable: c.alpha_spent_by(300, 60),
            spent_before: 0.0,
            seen: 0.2,
        };
        let e = judge_look(
            &c,
            W,
            metrics("7", 500, 45, 100.0),
            metrics("6", 500, 25, 100.0),
            early,
        );
        let comparison = e.evidence.comparison.clone().unwrap();
        assert!(!comparison.significant && (comparison.alpha - 0.0004).abs() < 1e-12);
        assert_eq!(e.verdict, Verdict::Pass);
        assert!(
            e.findings
                .iter()
                .any(|f| f.contains("this look tests at alpha 0.0004 of 0.0500")),
            "{:?}",
            e.findings
        );
        assert!((e.evidence.alpha_spent - 0.0004).abs() < 1e-12);
        // The last look gets what the earlier ones did not spend: significant then.
        let last = Look {
            spendable: c.alpha_spent_by(300, 300),
            spent_before: e.evidence.alpha_spent,
            seen: 1.0,
        };
        let e = judge_look(
            &c,
            W,
            metrics("7", 500, 45, 100.0),
            metrics("6", 500, 25, 100.0),
            last,
        );
        assert!(e.evidence.comparison.unwrap().significant);
        assert_eq!(e.verdict, Verdict::Fail);
        // A grossly worse version fails at the first look.
        let e = judge_look(
            &c,
            W,
            metrics("7", 500, 150, 100.0),
            metrics("6", 500, 5, 100.0),
            early,
        );
        assert_eq!(e.verdict, Verdict::Fail);
        // A look without enough traffic tests nothing and spends nothing.
        let e = judge_look(
            &c,
            W,
            metrics("7", 20, 1, 100.0),
            metrics("6", 500, 5, 100.0),
            early,
        );
        assert_eq!(
            (e.verdict, e.evidence.alpha_spent),
            (Verdict::Inconclusive, 0.0)
        );
        // At so small an alpha the comparison is Fisher's exact test, whatever the counts.
        let big = judge_look(
            &c,
            W,
            metrics("7", 5000, 45, 100.0),
            metrics("6", 5000, 25, 100.0),
            early,
        );
        assert_eq!(big.evidence.comparison.unwrap().test, Test::FisherExact);
    }

    #[test]
    fn before_the_last_look_only_what_is_already_decided_fails() {
        let c = with(AnalysisInput {
            max_error_rate: Some(0.05),
            max_p99_latency_increase: Some(0.2),
            compare_to_stable: Some(false),
            min_invocations: Some(100),
            ..Default::default()
        });
        let at = |seen: f64| Look {
            seen,
            ..Look::only(&c)
        };
        let slow = |errors: u64| metrics("7", 200, errors, 500.0);
        let mut throttled = metrics("7", 200, 0, 100.0);
        throttled.throttles = 3;
        // A fifth of the bake seen, 200 calls: about 1,000 by its end, so 20 errors (10%) are not yet decisive
        // against 5%, but 60 are (more than 5% of 1,000 whatever the rest brings).
        assert_eq!(
            judge_look(&c, W, slow(20), metrics("6", 1800, 2, 100.0), at(0.2)).verdict,
            Verdict::Pass
        );
        assert_eq!(
            judge_look(&c, W, slow(60), metrics("6", 1800, 2, 100.0), at(0.2)).verdict,
            Verdict::Fail
        );
        // p99 and throttles are judged on the whole bake: not before the last look.
        assert_eq!(
            judge_look(&c, W, slow(0), metrics("6", 1800, 0, 100.0), at(0.2)).verdict,
            Verdict::Pass
        );
        assert_eq!(
            judge_look(
                &c,
                W,
                throttled.clone(),
                metrics("6", 1800, 0, 100.0),
                at(0.2)
            )
            .verdict,
            Verdict::Pass
        );
        // At the last look, every rule as ever.
        assert_eq!(
            judge_look(&c, W, slow(20), metrics("6", 1800, 2, 100.0), at(1.0)).verdict,
            Verdict::Fail
        );
        assert_eq!(
            judge_look(&c, W, slow(0), metrics("6", 1800, 0, 100.0), at(1.0)).verdict,
            Verdict::Fail
        );
        assert_eq!(
            judge_look(&c, W, throttled, metrics("6", 1800, 0, 100.0), at(1.0)).verdict,
            Verdict::Fail
        );
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
                interval_seconds: Some(5),
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
                "analysis.metricDelaySeconds",
                "analysis.intervalSeconds"
            ]
        );
        assert!(
            problems[6]
                .reason
                .contains("from 10 to 3600 seconds (got 5)"),
            "{}",
            problems[6].reason
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
