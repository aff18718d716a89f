//! The rollout in flight: the state the state machine carries from one function to the next, and the pure
//! decisions the functions make on it — what to write to the alias at each step, whether a rollback writes, how
//! gates turn evidence into a verdict. The Lambda functions only read the world, call these, and write.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::analysis::{AnalysisEvidence, OnInconclusive};
use crate::deployment::Deployment;
use crate::error::{Error, ErrorType};
use crate::names::Version;

/// An alias as Lambda reports it: the version it points at, any additional version weights, its revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AliasState {
    pub function_version: String,
    /// Additional versions and their weight in (0, 1); empty when the alias is not split.
    #[serde(default)]
    pub weights: BTreeMap<String, f64>,
    pub revision_id: String,
}

impl AliasState {
    pub fn is_split(&self) -> bool {
        !self.weights.is_empty()
    }

    /// Where traffic goes, for messages: `6` or `6 + 10% to 7`.
    pub fn describe(&self) -> String {
        let mut s = format!("version {}", self.function_version);
        for (version, weight) in &self.weights {
            s.push_str(&format!(" + {}% to version {version}", weight * 100.0));
        }
        s
    }

    fn routes(&self, primary: &str, extra: Option<(&str, f64)>) -> bool {
        self.function_version == primary
            && match extra {
                None => self.weights.is_empty(),
                Some((version, weight)) => {
                    self.weights.len() == 1
                        && self
                            .weights
                            .get(version)
                            .is_some_and(|w| same_weight(*w, weight))
                }
            }
    }
}

/// Weights round-trip through JSON and Lambda as doubles; equal to well within any meaningful traffic share.
fn same_weight(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// What an alias update sets: the primary version and the additional weights (empty clears the routing).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AliasUpdate {
    pub function_version: String,
    pub weights: BTreeMap<String, f64>,
}

impl AliasUpdate {
    fn stable_only(stable: Version) -> Self {
        Self {
            function_version: stable.to_string(),
            weights: BTreeMap::new(),
        }
    }
}

/// A deployment being rolled out: what `shift-weight` returns and every later state passes on. The state
/// machine adds fields of its own beside these (gate results, a caught error); they are ignored on the way in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// The execution's name: ties logs, hook events and the reconciler to one deployment.
    pub deployment_id: String,
    pub deployment: Deployment,
    pub stable_version: Version,
    /// The alias revision after the engine's last write (or as prepared).
    pub revision_id: String,
    /// Index into the schedule of the step now applied; `None` before the first shift.
    pub step: Option<usize>,
    /// Traffic on the target now, in percent.
    pub percent: f64,
    /// How long to hold the current step: the state machine's Wait reads it.
    pub bake_seconds: u64,
    /// The alias points at the target with routing cleared.
    pub promoted: bool,
    /// Number of steps in the schedule, the promotion included, for progress displays.
    pub step_count: usize,
    /// The next step waits for a manual approval: the state machine's Verdict sends the rollout to its Approval
    /// state instead of the next shift.
    #[serde(default)]
    pub approval_required: bool,
    /// When the current step's weight was applied, in Unix seconds: the start of the step's metric window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<u64>,
    /// The gates' verdict on every step passed so far, oldest first: why the rollout moved on, in its output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passed_gates: Vec<GateRecord>,
}

/// One step's gate verdict, as the rollout keeps it (the full evidence is in that CheckGates task's output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateRecord {
    /// 1-based, as people count steps.
    pub step: usize,
    pub percent: f64,
    pub verdict: Verdict,
    pub summary: String,
}

impl Rollout {
    /// A prepared rollout: nothing shifted yet.
    pub fn prepared(
        deployment_id: String,
        deployment: Deployment,
        stable_version: Version,
        revision_id: String,
    ) -> Self {
        let step_count = deployment.schedule().steps().len();
        Self {
            deployment_id,
            deployment,
            stable_version,
            revision_id,
            step: None,
            percent: 0.0,
            bake_seconds: 0,
            promoted: false,
            step_count,
            approval_required: false,
            step_started_at: None,
            passed_gates: Vec::new(),
        }
    }

    /// Keeps the gates' verdict on the current step, once however often it is offered.
    pub fn record(&mut self, gates: &GateReport) {
        let Some(step) = self.step.filter(|s| gates.step == Some(*s)) else {
            return;
        };
        if self.passed_gates.last().is_some_and(|r| r.step == step + 1) {
            return;
        }
        self.passed_gates.push(GateRecord {
            step: step + 1,
            percent: self.percent,
            verdict: gates.verdict,
            summary: gates.summary(),
        });
    }

    /// The step the next shift applies; `None` once promoted.
    pub fn next_step(&self) -> Option<usize> {
        let next = self.step.map_or(0, |s| s + 1);
        (next < self.step_count).then_some(next)
    }

    /// The alias as this rollout leaves it after `step` (or before any step).
    fn expected_after(&self, step: Option<usize>) -> AliasUpdate {
        let target = self.deployment.target_version.to_string();
        match step.map(|i| self.deployment.schedule().steps()[i]) {
            None => AliasUpdate::stable_only(self.stable_version),
            Some(s) if s.is_promotion() => AliasUpdate {
                function_version: target,
                weights: BTreeMap::new(),
            },
            Some(s) => AliasUpdate {
                function_version: self.stable_version.to_string(),
                weights: BTreeMap::from([(target, s.weight())]),
            },
        }
    }

    /// This rollout advanced to `step` at `now` (Unix seconds), with the alias revision that write left.
    pub fn advanced(&self, step: usize, revision_id: String, now: u64) -> Self {
        let s = self.deployment.schedule().steps()[step];
        Self {
            step: Some(step),
            percent: s.percent,
            bake_seconds: s.bake_seconds,
            promoted: s.is_promotion(),
            revision_id,
            approval_required: self.deployment.approval_step() == Some(step + 1),
            step_started_at: Some(now),
            ..self.clone()
        }
    }
}

fn matches(alias: &AliasState, update: &AliasUpdate) -> bool {
    let extra = update.weights.iter().next().map(|(v, w)| (v.as_str(), *w));
    update.weights.len() <= 1 && alias.routes(&update.function_version, extra)
}

/// What `shift-weight` does for the next step.
#[derive(Debug, Clone, PartialEq)]
pub enum ShiftDecision {
    /// Write this, guarded by the revision just read.
    Write { step: usize, update: AliasUpdate },
    /// The alias already shows this step (a retried or redriven step whose write landed): no write.
    AlreadyApplied { step: usize },
}

/// Decides the next shift from the alias as just read. The alias must look exactly as this rollout left it —
/// or already as the next step leaves it; anything else means someone else changed it, and their change wins.
pub fn decide_shift(rollout: &Rollout, alias: &AliasState) -> Result<ShiftDecision, Error> {
    let Some(step) = rollout.next_step() else {
        return Ok(ShiftDecision::AlreadyApplied {
            step: rollout.step_count - 1,
        });
    };
    let next = rollout.expected_after(Some(step));
    if matches(alias, &next) {
        return Ok(ShiftDecision::AlreadyApplied { step });
    }
    let current = rollout.expected_after(rollout.step);
    let conflict = |reason: String| Error::AliasConflict {
        alias: rollout.deployment.alias.clone(),
        reason,
    };
    if !matches(alias, &current) {
        return Err(conflict(format!(
            "changed outside this deployment: expected {}, found {}; leaving it as it is",
            describe_update(&current),
            alias.describe()
        )));
    }
    if alias.revision_id != rollout.revision_id {
        return Err(conflict(format!(
            "updated outside this deployment (revision {} is not the {} this deployment left); leaving it as it is",
            alias.revision_id, rollout.revision_id
        )));
    }
    Ok(ShiftDecision::Write { step, update: next })
}

fn describe_update(u: &AliasUpdate) -> String {
    AliasState {
        function_version: u.function_version.clone(),
        weights: u.weights.clone(),
        revision_id: String::new(),
    }
    .describe()
}

/// Checks, before any write, that the alias can start this deployment; returns the stable version.
pub fn check_alias_before_start(
    deployment: &Deployment,
    alias: &AliasState,
) -> Result<Version, Error> {
    if alias.is_split() {
        return Err(Error::AliasConflict {
            alias: deployment.alias.clone(),
            reason: format!(
                "deployment in progress: the alias routes {}",
                alias.describe()
            ),
        });
    }
    let stable = Version::parse(&alias.function_version).map_err(|_| Error::IncompatibleVersions {
        stable: alias.function_version.clone(),
        target: deployment.target_version.to_string(),
        reason: "the alias points at $LATEST, and a weighted alias needs a published version on both sides; \
                 point it at a published version first"
            .into(),
    })?;
    if stable == deployment.target_version {
        return Err(crate::error::InvalidInput::one(
            "targetVersion",
            format!(
                "version {stable} is already the version alias `{}` points to; there is nothing to deploy",
                deployment.alias
            ),
        )
        .into());
    }
    Ok(stable)
}

/// A published version's configuration, as far as a weighted alias cares.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionConfig {
    pub version: String,
    /// Lambda's `State`: Pending, Active, Inactive, Failed.
    pub state: String,
    /// Lambda's `LastUpdateStatus`: InProgress, Successful, Failed.
    pub last_update_status: Option<String>,
    pub state_reason: Option<String>,
    pub role: Option<String>,
    pub dead_letter_target: Option<String>,
}

/// Whether the target version can take traffic now.
#[derive(Debug, Clone, PartialEq)]
pub enum Readiness {
    Ready,
    /// Still being created or updated: ask again after a short wait.
    NotYet(String),
}

/// Readiness of the target version; an error when it never will be.
pub fn readiness(target: &VersionConfig) -> Result<Readiness, Error> {
    let reason = || target.state_reason.clone().unwrap_or_default();
    let not_ready = |why: String| Error::TargetNotReady {
        version: target.version.clone(),
        reason: why,
    };
    match (target.state.as_str(), target.last_update_status.as_deref()) {
        ("Pending", _) | (_, Some("InProgress")) => {
            Ok(Readiness::NotYet(format!("state {}", target.state)))
        }
        (_, Some("Failed")) => Err(not_ready(format!("its last update failed: {}", reason()))),
        ("Active", _) => Ok(Readiness::Ready),
        (state, _) => Err(not_ready(
            format!("its state is {state} {}", reason())
                .trim_end()
                .to_owned(),
        )),
    }
}

/// Weighted aliases require both versions to share the execution role and dead-letter configuration.
pub fn check_compatible(stable: &VersionConfig, target: &VersionConfig) -> Result<(), Error> {
    let differ = |what: &str, a: &Option<String>, b: &Option<String>| Error::IncompatibleVersions {
        stable: stable.version.clone(),
        target: target.version.clone(),
        reason: format!(
            "their {what} differ ({} vs {}); a weighted alias requires them to match",
            a.as_deref().unwrap_or("none"),
            b.as_deref().unwrap_or("none")
        ),
    };
    if stable.role != target.role {
        return Err(differ("execution roles", &stable.role, &target.role));
    }
    if stable.dead_letter_target != target.dead_letter_target {
        return Err(differ(
            "dead-letter targets",
            &stable.dead_letter_target,
            &target.dead_letter_target,
        ));
    }
    Ok(())
}

/// What a rollback does.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum RollbackDecision {
    /// Already on the stable version with no weights: nothing to write.
    AlreadyStable,
    /// Put the alias back on the stable version, routing cleared.
    Revert { update: AliasUpdate },
    /// The alias is not in a state this deployment made: someone else owns it now. Never overwrite.
    LeaveAlone { reason: String },
}

/// Decides a rollback from the alias as just read: revert only what this deployment did (split toward its
/// target, or promoted to it).
pub fn decide_rollback(stable: Version, target: Version, alias: &AliasState) -> RollbackDecision {
    let (stable_text, target_text) = (stable.to_string(), target.to_string());
    let split_toward_target = alias.function_version == stable_text
        && alias.weights.len() == 1
        && alias.weights.contains_key(&target_text);
    let promoted = alias.function_version == target_text && !alias.is_split();
    if alias.function_version == stable_text && !alias.is_split() {
        RollbackDecision::AlreadyStable
    } else if split_toward_target || promoted {
        RollbackDecision::Revert {
            update: AliasUpdate::stable_only(stable),
        }
    } else {
        RollbackDecision::LeaveAlone {
            reason: format!(
                "the alias routes {}, which this deployment ({stable} -> {target}) did not set; leaving it as it is",
                alias.describe()
            ),
        }
    }
}

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

/// One alarm's state as CloudWatch reported it: the evidence behind an alarm verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmEvidence {
    pub name: String,
    /// `metric` or `composite`.
    pub kind: String,
    /// OK, ALARM or INSUFFICIENT_DATA.
    pub state: String,
    pub reason: String,
    /// When the state last changed, RFC 3339.
    pub updated_at: Option<String>,
}

/// The alarm gate's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmVerdict {
    pub gate: String,
    pub verdict: Verdict,
    /// The alarms in ALARM, by name.
    pub failing: Vec<String>,
    pub alarms: Vec<AlarmEvidence>,
}

/// Judges the alarms. Every listed alarm must be found: a missing one is an error, never "healthy". Only ALARM
/// fails a step (INSUFFICIENT_DATA passes, as in CodeDeploy, and stays visible in the evidence).
pub fn judge_alarms(listed: &[String], found: Vec<AlarmEvidence>) -> Result<AlarmVerdict, Error> {
    if let Some(missing) = listed
        .iter()
        .find(|name| !found.iter().any(|a| &a.name == *name))
    {
        return Err(Error::ResourceNotFound {
            resource: crate::error::Resource::Alarm,
            name: missing.clone(),
        });
    }
    let alarms: Vec<AlarmEvidence> = found
        .into_iter()
        .filter(|a| listed.contains(&a.name))
        .collect();
    let failing: Vec<String> = alarms
        .iter()
        .filter(|a| a.state == "ALARM")
        .map(|a| a.name.clone())
        .collect();
    Ok(AlarmVerdict {
        gate: "alarms".into(),
        verdict: if failing.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail
        },
        failing,
        alarms,
    })
}

/// Everything `CheckGates` decided for a step. The state machine's Verdict reads `verdict`, ExtendBake reads
/// `extendSeconds`, GateFailed records `error`; the rest is the evidence a user reads in the execution's output,
/// its history and the logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateReport {
    pub verdict: Verdict,
    /// Why the step failed, as the rollout's error name: `AlarmFired`, `AnalysisFailed` or `AnalysisInconclusive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorType>,
    /// The schedule step judged (0-based), as in the rollout.
    pub step: Option<usize>,
    /// How many times this step's bake has been extended for want of traffic.
    #[serde(default)]
    pub extensions: u32,
    /// With an `inconclusive` verdict: how long the next extension waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extend_seconds: Option<u64>,
    /// The alarms in ALARM, by name.
    pub failing: Vec<String>,
    pub alarms: Vec<AlarmEvidence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisEvidence>,
}

impl GateReport {
    /// One line for logs and the CLI: the verdict and the findings behind it.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.failing.is_empty() {
            parts.push(format!("in ALARM: {}", self.failing.join(", ")));
        }
        if let Some(a) = &self.analysis {
            parts.extend(a.findings.iter().cloned());
        }
        if self.extensions > 0 {
            parts.push(format!("after {} extension(s)", self.extensions));
        }
        if parts.is_empty() {
            self.verdict.to_string()
        } else {
            format!("{}: {}", self.verdict, parts.join("; "))
        }
    }
}

/// Combines the alarm verdict and the metric analysis into the step's verdict. An alarm fails the step whatever
/// the metrics say; an inconclusive analysis extends the bake while extensions remain (the previous report, when
/// it is for this same step, says how many were used), then takes the deployment's `onInconclusive` outcome.
pub fn decide_gates(
    rollout: &Rollout,
    alarms: AlarmVerdict,
    analysis: Option<AnalysisEvidence>,
    previous: Option<&GateReport>,
) -> GateReport {
    let extensions = previous
        .filter(|p| p.step == rollout.step && p.verdict == Verdict::Inconclusive)
        .map_or(0, |p| p.extensions + 1);
    let mut report = GateReport {
        verdict: Verdict::Pass,
        error: None,
        step: rollout.step,
        extensions,
        extend_seconds: None,
        failing: alarms.failing,
        alarms: alarms.alarms,
        analysis,
    };
    let config = rollout.deployment.analysis.as_ref();
    if !report.failing.is_empty() {
        report.verdict = Verdict::Fail;
        report.error = Some(ErrorType::AlarmFired);
        return report;
    }
    let (Some(config), Some(evidence)) = (config, report.analysis.as_mut()) else {
        return report;
    };
    match evidence.verdict {
        Verdict::Pass => {}
        Verdict::Fail => {
            report.verdict = Verdict::Fail;
            report.error = Some(ErrorType::AnalysisFailed);
        }
        Verdict::Inconclusive if extensions < config.max_extensions => {
            report.verdict = Verdict::Inconclusive;
            report.extend_seconds = Some(crate::analysis::extension_seconds(rollout.bake_seconds));
        }
        Verdict::Inconclusive => match config.on_inconclusive {
            OnInconclusive::Fail => {
                report.verdict = Verdict::Fail;
                report.error = Some(ErrorType::AnalysisInconclusive);
                evidence.findings.push(format!(
                    "still inconclusive after {extensions} extension(s); onInconclusive is fail"
                ));
            }
            OnInconclusive::Pass => evidence.findings.push(format!(
                "still inconclusive after {extensions} extension(s); onInconclusive is pass, so the rollout goes on"
            )),
        },
    }
    report
}

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    PreTraffic,
    PostTraffic,
    /// The manual approval gate: nothing is invoked; the state waits for `safeshift approve` / `reject`.
    Approval,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::PreTraffic => "preTraffic",
            Phase::PostTraffic => "postTraffic",
            Phase::Approval => "approval",
        })
    }
}

/// The event a hook function receives. The hook contract: return normally to pass; raise an error, or return
/// `{"status": "Failed", "message": "..."}`, to fail. With `taskToken`, report later with SendTaskSuccess or
/// SendTaskFailure instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookEvent {
    pub deployment_id: String,
    pub function_name: String,
    pub alias: String,
    pub stable_version: String,
    pub target_version: String,
    pub phase: Phase,
    /// Traffic on the target version when the hook runs, in percent.
    pub percent: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_token: Option<String>,
}

/// What a synchronous hook invocation returned.
#[derive(Debug, Clone, PartialEq)]
pub struct HookResponse {
    /// Lambda's `FunctionError` (`Unhandled`, `Handled`) when the hook raised.
    pub function_error: Option<String>,
    pub payload: Vec<u8>,
}

/// Judges a hook's response by the hook contract; the error carries the hook's own message.
pub fn judge_hook(phase: Phase, hook: &str, response: &HookResponse) -> Result<(), Error> {
    let body: Option<serde_json::Value> = serde_json::from_slice(&response.payload).ok();
    let text = |key: &str| {
        body.as_ref()
            .and_then(|b| b.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let failed = |message: String| Error::HookFailed {
        phase: phase.to_string(),
        hook: hook.to_owned(),
        message,
    };
    if let Some(kind) = &response.function_error {
        let message = text("errorMessage")
            .unwrap_or_else(|| String::from_utf8_lossy(&response.payload).into_owned());
        let error_type = text("errorType")
            .map(|t| format!("{t}: "))
            .unwrap_or_default();
        return Err(failed(format!("{error_type}{message} ({kind} error)")));
    }
    if text("status").is_some_and(|s| s.eq_ignore_ascii_case("failed")) {
        let message = text("message")
            .or_else(|| text("reason"))
            .unwrap_or_else(|| "the hook reported Failed".into());
        return Err(failed(message));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(strategy: &str) -> Deployment {
        Deployment::parse(&format!(
            r#"{{"functionName":"orders","alias":"live","targetVersion":"7","strategy":{strategy}}}"#
        ))
        .unwrap()
    }

    fn alias(version: &str, weights: &[(&str, f64)], revision: &str) -> AliasState {
        AliasState {
            function_version: version.into(),
            weights: weights.iter().map(|(v, w)| (v.to_string(), *w)).collect(),
            revision_id: revision.into(),
        }
    }

    fn prepared(strategy: &str) -> Rollout {
        Rollout::prepared(
            "d-1".into(),
            deployment(strategy),
            Version::new(6).unwrap(),
            "r0".into(),
        )
    }

    #[test]
    fn a_canary_walks_stable_then_split_then_promoted() {
        let r0 = prepared(r#""Canary10Percent5Minutes""#);
        let d = decide_shift(&r0, &alias("6", &[], "r0")).unwrap();
        let ShiftDecision::Write { step: 0, update } = d else {
            panic!("{d:?}")
        };
        assert_eq!(update.function_version, "6");
        assert_eq!(update.weights, BTreeMap::from([("7".to_string(), 0.1)]));

        let r1 = r0.advanced(0, "r1".into(), 0);
        assert_eq!(
            (r1.percent, r1.bake_seconds, r1.promoted),
            (10.0, 300, false)
        );
        let d = decide_shift(&r1, &alias("6", &[("7", 0.1)], "r1")).unwrap();
        let ShiftDecision::Write { step: 1, update } = d else {
            panic!("{d:?}")
        };
        assert_eq!(
            (update.function_version.as_str(), update.weights.len()),
            ("7", 0)
        );

        let r2 = r1.advanced(1, "r2".into(), 0);
        assert!(r2.promoted && r2.next_step().is_none());
        assert_eq!(
            decide_shift(&r2, &alias("7", &[], "r2")).unwrap(),
            ShiftDecision::AlreadyApplied { step: 1 }
        );
    }

    #[test]
    fn a_step_whose_write_already_landed_is_not_written_again() {
        let r0 = prepared(r#""Canary10Percent5Minutes""#);
        // The first shift's write landed but its result was lost: the retry sees the split, with a new revision.
        let d = decide_shift(&r0, &alias("6", &[("7", 0.1)], "r1")).unwrap();
        assert_eq!(d, ShiftDecision::AlreadyApplied { step: 0 });
    }

    #[test]
    fn someone_elses_change_is_a_conflict_and_never_overwritten() {
        let r1 = prepared(r#""Linear10PercentEvery1Minute""#).advanced(0, "r1".into(), 0);
        for (found, expect) in [
            (
                alias("8", &[], "r9"),
                "expected version 6 + 10% to version 7, found version 8",
            ),
            (
                alias("6", &[("7", 0.5)], "r9"),
                "found version 6 + 50% to version 7",
            ),
            (alias("6", &[], "r9"), "found version 6;"),
        ] {
            let err = decide_shift(&r1, &found).unwrap_err();
            assert_eq!(err.error_type(), crate::ErrorType::AliasConflict);
            assert!(err.to_string().contains(expect), "{err}");
        }
        // Same routing, but the revision moved: someone wrote the alias (and perhaps put it back) meanwhile.
        let err = decide_shift(&r1, &alias("6", &[("7", 0.1)], "r-other")).unwrap_err();
        assert!(err.to_string().contains("revision r-other"), "{err}");
    }

    #[test]
    fn a_split_alias_means_a_deployment_in_progress() {
        let d = deployment(r#""AllAtOnce""#);
        let err = check_alias_before_start(&d, &alias("5", &[("6", 0.2)], "r")).unwrap_err();
        assert_eq!(err.error_type(), crate::ErrorType::AliasConflict);
        assert!(err.to_string().contains("deployment in progress"), "{err}");
        let err = check_alias_before_start(&d, &alias("7", &[], "r")).unwrap_err();
        assert_eq!(err.error_type(), crate::ErrorType::InvalidInput);
        let err = check_alias_before_start(&d, &alias("$LATEST", &[], "r")).unwrap_err();
        assert_eq!(err.error_type(), crate::ErrorType::IncompatibleVersions);
        assert_eq!(
            check_alias_before_start(&d, &alias("6", &[], "r")).unwrap(),
            Version::new(6).unwrap()
        );
    }

    #[test]
    fn rollback_reverts_only_what_this_deployment_did() {
        let (s, t) = (Version::new(6).unwrap(), Version::new(7).unwrap());
        assert_eq!(
            decide_rollback(s, t, &alias("6", &[], "r")),
            RollbackDecision::AlreadyStable
        );
        for ours in [alias("6", &[("7", 0.3)], "r"), alias("7", &[], "r")] {
            let RollbackDecision::Revert { update } = decide_rollback(s, t, &ours) else {
                panic!()
            };
            assert_eq!(
                (update.function_version.as_str(), update.weights.len()),
                ("6", 0)
            );
        }
        for theirs in [
            alias("6", &[("8", 0.3)], "r"),
            alias("8", &[], "r"),
            alias("6", &[("7", 0.1), ("8", 0.1)], "r"),
        ] {
            assert!(
                matches!(
                    decide_rollback(s, t, &theirs),
                    RollbackDecision::LeaveAlone { .. }
                ),
                "{theirs:?}"
            );
        }
    }

    #[test]
    fn readiness_waits_on_pending_and_fails_on_failed() {
        let v = |state: &str, last: Option<&str>| VersionConfig {
            version: "7".into(),
            state: state.into(),
            last_update_status: last.map(Into::into),
            state_reason: Some("boom".into()),
            role: None,
            dead_letter_target: None,
        };
        assert_eq!(
            readiness(&v("Active", Some("Successful"))).unwrap(),
            Readiness::Ready
        );
        assert!(matches!(
            readiness(&v("Pending", None)).unwrap(),
            Readiness::NotYet(_)
        ));
        assert!(matches!(
            readiness(&v("Active", Some("InProgress"))).unwrap(),
            Readiness::NotYet(_)
        ));
        let err = readiness(&v("Active", Some("Failed"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "target version 7 is not ready: its last update failed: boom"
        );
        assert_eq!(
            readiness(&v("Failed", None)).unwrap_err().error_type(),
            crate::ErrorType::TargetNotReady
        );
    }

    #[test]
    fn versions_must_share_role_and_dead_letter_target() {
        let v = |role: &str, dlq: Option<&str>| VersionConfig {
            version: "x".into(),
            state: "Active".into(),
            last_update_status: None,
            state_reason: None,
            role: Some(role.into()),
            dead_letter_target: dlq.map(Into::into),
        };
        assert!(check_compatible(&v("r", None), &v("r", None)).is_ok());
        let err = check_compatible(&v("r1", None), &v("r2", None)).unwrap_err();
        assert!(
            err.to_string()
                .contains("execution roles differ (r1 vs r2)"),
            "{err}"
        );
        let err = check_compatible(&v("r", Some("q1")), &v("r", None)).unwrap_err();
        assert!(
            err.to_string()
                .contains("dead-letter targets differ (q1 vs none)"),
            "{err}"
        );
    }

    #[test]
    fn alarms_fail_closed_and_only_alarm_fails() {
        let ev = |name: &str, state: &str| AlarmEvidence {
            name: name.into(),
            kind: "metric".into(),
            state: state.into(),
            reason: format!("{name} is {state}"),
            updated_at: None,
        };
        let listed = vec!["a".to_string(), "b".to_string()];
        let err = judge_alarms(&listed, vec![ev("a", "OK")]).unwrap_err();
        assert_eq!(err.to_string(), "alarm `b` does not exist");
        let v = judge_alarms(&listed, vec![ev("a", "OK"), ev("b", "INSUFFICIENT_DATA")]).unwrap();
        assert_eq!(v.verdict, Verdict::Pass);
        let v = judge_alarms(&listed, vec![ev("a", "ALARM"), ev("b", "OK")]).unwrap();
        assert_eq!(
            (v.verdict, v.failing.as_slice()),
            (Verdict::Fail, ["a".to_string()].as_slice())
        );
        assert_eq!(judge_alarms(&[], vec![]).unwrap().verdict, Verdict::Pass);
    }

    fn analysed(analysis: &str) -> Rollout {
        let d = Deployment::parse(&format!(
            r#"{{"functionName":"orders","alias":"live","targetVersion":"7",
                "strategy":"Canary10Percent5Minutes","analysis":{analysis}}}"#
        ))
        .unwrap();
        Rollout::prepared("d-1".into(), d, Version::new(6).unwrap(), "r0".into()).advanced(
            0,
            "r1".into(),
            1_000,
        )
    }

    fn evidence(verdict: Verdict) -> AnalysisEvidence {
        use crate::analysis::{VersionMetrics, Window};
        AnalysisEvidence {
            verdict,
            window: Window::for_step(1_000, 1_300, 60),
            target: VersionMetrics::empty("7"),
            stable: VersionMetrics::empty("6"),
            target_error_rate: None,
            stable_error_rate: None,
            comparison: None,
            p99_increase: None,
            thresholds: crate::analysis::Thresholds {
                max_error_rate: Some(0.01),
                max_p99_latency_increase: None,
                min_invocations: 50,
                compare_to_stable: true,
                confidence: 0.95,
            },
            findings: vec![],
        }
    }

    fn no_alarms() -> AlarmVerdict {
        judge_alarms(&[], vec![]).unwrap()
    }

    #[test]
    fn an_inconclusive_step_is_extended_then_takes_the_configured_outcome() {
        let r = analysed(r#"{"maxErrorRate":0.01,"maxExtensions":2}"#);
        let mut previous = None;
        for expected in 0..2 {
            let g = decide_gates(
                &r,
                no_alarms(),
                Some(evidence(Verdict::Inconclusive)),
                previous.as_ref(),
            );
            assert_eq!((g.verdict, g.extensions), (Verdict::Inconclusive, expected));
            assert_eq!(g.extend_seconds, Some(300), "the step's own bake");
            previous = Some(g);
        }
        let g = decide_gates(
            &r,
            no_alarms(),
            Some(evidence(Verdict::Inconclusive)),
            previous.as_ref(),
        );
        assert_eq!(g.verdict, Verdict::Fail);
        assert_eq!(g.error, Some(ErrorType::AnalysisInconclusive));
        assert!(
            g.summary().contains("after 2 extension(s)"),
            "{}",
            g.summary()
        );

        let lenient =
            analysed(r#"{"maxErrorRate":0.01,"maxExtensions":0,"onInconclusive":"pass"}"#);
        let g = decide_gates(
            &lenient,
            no_alarms(),
            Some(evidence(Verdict::Inconclusive)),
            None,
        );
        assert_eq!((g.verdict, g.error), (Verdict::Pass, None));
    }

    #[test]
    fn extensions_count_only_for_the_same_step() {
        let r = analysed(r#"{"maxErrorRate":0.01,"maxExtensions":1}"#);
        let earlier = GateReport {
            step: None,
            ..decide_gates(&r, no_alarms(), Some(evidence(Verdict::Inconclusive)), None)
        };
        let g = decide_gates(
            &r,
            no_alarms(),
            Some(evidence(Verdict::Inconclusive)),
            Some(&earlier),
        );
        assert_eq!((g.verdict, g.extensions), (Verdict::Inconclusive, 0));
    }

    #[test]
    fn an_alarm_or_a_failed_analysis_fails_the_step_with_its_own_name() {
        let r = analysed(r#"{"maxErrorRate":0.01}"#);
        let alarm = AlarmEvidence {
            name: "errors".into(),
            kind: "metric".into(),
            state: "ALARM".into(),
            reason: "r".into(),
            updated_at: None,
        };
        let alarms = judge_alarms(&["errors".into()], vec![alarm]).unwrap();
        let g = decide_gates(&r, alarms, Some(evidence(Verdict::Pass)), None);
        assert_eq!(
            (g.verdict, g.error),
            (Verdict::Fail, Some(ErrorType::AlarmFired))
        );
        let g = decide_gates(&r, no_alarms(), Some(evidence(Verdict::Fail)), None);
        assert_eq!(
            (g.verdict, g.error),
            (Verdict::Fail, Some(ErrorType::AnalysisFailed))
        );
        let g = decide_gates(&r, no_alarms(), Some(evidence(Verdict::Pass)), None);
        assert_eq!((g.verdict, g.error), (Verdict::Pass, None));
        // The report crosses the state machine as JSON and comes back as the previous report.
        let json = serde_json::to_value(&g).unwrap();
        assert_eq!(json["verdict"], "pass");
        assert_eq!(serde_json::from_value::<GateReport>(json).unwrap(), g);
        // The deployment with its analysis survives the trip through the rollout state too.
        let back: Rollout = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn hooks_pass_unless_they_raise_or_say_failed() {
        let resp = |err: Option<&str>, body: &str| HookResponse {
            function_error: err.map(Into::into),
            payload: body.as_bytes().to_vec(),
        };
        assert!(
            judge_hook(
                Phase::PreTraffic,
                "smoke",
                &resp(None, r#"{"status":"Succeeded"}"#)
            )
            .is_ok()
        );
        assert!(judge_hook(Phase::PreTraffic, "smoke", &resp(None, "null")).is_ok());
        let err = judge_hook(
            Phase::PreTraffic,
            "smoke",
            &resp(None, r#"{"status":"Failed","message":"checkout 500"}"#),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "preTraffic hook `smoke` failed: checkout 500"
        );
        let err = judge_hook(
            Phase::PostTraffic,
            "e2e",
            &resp(
                Some("Unhandled"),
                r#"{"errorType":"AssertionError","errorMessage":"cart empty"}"#,
            ),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "postTraffic hook `e2e` failed: AssertionError: cart empty (Unhandled error)"
        );
    }

    #[test]
    fn the_step_before_an_approval_asks_for_it() {
        let d = Deployment::parse(
            r#"{"functionName":"orders","alias":"live","targetVersion":"7","strategy":"Linear10PercentEvery1Minute",
                "approval":{"beforeStep":3}}"#,
        )
        .unwrap();
        let r = Rollout::prepared("d".into(), d, Version::new(6).unwrap(), "r".into());
        let flags: Vec<bool> = (0..r.step_count)
            .map(|s| r.advanced(s, "r".into(), 0).approval_required)
            .collect();
        // Only once step 2 (index 1) is applied does the rollout wait, before step 3.
        assert_eq!(flags.iter().filter(|f| **f).count(), 1);
        assert!(flags[1]);
    }

    #[test]
    fn rollout_round_trips_and_ignores_fields_the_state_machine_adds() {
        let r = prepared(r#"{"linear":{"percent":25,"intervalSeconds":10}}"#).advanced(
            1,
            "r2".into(),
            0,
        );
        let mut v = serde_json::to_value(&r).unwrap();
        v["gates"] = serde_json::json!({"verdict": "pass"});
        let back: Rollout = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }
}
