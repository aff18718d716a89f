//! Gates: anything that can stop a step. Every gate answers in one shape, a [`GateResult`] (its verdict, the
//! error name a failure rolls back with, one finding per check, and its evidence), and [`decide`] combines the
//! list into the step's [`GateReport`]. A gate is a module here with its pure judgement (`alarms.rs`,
//! `analysis.rs`) plus its entry in the engine's list of gates; nothing else needs to know it exists. What a
//! result may carry is capped (`bounds.rs`): the report travels in the state machine's state.

pub mod alarms;
pub mod analysis;
pub mod bounds;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ErrorType;
use analysis::OnInconclusive;

/// A gate's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    /// Not enough data yet.
    Inconclusive,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        })
    }
}

/// One gate's answer on one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateResult {
    /// The gate's name: `alarms`, `analysis`.
    pub gate: String,
    pub verdict: Verdict,
    /// The error name a `fail` rolls the deployment back with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorType>,
    /// Why the verdict is what it is, one sentence per check, for people: logs, the CLI, the failure's cause.
    #[serde(default)]
    pub findings: Vec<String>,
    /// What the gate read (alarm states, metric counts, test statistics), in the gate's own shape.
    #[serde(default)]
    pub evidence: serde_json::Value,
}

impl GateResult {
    /// This result as a report carries it: findings and evidence within [`bounds`]' caps, each cut marked
    /// (a finding ending `…[+N bytes]`, a last finding `… and N more findings (not shown)`, evidence replaced by
    /// `{"truncated": {"evidenceBytes": N}}`). `gate`, `verdict` and `error`, which the state machine and the
    /// rollback read, are never touched.
    pub fn bounded(self) -> Self {
        Self {
            findings: bounds::findings(self.findings),
            evidence: bounds::evidence(self.evidence),
            ..self
        }
    }
}

/// Everything `CheckGates` decided for a step. The state machine's Verdict reads `verdict` and `baking`,
/// ExtendBake reads `extendSeconds`, GateFailed records `error`; `results` is the evidence a user reads in the execution's
/// output, its history and the logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateReport {
    pub verdict: Verdict,
    /// Why the step failed, as the rollout's error name: the failing gate's (`AlarmFired`, `AnalysisFailed`), or
    /// `AnalysisInconclusive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorType>,
    /// The schedule step judged (0-based), as in the rollout.
    pub step: Option<usize>,
    /// How many times this step's bake has been extended for want of data.
    #[serde(default)]
    pub extensions: u32,
    /// With an `inconclusive` verdict: how long the next extension waits; while `baking`: until the next look.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extend_seconds: Option<u64>,
    /// Nothing failed, and the step is still baking: it is looked at again after `extendSeconds` (metric analysis
    /// looks at a step every `intervalSeconds`). Always present: the state machine's Verdict reads it.
    #[serde(default)]
    pub baking: bool,
    /// Each gate that ran, in the order it ran.
    #[serde(default)]
    pub results: Vec<GateResult>,
    /// The step passed, and its `afterStep` hook has not run yet: the state machine's Verdict runs it, then the
    /// gates judge the step again. Always present: the Verdict reads it.
    #[serde(default)]
    pub after_step_due: bool,
    /// This step's afterStep hook has run (carried from report to report of the step, whatever the hook answered).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after_step_ran: bool,
}

impl GateReport {
    /// One line for logs and the CLI: the verdict and the findings behind it.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .results
            .iter()
            .flat_map(|r| r.findings.iter().cloned())
            .collect();
        if self.extensions > 0 {
            parts.push(format!("after {} extension(s)", self.extensions));
        }
        if parts.is_empty() {
            self.verdict.to_string()
        } else {
            format!("{}: {}", self.verdict, parts.join("; "))
        }
    }

    /// The result of the gate named `gate`, if it ran.
    pub fn result(&self, gate: &str) -> Option<&GateResult> {
        self.results.iter().find(|r| r.gate == gate)
    }
}

/// What an inconclusive step does: wait `seconds` more, up to `max` times, then take `then`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extensions {
    pub max: u32,
    pub seconds: u64,
    pub then: OnInconclusive,
}

/// Combines the gates' results into the step's report. Any failing gate fails the step with its own error name;
/// otherwise an inconclusive gate extends the bake while extensions remain (the previous report, when it is for
/// this same step, says how many were used), then takes the configured outcome. Every result leaves
/// [`GateResult::bounded`]: the report is the one place all gates' answers pass, so none can outgrow the state.
/// `next_look`: the step is still baking and is looked at again in that many seconds; until then only a failure
/// ends it (an inconclusive gate just waits for the next look).
pub fn decide(
    step: Option<usize>,
    mut results: Vec<GateResult>,
    extensions: Extensions,
    previous: Option<&GateReport>,
    next_look: Option<u64>,
) -> GateReport {
    let used = previous
        .filter(|p| p.step == step && p.verdict == Verdict::Inconclusive)
        .map_or(0, |p| p.extensions + 1);
    let report = |verdict, error, extend_seconds, results: Vec<GateResult>| GateReport {
        verdict,
        error,
        step,
        extensions: used,
        extend_seconds,
        baking: false,
        results: bounds::fit_results(results.into_iter().map(GateResult::bounded).collect()),
        after_step_due: false,
        after_step_ran: false,
    };
    if let Some(failed) = results.iter().find(|r| r.verdict == Verdict::Fail) {
        // The state machine records `error` as the rollout's failure: a gate that fails without naming one is a
        // bug in that gate, never a reason to leave the name out.
        let error = failed.error.unwrap_or(ErrorType::Internal);
        return report(Verdict::Fail, Some(error), None, results);
    }
    if let Some(seconds) = next_look {
        return GateReport {
            baking: true,
            ..report(Verdict::Pass, None, Some(seconds), results)
        };
    }
    let Some(waiting) = results
        .iter_mut()
        .find(|r| r.verdict == Verdict::Inconclusive)
    else {
        return report(Verdict::Pass, None, None, results);
    };
    if used < extensions.max {
        return report(
            Verdict::Inconclusive,
            None,
            Some(extensions.seconds),
            results,
        );
    }
    match extensions.then {
        OnInconclusive::Fail => {
            waiting.findings.push(format!(
                "still inconclusive after {used} extension(s); onInconclusive is fail"
            ));
            report(
                Verdict::Fail,
                Some(ErrorType::AnalysisInconclusive),
                None,
                results,
            )
        }
        OnInconclusive::Pass => {
            waiting.findings.push(format!(
                "still inconclusive after {used} extension(s); onInconclusive is pass, so the rollout goes on"
            ));
            report(Verdict::Pass, None, None, results)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(gate: &str, verdict: Verdict, error: Option<ErrorType>) -> GateResult {
        GateResult {
            gate: gate.into(),
            verdict,
            error,
            findings: vec![format!("{gate} said {verdict}")],
            evidence: serde_json::Value::Null,
        }
    }

    const TWICE_THEN_FAIL: Extensions = Extensions {
        max: 2,
        seconds: 300,
        then: OnInconclusive::Fail,
    };

    #[test]
    fn the_first_failing_gate_names_the_error() {
        let report = decide(
            Some(0),
            vec![
                result("alarms", Verdict::Pass, None),
                result("analysis", Verdict::Fail, Some(ErrorType::AnalysisFailed)),
                result("other", Verdict::Fail, Some(ErrorType::HookFailed)),
            ],
            TWICE_THEN_FAIL,
            None,
            None,
        );
        assert_eq!(report.verdict, Verdict::Fail);
        assert_eq!(report.error, Some(ErrorType::AnalysisFailed));
        assert_eq!(report.results.len(), 3, "every result is kept as evidence");
    }

    #[test]
    fn a_fail_outranks_an_inconclusive_gate() {
        let report = decide(
            Some(0),
            vec![
                result("analysis", Verdict::Inconclusive, None),
                result("alarms", Verdict::Fail, Some(ErrorType::AlarmFired)),
            ],
            TWICE_THEN_FAIL,
            None,
            None,
        );
        assert_eq!(
            (report.verdict, report.error, report.extend_seconds),
            (Verdict::Fail, Some(ErrorType::AlarmFired), None)
        );
    }

    #[test]
    fn a_failing_gate_that_names_no_error_fails_as_internal() {
        let report = decide(
            Some(0),
            vec![result("careless", Verdict::Fail, None)],
            TWICE_THEN_FAIL,
            None,
            None,
        );
        assert_eq!(
            (report.verdict, report.error),
            (Verdict::Fail, Some(ErrorType::Internal))
        );
    }

    #[test]
    fn no_gates_pass() {
        let report = decide(Some(1), Vec::new(), TWICE_THEN_FAIL, None, None);
        assert_eq!(
            (report.verdict, report.summary()),
            (Verdict::Pass, "pass".to_owned())
        );
    }

    #[test]
    fn an_inconclusive_gate_extends_then_takes_the_outcome() {
        let waiting = || vec![result("analysis", Verdict::Inconclusive, None)];
        let first = decide(Some(0), waiting(), TWICE_THEN_FAIL, None, None);
        assert_eq!(
            (first.verdict, first.extensions, first.extend_seconds),
            (Verdict::Inconclusive, 0, Some(300))
        );
        let second = decide(Some(0), waiting(), TWICE_THEN_FAIL, Some(&first), None);
        assert_eq!(
            (second.verdict, second.extensions),
            (Verdict::Inconclusive, 1)
        );
        let last = decide(Some(0), waiting(), TWICE_THEN_FAIL, Some(&second), None);
        assert_eq!(
            (last.verdict, last.error, last.extensions),
            (Verdict::Fail, Some(ErrorType::AnalysisInconclusive), 2)
        );
        assert!(
            last.summary().contains("onInconclusive is fail"),
            "{}",
            last.summary()
        );

        let lenient = Extensions {
            then: OnInconclusive::Pass,
            ..TWICE_THEN_FAIL
        };
        let passed = decide(Some(0), waiting(), lenient, Some(&second), None);
        assert_eq!((passed.verdict, passed.error), (Verdict::Pass, None));
        assert!(passed.summary().contains("the rollout goes on"));
    }

    #[test]
    fn every_gate_s_result_is_bounded_in_the_report_and_marked() {
        // A careless gate: 50 long findings and a megabyte of evidence.
        let careless = GateResult {
            findings: (0..50)
                .map(|i| format!("{i} {}", "f".repeat(5_000)))
                .collect(),
            evidence: serde_json::json!({"dump": "e".repeat(1 << 20)}),
            ..result("careless", Verdict::Fail, Some(ErrorType::AnalysisFailed))
        };
        let report = decide(Some(0), vec![careless], TWICE_THEN_FAIL, None, None);
        // What the state machine reads is untouched.
        assert_eq!(
            (report.verdict, report.error, &report.results[0].gate),
            (
                Verdict::Fail,
                Some(ErrorType::AnalysisFailed),
                &"careless".to_owned()
            )
        );
        let r = &report.results[0];
        assert_eq!(r.findings.len(), bounds::MAX_FINDINGS);
        assert!(
            r.findings
                .iter()
                .all(|f| f.len() <= bounds::MAX_FINDING_BYTES)
        );
        assert!(r.findings[0].ends_with(" bytes]"), "{}", r.findings[0]);
        assert_eq!(
            r.findings.last().unwrap(),
            "… and 43 more findings (not shown)"
        );
        assert!(
            r.evidence["truncated"]["evidenceBytes"].as_u64() > Some(1 << 20),
            "{}",
            r.evidence
        );
        // Under the 32,768 characters of the cause GateFailed copies the report into.
        let size = serde_json::to_string(&report).unwrap().len();
        assert!(size < 16 * 1024, "the report is {size} bytes");
    }

    #[test]
    fn the_summary_lists_every_finding_in_order() {
        let report = decide(
            Some(0),
            vec![
                result("alarms", Verdict::Pass, None),
                result("analysis", Verdict::Pass, None),
            ],
            TWICE_THEN_FAIL,
            None,
            None,
        );
        assert_eq!(
            report.summary(),
            "pass: alarms said pass; analysis said pass"
        );
        assert_eq!(
            report.result("analysis").map(|r| r.verdict),
            Some(Verdict::Pass)
        );
        assert!(report.result("approval").is_none());
    }
}
