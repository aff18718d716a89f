//! The step cursor: the state the state machine carries from one function to the next — which step of the
//! schedule the alias is at, how long it bakes, what the gates said of each step passed — and the shift's
//! decision. The aliases it moves (one per target of the deployment, a release's several) are [`AliasTarget`]s,
//! all at the cursor's step; the functions only read the world, call these, and write.

use serde::{Deserialize, Serialize};

use crate::alias::{AliasState, AliasTarget, AliasUpdate};
use crate::control::{Operation, Pause, Skip};
use crate::deployment::Deployment;
use crate::error::Error;
use crate::gates::alarms::IncidentAlarm;
use crate::gates::analysis::{self, OnInconclusive};
use crate::gates::bounds::{self, MAX_RECORD_SUMMARY_BYTES};
use crate::gates::{Extensions, GateReport, Verdict};
use crate::names::Version;

/// A deployment being rolled out: what `shift-weight` returns and every later state passes on. The state
/// machine adds fields of its own beside these (gate results, a caught error); they are ignored on the way in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "RolloutWire")]
pub struct Rollout {
    /// The execution's name: ties logs, hook events and the reconciler to one deployment.
    pub deployment_id: String,
    pub deployment: Deployment,
    /// The aliases this rollout moves, one per target in the deployment's order: each one's stable and target
    /// versions, and its revision.
    pub aliases: Vec<AliasTarget>,
    /// The only alias again, under the name engines before releases read (`alias`): while the engine's own stack
    /// updates, an older function may still read a newer one's state, and must still find what to roll back.
    /// Written for a single target, never read (the wire reads `aliases`); kept by [`Rollout::prepared`] and
    /// [`Rollout::advanced`], which are what change the aliases.
    #[doc(hidden)]
    #[serde(rename = "alias", skip_serializing_if = "Option::is_none")]
    pub legacy_alias: Option<AliasTarget>,
    /// Index into the schedule of the step now applied; `None` before the first shift.
    pub step: Option<usize>,
    /// Traffic on the target now, in percent.
    pub percent: f64,
    /// The current step's bake, as the schedule says (at least 1 s: a step held for no bake waits one).
    pub bake_seconds: u64,
    /// How long the step's first wait lasts, at least 1 s: the timeout of the state machine's Bake (a task's
    /// smallest). The whole bake, or with metric analysis the first look's (one interval of traffic, plus the
    /// metrics' delay); later looks wait `extendSeconds` of their report.
    #[serde(default)]
    pub wait_seconds: u64,
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
    /// Every operator control, oldest first: who, when, why, and what it did (at most
    /// [`crate::control::MAX_OPERATIONS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<Operation>,
    /// The pause in force, if any: the state machine's `Paused` waits `paused.timeoutSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<Pause>,
    /// Seconds spent paused so far, against the deployment's `maxPauseSeconds`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub paused_total_seconds: u64,
    /// The current step's bake was ended early by `promote`: the gates judge only the alarms, and with `full`
    /// the next shift is the promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip: Option<Skip>,
    /// Shipping an incident's fix (`incidentFix`): the alarms that were in ALARM when it started, which do not
    /// judge it until they leave that ALARM.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incident_alarms: Vec<IncidentAlarm>,
    /// Controls refused without a record (see [`crate::control::MAX_UNRECORDED`]).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub unrecorded_controls: u32,
    /// How long each hook point's state waits for its answer: the states' `TimeoutSecondsPath`. Always present.
    pub hook_timeouts: HookTimeouts,
}

/// Each hook point's wait, in seconds ([`crate::hooks::SYNC_HOOK_SECONDS`] for a sync hook or none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookTimeouts {
    pub pre_traffic: u64,
    pub before_step: u64,
    pub after_step: u64,
    pub post_traffic: u64,
    pub on_rollback: u64,
}

impl HookTimeouts {
    pub fn of(d: &Deployment) -> Self {
        let t = |h: Option<&crate::hooks::Hook>| {
            h.map_or(crate::hooks::SYNC_HOOK_SECONDS, |h| h.timeout_seconds)
        };
        let h = &d.hooks;
        Self {
            pre_traffic: t(h.pre_traffic.as_ref()),
            before_step: t(h.before_step.as_ref()),
            after_step: t(h.after_step.as_ref()),
            post_traffic: t(h.post_traffic.as_ref()),
            on_rollback: t(h.on_rollback.as_ref()),
        }
    }
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A rollout as it arrives: today's shape, or the shape engines before the alias target was pulled out of the
/// cursor wrote (`stableVersion` and `revisionId` beside the cursor). A rollout lasts up to three days, so
/// executions started before an upgrade carry the old shape into the new functions, which must still move and
/// roll back their alias.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RolloutWire {
    deployment_id: String,
    deployment: Deployment,
    #[serde(default)]
    aliases: Option<Vec<AliasTarget>>,
    #[serde(default)]
    alias: Option<AliasTarget>,
    #[serde(default)]
    stable_version: Option<Version>,
    #[serde(default)]
    revision_id: Option<String>,
    step: Option<usize>,
    percent: f64,
    bake_seconds: u64,
    #[serde(default)]
    wait_seconds: Option<u64>,
    promoted: bool,
    step_count: usize,
    #[serde(default)]
    approval_required: bool,
    #[serde(default)]
    step_started_at: Option<u64>,
    #[serde(default)]
    passed_gates: Vec<GateRecord>,
    #[serde(default)]
    operations: Vec<Operation>,
    #[serde(default)]
    paused: Option<Pause>,
    #[serde(default)]
    paused_total_seconds: u64,
    #[serde(default)]
    skip: Option<Skip>,
    #[serde(default)]
    incident_alarms: Vec<IncidentAlarm>,
    #[serde(default)]
    unrecorded_controls: u32,
    #[serde(default)]
    hook_timeouts: Option<HookTimeouts>,
}

impl TryFrom<RolloutWire> for Rollout {
    type Error = String;

    fn try_from(w: RolloutWire) -> Result<Self, String> {
        // A rollout written before hooks had their own waits: each hook point waits as a sync one did.
        let hook_timeouts = w
            .hook_timeouts
            .unwrap_or_else(|| HookTimeouts::of(&w.deployment));
        let d = &w.deployment;
        // Engines before releases carried one `alias`; before that, its stable version and revision beside the
        // cursor. Both moved a single target.
        let aliases = match (w.aliases, w.alias, w.stable_version, w.revision_id) {
            (Some(aliases), _, _, _) => aliases,
            (None, Some(alias), _, _) => vec![alias],
            (None, None, Some(stable_version), Some(revision_id)) => {
                let t = d.primary();
                vec![AliasTarget {
                    function_name: t.function_name.to_string(),
                    name: t.alias.clone(),
                    stable_version,
                    target_version: t.target_version,
                    revision_id,
                }]
            }
            _ => return Err("missing field `aliases`".into()),
        };
        // The aliases a rollout moves are its deployment's targets, one each, in order: a state naming another is
        // not this deployment's.
        if aliases.len() != d.targets.len() {
            return Err(format!(
                "the rollout moves {} aliases, but its deployment has {} targets",
                aliases.len(),
                d.targets.len()
            ));
        }
        for (alias, t) in aliases.iter().zip(&d.targets) {
            if alias.function_name != t.function_name.to_string()
                || alias.name != t.alias
                || alias.target_version != t.target_version
            {
                return Err(format!(
                    "the rollout's alias ({}:{} to version {}) is not its deployment's ({}:{} to version {})",
                    alias.function_name,
                    alias.name,
                    alias.target_version,
                    t.function_name,
                    t.alias,
                    t.target_version
                ));
            }
        }
        Ok(Self {
            deployment_id: w.deployment_id,
            deployment: w.deployment,
            legacy_alias: legacy_alias(&aliases),
            aliases,
            step: w.step,
            percent: w.percent,
            bake_seconds: w.bake_seconds,
            // A rollout written before the bake was watched waited its whole bake.
            wait_seconds: w.wait_seconds.unwrap_or(w.bake_seconds.max(1)),
            promoted: w.promoted,
            step_count: w.step_count,
            approval_required: w.approval_required,
            step_started_at: w.step_started_at,
            passed_gates: w.passed_gates,
            operations: w.operations,
            paused: w.paused,
            paused_total_seconds: w.paused_total_seconds,
            skip: w.skip,
            incident_alarms: w.incident_alarms,
            unrecorded_controls: w.unrecorded_controls,
            hook_timeouts,
        })
    }
}

/// What [`Rollout::legacy_alias`] says for `aliases`: the alias of a single target.
fn legacy_alias(aliases: &[AliasTarget]) -> Option<AliasTarget> {
    match aliases {
        [only] => Some(only.clone()),
        _ => None,
    }
}

/// One step's gate verdict, as the rollout keeps it (the full evidence is in that CheckGates task's output):
/// `summary` is at most [`MAX_RECORD_SUMMARY_BYTES`].
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
    /// A prepared rollout: nothing shifted yet. `found` is each target's stable version and alias revision, as
    /// Prepare read them, in the targets' order.
    pub fn prepared(
        deployment_id: String,
        deployment: Deployment,
        found: Vec<(Version, String)>,
    ) -> Self {
        assert_eq!(
            found.len(),
            deployment.targets.len(),
            "one stable version and revision per target"
        );
        let step_count = deployment.schedule().steps().len();
        let hook_timeouts = HookTimeouts::of(&deployment);
        let aliases = deployment
            .targets
            .iter()
            .zip(found)
            .map(|(t, (stable_version, revision_id))| AliasTarget {
                function_name: t.function_name.to_string(),
                name: t.alias.clone(),
                stable_version,
                target_version: t.target_version,
                revision_id,
            })
            .collect::<Vec<_>>();
        Self {
            deployment_id,
            deployment,
            legacy_alias: legacy_alias(&aliases),
            aliases,
            step: None,
            percent: 0.0,
            bake_seconds: 0,
            wait_seconds: 0,
            promoted: false,
            step_count,
            approval_required: false,
            step_started_at: None,
            passed_gates: Vec::new(),
            operations: Vec::new(),
            paused: None,
            paused_total_seconds: 0,
            skip: None,
            incident_alarms: Vec::new(),
            unrecorded_controls: 0,
            hook_timeouts,
        }
    }

    /// This prepared rollout, shipping an incident's fix under these alarms (see [`IncidentAlarm`]).
    pub fn with_incident_alarms(self, incident_alarms: Vec<IncidentAlarm>) -> Self {
        Self {
            incident_alarms,
            ..self
        }
    }

    /// Keeps the gates' verdict on the current step, once however often it is offered. The rollout carries every
    /// record to its end, so each summary is cut to [`MAX_RECORD_SUMMARY_BYTES`], ending `…[+N bytes]` when cut.
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
            summary: bounds::cut(&gates.summary(), MAX_RECORD_SUMMARY_BYTES),
        });
    }

    /// The step the next shift applies; `None` once promoted.
    pub fn next_step(&self) -> Option<usize> {
        if self.skip.is_some_and(|s| s.full && s.step == self.step) && !self.promoted {
            return Some(self.step_count - 1);
        }
        let next = self.step.map_or(0, |s| s + 1);
        (next < self.step_count).then_some(next)
    }

    /// `alias` as this rollout leaves it after `step` (or before any step).
    fn expected_after(&self, alias: &AliasTarget, step: Option<usize>) -> AliasUpdate {
        match step {
            None => alias.stable_only(),
            Some(i) => alias.at(&self.deployment.schedule().steps()[i]),
        }
    }

    /// This rollout advanced to `step` at `now` (Unix seconds), with the revision that step left on each alias,
    /// in the targets' order.
    pub fn advanced(&self, step: usize, revisions: Vec<String>, now: u64) -> Self {
        assert_eq!(
            revisions.len(),
            self.aliases.len(),
            "one revision per alias"
        );
        let s = self.deployment.schedule().steps()[step];
        let aliases: Vec<AliasTarget> = self
            .aliases
            .iter()
            .zip(revisions)
            .map(|(a, revision_id)| AliasTarget {
                revision_id,
                ..a.clone()
            })
            .collect();
        Self {
            legacy_alias: legacy_alias(&aliases),
            aliases,
            step: Some(step),
            percent: s.percent,
            // At least 1: executions started before the bake was watched run the definition they started with,
            // whose Bake times out after `bakeSeconds` — and a timeout of 0 is no valid timeout.
            bake_seconds: s.bake_seconds.max(1),
            wait_seconds: match &self.deployment.analysis {
                Some(a) if analysis::is_analysed(&s) => a.first_wait(&s),
                // The wait is a task's timeout, and Step Functions' smallest is one second: a step held for no
                // bake (the promotion, by default) is watched for one.
                _ => s.bake_seconds.max(1),
            },
            promoted: s.is_promotion(),
            approval_required: self.deployment.approval_step() == Some(step + 1),
            step_started_at: Some(now),
            skip: None,
            ..self.clone()
        }
    }

    /// An operator ended the current step's bake (`promote`): its metrics are not judged.
    pub fn bake_skipped(&self) -> bool {
        self.skip.is_some_and(|s| s.step == self.step)
    }

    /// The routing this rollout's last write set on `alias`: `None` before its first shift (it has written
    /// nothing).
    pub fn last_written(&self, alias: &AliasTarget) -> Option<AliasUpdate> {
        self.step.map(|_| self.expected_after(alias, self.step))
    }

    /// The routing the next shift writes on `alias`: a shift whose write landed but whose answer was lost (a
    /// timeout, a crash, or a write on another of the release's aliases that failed) leaves the alias here with a
    /// revision this rollout never read.
    pub fn next_write(&self, alias: &AliasTarget) -> Option<AliasUpdate> {
        self.next_step()
            .map(|s| self.expected_after(alias, Some(s)))
    }

    /// Whether the current step's metrics are judged (see [`analysis::is_analysed`]); before any shift, yes.
    pub fn is_analysed_now(&self) -> bool {
        let steps = self.deployment.schedule().steps();
        self.step
            .is_none_or(|s| steps.get(s).is_none_or(analysis::is_analysed))
    }

    /// The analysed step now applied, with its analysis settings: `None` without an analysis block, before the
    /// first shift, or on a step not analysed.
    fn analysed_step(&self) -> Option<(&analysis::Analysis, &crate::schedule::Step)> {
        let a = self.deployment.analysis.as_ref()?;
        let step = self.deployment.schedule().steps().get(self.step?)?;
        analysis::is_analysed(step).then_some((a, step))
    }

    /// How many seconds of the step's own traffic a look at `now` sees: its metrics lag `metricDelaySeconds`.
    /// A rollout without the step's start (written by an engine before it was stamped) is taken to have seen
    /// its whole bake: it is judged once, as it was then, and never looked at again and again.
    fn observed_seconds(&self, a: &analysis::Analysis, now: u64) -> u64 {
        match self.step_started_at {
            Some(started) => now
                .saturating_sub(a.metric_delay_seconds)
                .saturating_sub(started),
            None => u64::MAX,
        }
    }

    /// After a look at `now`: how long until the step is looked at again while it still bakes, `None` once the
    /// look saw the whole bake (or the step is not analysed).
    pub fn next_look(&self, now: u64) -> Option<u64> {
        if self.bake_skipped() {
            return None;
        }
        let (a, step) = self.analysed_step()?;
        a.next_look(step, self.observed_seconds(a, now))
    }

    /// The look at `now`, as the analysis judges it: the alpha its comparison may have spent in all by then
    /// (the spending function at the fraction of the bake seen), what earlier looks spent, and whether it sees
    /// the whole bake. `None` when the step is not analysed.
    pub fn look(&self, now: u64, spent_before: f64) -> Option<analysis::Look> {
        let (a, step) = self.analysed_step()?;
        let observed = self.observed_seconds(a, now);
        Some(analysis::Look {
            spendable: a.alpha_spent_by(step.bake_seconds, observed),
            spent_before,
            seen: if step.bake_seconds == 0 {
                1.0
            } else {
                (observed as f64 / step.bake_seconds as f64).min(1.0)
            },
        })
    }

    /// What an inconclusive step does: the deployment's analysis settings, extending by the step's own bake.
    /// Without an analysis block no gate is inconclusive; should one be, it fails at once.
    pub fn extensions(&self) -> Extensions {
        let seconds = analysis::extension_seconds(self.bake_seconds);
        match &self.deployment.analysis {
            Some(a) => Extensions {
                max: a.max_extensions,
                seconds,
                then: a.on_inconclusive,
            },
            None => Extensions {
                max: 0,
                seconds,
                then: OnInconclusive::Fail,
            },
        }
    }
}

/// What `shift-weight` does for the next step: the step, and for each alias (in the targets' order) the write
/// it needs, `None` where the alias already shows the step (a retried or redriven step whose write landed there).
#[derive(Debug, Clone, PartialEq)]
pub struct ShiftDecision {
    pub step: usize,
    /// Each write is guarded by the revision just read.
    pub writes: Vec<Option<AliasUpdate>>,
}

impl ShiftDecision {
    /// Whether no alias needs a write.
    pub fn already_applied(&self) -> bool {
        self.writes.iter().all(Option::is_none)
    }
}

/// Decides the next shift from every alias as just read, in the targets' order. Each alias must look exactly as
/// this rollout left it — or already as the next step leaves it; anything else means someone else changed it,
/// and their change wins: the whole step is refused before any alias is written, naming the alias.
pub fn decide_shift(rollout: &Rollout, read: &[AliasState]) -> Result<ShiftDecision, Error> {
    assert_eq!(
        read.len(),
        rollout.aliases.len(),
        "one alias read per target"
    );
    let Some(step) = rollout.next_step() else {
        return Ok(ShiftDecision {
            step: rollout.step_count - 1,
            writes: vec![None; read.len()],
        });
    };
    let mut writes = Vec::with_capacity(read.len());
    for (i, (target, alias)) in rollout.aliases.iter().zip(read).enumerate() {
        let next = rollout.expected_after(target, Some(step));
        if alias.shows(&next) {
            writes.push(None);
            continue;
        }
        let current = rollout.expected_after(target, rollout.step);
        let conflict = |reason: String| Error::AliasConflict {
            alias: rollout.deployment.alias_label(i),
            reason,
        };
        if !alias.shows(&current) {
            return Err(conflict(format!(
                "changed outside this deployment: expected {}, found {}; leaving it as it is",
                current.describe(),
                alias.describe()
            )));
        }
        if alias.revision_id != target.revision_id {
            return Err(conflict(format!(
                "updated outside this deployment (revision {} is not the {} this deployment left); leaving it as it is",
                alias.revision_id, target.revision_id
            )));
        }
        writes.push(Some(next));
    }
    Ok(ShiftDecision { step, writes })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ErrorType;
    use crate::gates::{GateResult, decide};

    fn deployment(strategy: &str) -> Deployment {
        Deployment::parse(&format!(
            r#"{{"functionName":"orders","alias":"live","targetVersion":"7","strategy":{strategy}}}"#
        ))
        .unwrap()
    }

    fn alias(version: &str, weights: &[(&str, f64)], revision: &str) -> AliasState {
        AliasState::new(version, weights, revision)
    }

    fn prepared(strategy: &str) -> Rollout {
        Rollout::prepared(
            "d-1".into(),
            deployment(strategy),
            vec![(Version::new(6).unwrap(), "r0".into())],
        )
    }

    #[test]
    fn a_canary_walks_stable_then_split_then_promoted() {
        let r0 = prepared(r#""Canary10Percent5Minutes""#);
        let d = decide_shift(&r0, &[alias("6", &[], "r0")]).unwrap();
        let ShiftDecision { step: 0, writes } = d else {
            panic!("{d:?}")
        };
        let update = writes[0].clone().unwrap();
        assert_eq!(update.function_version, "6");
        assert_eq!(update.weights, BTreeMap::from([("7".to_string(), 0.1)]));

        let r1 = r0.advanced(0, vec!["r1".into()], 0);
        assert_eq!(
            (r1.percent, r1.bake_seconds, r1.promoted),
            (10.0, 300, false)
        );
        let d = decide_shift(&r1, &[alias("6", &[("7", 0.1)], "r1")]).unwrap();
        let ShiftDecision { step: 1, writes } = d else {
            panic!("{d:?}")
        };
        let update = writes[0].clone().unwrap();
        assert_eq!(
            (update.function_version.as_str(), update.weights.len()),
            ("7", 0)
        );

        let r2 = r1.advanced(1, vec!["r2".into()], 0);
        assert!(r2.promoted && r2.next_step().is_none());
        assert_eq!(
            decide_shift(&r2, &[alias("7", &[], "r2")]).unwrap(),
            ShiftDecision {
                step: 1,
                writes: vec![None]
            }
        );
    }

    #[test]
    fn a_step_whose_write_already_landed_is_not_written_again() {
        let r0 = prepared(r#""Canary10Percent5Minutes""#);
        // The first shift's write landed but its result was lost: the retry sees the split, with a new revision.
        let d = decide_shift(&r0, &[alias("6", &[("7", 0.1)], "r1")]).unwrap();
        assert_eq!(
            d,
            ShiftDecision {
                step: 0,
                writes: vec![None]
            }
        );
    }

    #[test]
    fn someone_elses_change_is_a_conflict_and_never_overwritten() {
        let r1 = prepared(r#""Linear10PercentEvery1Minute""#).advanced(0, vec!["r1".into()], 0);
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
            let err = decide_shift(&r1, &[found]).unwrap_err();
            assert_eq!(err.error_type(), crate::ErrorType::AliasConflict);
            assert!(err.to_string().contains(expect), "{err}");
        }
        // Same routing, but the revision moved: someone wrote the alias (and perhaps put it back) meanwhile.
        let err = decide_shift(&r1, &[alias("6", &[("7", 0.1)], "r-other")]).unwrap_err();
        assert!(err.to_string().contains("revision r-other"), "{err}");
    }

    #[test]
    fn the_step_before_an_approval_asks_for_it() {
        let d = Deployment::parse(
            r#"{"functionName":"orders","alias":"live","targetVersion":"7","strategy":"Linear10PercentEvery1Minute",
                "approval":{"beforeStep":3}}"#,
        )
        .unwrap();
        let r = Rollout::prepared("d".into(), d, vec![(Version::new(6).unwrap(), "r".into())]);
        let flags: Vec<bool> = (0..r.step_count)
            .map(|s| r.advanced(s, vec!["r".into()], 0).approval_required)
            .collect();
        // Only once step 2 (index 1) is applied does the rollout wait, before step 3.
        assert_eq!(flags.iter().filter(|f| **f).count(), 1);
        assert!(flags[1]);
    }

    #[test]
    fn rollout_round_trips_and_ignores_fields_the_state_machine_adds() {
        let r = prepared(r#"{"linear":{"percent":25,"intervalSeconds":10}}"#).advanced(
            1,
            vec!["r2".into()],
            0,
        );
        let mut v = serde_json::to_value(&r).unwrap();
        v["gates"] = serde_json::json!({"verdict": "pass"});
        let back: Rollout = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    fn analysed(analysis: &str) -> Rollout {
        let d = Deployment::parse(&format!(
            r#"{{"functionName":"orders","alias":"live","targetVersion":"7",
                "strategy":"Canary10Percent5Minutes","analysis":{analysis}}}"#
        ))
        .unwrap();
        Rollout::prepared(
            "d-1".into(),
            d,
            vec![(Version::new(6).unwrap(), "r0".into())],
        )
        .advanced(0, vec!["r1".into()], 1_000)
    }

    fn analysis(verdict: Verdict) -> Vec<GateResult> {
        let error = (verdict == Verdict::Fail).then_some(ErrorType::AnalysisFailed);
        vec![GateResult {
            gate: "analysis".into(),
            verdict,
            error,
            findings: vec![],
            evidence: serde_json::Value::Null,
        }]
    }

    #[test]
    fn an_inconclusive_step_is_extended_by_its_bake_then_takes_the_configured_outcome() {
        let r = analysed(r#"{"maxErrorRate":0.01,"maxExtensions":2}"#);
        let mut previous = None;
        for expected in 0..2 {
            let g = decide(
                r.step,
                analysis(Verdict::Inconclusive),
                r.extensions(),
                previous.as_ref(),
                None,
            );
            assert_eq!((g.verdict, g.extensions), (Verdict::Inconclusive, expected));
            assert_eq!(g.extend_seconds, Some(300), "the step's own bake");
            previous = Some(g);
        }
        let g = decide(
            r.step,
            analysis(Verdict::Inconclusive),
            r.extensions(),
            previous.as_ref(),
            None,
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
        let g = decide(
            lenient.step,
            analysis(Verdict::Inconclusive),
            lenient.extensions(),
            None,
            None,
        );
        assert_eq!((g.verdict, g.error), (Verdict::Pass, None));
    }

    #[test]
    fn extensions_count_only_for_the_same_step() {
        let r = analysed(r#"{"maxErrorRate":0.01,"maxExtensions":1}"#);
        let earlier = GateReport {
            step: None,
            ..decide(
                r.step,
                analysis(Verdict::Inconclusive),
                r.extensions(),
                None,
                None,
            )
        };
        let g = decide(
            r.step,
            analysis(Verdict::Inconclusive),
            r.extensions(),
            Some(&earlier),
            None,
        );
        assert_eq!((g.verdict, g.extensions), (Verdict::Inconclusive, 0));
    }

    #[test]
    fn a_report_and_a_rollout_with_an_analysis_cross_the_state_machine_intact() {
        let r = analysed(r#"{"maxErrorRate":0.01}"#);
        let g = decide(r.step, analysis(Verdict::Pass), r.extensions(), None, None);
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
    fn a_rollout_in_the_shapes_older_engines_wrote_still_reads() {
        let r = prepared(r#""Canary10Percent5Minutes""#).advanced(0, vec!["r1".into()], 5);
        let mut old = serde_json::to_value(&r).unwrap();
        // A single target's rollout still writes `alias` for engines before releases, which read only that.
        assert_eq!(old["alias"], old["aliases"][0]);
        // Before releases: one `alias`.
        old.as_object_mut().unwrap().remove("aliases").unwrap();
        assert_eq!(serde_json::from_value::<Rollout>(old.clone()).unwrap(), r);
        // Before that: its stable version and revision beside the cursor.
        let alias = old.as_object_mut().unwrap().remove("alias").unwrap();
        old["stableVersion"] = alias["stableVersion"].clone();
        old["revisionId"] = alias["revisionId"].clone();
        assert_eq!(serde_json::from_value::<Rollout>(old.clone()).unwrap(), r);
        // None of these shapes: not a rollout.
        old.as_object_mut().unwrap().remove("revisionId");
        let err = serde_json::from_value::<Rollout>(old).unwrap_err();
        assert!(err.to_string().contains("missing field `aliases`"), "{err}");
    }

    #[test]
    fn a_rollout_whose_alias_is_not_its_deployments_does_not_read() {
        let r = prepared(r#""Canary10Percent5Minutes""#);
        for (field, value) in [
            ("functionName", "payments"),
            ("name", "beta"),
            ("targetVersion", "9"),
        ] {
            let mut forged = serde_json::to_value(&r).unwrap();
            forged["aliases"][0][field] = serde_json::json!(value);
            let err = serde_json::from_value::<Rollout>(forged).unwrap_err();
            assert!(
                err.to_string().contains("is not its deployment's"),
                "{field}: {err}"
            );
        }
    }

    #[test]
    fn a_step_is_looked_at_until_its_bake_is_seen_and_a_rollout_without_its_start_is_judged_once() {
        let mut d = deployment(r#""Canary10Percent5Minutes""#);
        d.analysis = Some(
            crate::gates::analysis::Analysis::validate(
                &crate::gates::analysis::AnalysisInput {
                    max_error_rate: Some(0.01),
                    ..Default::default()
                },
                &mut Vec::new(),
            )
            .unwrap(),
        );
        let r = Rollout::prepared(
            "d-1".into(),
            d,
            vec![(Version::new(6).unwrap(), "r0".into())],
        )
        .advanced(0, vec!["r1".into()], 1_000);
        // Shifted at 1,000; metrics 60 s late: at 1,120 the look saw 60 s of a 300-s bake.
        assert_eq!(r.wait_seconds, 120);
        assert_eq!(r.next_look(1_120), Some(60));
        assert_eq!(r.next_look(1_360), None, "the whole bake seen");
        assert!(!r.look(1_120, 0.0).unwrap().is_last());
        assert!(r.look(1_360, 0.0).unwrap().is_last());
        // Written by an engine before steps were stamped: judged once, never looked at again and again.
        let unstamped = Rollout {
            step_started_at: None,
            ..r
        };
        assert_eq!(unstamped.next_look(1_120), None);
        assert!(unstamped.look(1_120, 0.0).unwrap().is_last());
    }

    #[test]
    fn a_promotion_without_a_bake_is_not_analysed() {
        let r = analysed(r#"{"maxErrorRate":0.01}"#);
        assert!(r.is_analysed_now(), "the canary step is");
        let promoted = r.advanced(1, vec!["r2".into()], 2_000);
        assert!(promoted.promoted && !promoted.is_analysed_now());
    }

    #[test]
    fn a_longest_rollout_with_the_most_alarms_stays_small_after_every_record() {
        // The worst legal input: 100 alarms with 255-byte names, 100 traffic steps (101 with the promotion).
        let alarms: Vec<String> = (0..100)
            .map(|i| format!("{i:03}-{}", "n".repeat(251)))
            .collect();
        let steps: Vec<String> = (1..=100)
            .map(|p| format!(r#"{{"percent":{},"bakeSeconds":60}}"#, f64::from(p) * 0.99))
            .collect();
        let d = Deployment::parse(&format!(
            r#"{{"functionName":"orders","alias":"live","targetVersion":"7","strategy":{{"steps":[{}]}},
                "alarms":{},"analysis":{{"maxErrorRate":0.01,"maxP99LatencyIncrease":0.2}}}}"#,
            steps.join(","),
            serde_json::to_string(&alarms).unwrap()
        ))
        .unwrap();
        let mut r = Rollout::prepared(
            "d-1".into(),
            d,
            vec![(Version::new(6).unwrap(), "r0".into())],
        );
        assert_eq!(r.step_count, 101);
        // Each step passes with the longest findings both gates write.
        let findings = vec![
            "no alarm in ALARM (100 checked)".to_owned(),
            "error rate 0.50% (1/200) is within maxErrorRate 1.00%".to_owned(),
            format!(
                "error rate 0.50% vs stable 0.50% (9/1800): two-proportion z-test, one-sided p = 0.5000 — not significantly worse at 95% confidence; {}",
                "x".repeat(500)
            ),
        ];
        let mut full = 0;
        for step in 0..r.step_count {
            r = r.advanced(step, vec![format!("r{step}")], 1_000);
            let report = decide(
                r.step,
                vec![GateResult {
                    gate: "analysis".into(),
                    verdict: Verdict::Pass,
                    error: None,
                    findings: findings.clone(),
                    evidence: serde_json::Value::Null,
                }],
                r.extensions(),
                None,
                None,
            );
            full = report.summary().len();
            r.record(&report);
        }
        assert_eq!(r.passed_gates.len(), 101);
        for g in &r.passed_gates {
            assert!(g.summary.len() <= MAX_RECORD_SUMMARY_BYTES, "{}", g.summary);
            assert!(
                g.summary
                    .starts_with("pass: no alarm in ALARM (100 checked); error rate")
            );
        }
        // The cut says how much it left out.
        let summary = &r.passed_gates[0].summary;
        let kept = summary.split('…').next().unwrap().len();
        assert!(
            summary.ends_with(&format!("…[+{} bytes]", full - kept)),
            "{summary}"
        );
        let size = serde_json::to_string(&r).unwrap().len();
        assert!(size < 64 * 1024, "the rollout is {size} bytes");
    }

    #[test]
    fn the_most_controls_and_incident_alarms_a_rollout_can_keep_stay_within_the_state() {
        use crate::control::{
            Action, Identity, MAX_OPERATIONS, MAX_REASON_BYTES, Operation, Outcome,
        };
        let alarms: Vec<String> = (0..100)
            .map(|i| format!("{i:03}-{}", "n".repeat(251)))
            .collect();
        let d = Deployment::parse(&format!(
            r#"{{"functionName":"orders","alias":"live","targetVersion":"7","strategy":"Linear10PercentEvery1Minute",
                "alarms":{},"incidentFix":true,"analysis":{{"maxErrorRate":0.01}}}}"#,
            serde_json::to_string(&alarms).unwrap()
        ))
        .unwrap();
        let mut r = Rollout::prepared(
            "d-1".into(),
            d,
            vec![(Version::new(6).unwrap(), "r0".into())],
        )
        .with_incident_alarms(
            alarms
                .iter()
                .map(|name| IncidentAlarm {
                    name: name.clone(),
                    since: "2026-11-29T10:00:00.000Z".into(),
                })
                .collect(),
        );
        // Every record a deployment may keep (the cap, and past it one way out of each recorded pause and the
        // gate), each as long as Steer lets it be.
        let longest = Operation {
            action: Action::Promote,
            full: true,
            by: Some(Identity {
                arn: "a".repeat(256),
                account: Some("1".repeat(256)),
                user_id: Some("u".repeat(256)),
            }),
            reason: Some("r".repeat(MAX_REASON_BYTES)),
            at: 1_795_000_000,
            step: Some(10),
            percent: 100.0,
            outcome: Outcome::Applied,
            note: "going to 100% now: the alarms are checked, then the promotion and the postTraffic hook".into(),
            id: Some("i".repeat(64)),
        };
        r.operations = vec![longest; 2 * MAX_OPERATIONS + 1];
        let size = serde_json::to_string(&r).unwrap().len();
        // With the gates' report (under 32 KB) and three hook outputs (8 KB each) beside it, the state stays under
        // Step Functions' 256 KB.
        assert!(size < 160 * 1024, "the rollout is {size} bytes");
    }

    #[test]
    fn the_passed_gates_keep_one_record_per_step() {
        let mut r = analysed(r#"{"maxErrorRate":0.01}"#);
        let g = decide(r.step, analysis(Verdict::Pass), r.extensions(), None, None);
        r.record(&g);
        r.record(&g);
        assert_eq!(r.passed_gates.len(), 1);
        assert_eq!(
            (r.passed_gates[0].step, r.passed_gates[0].percent),
            (1, 10.0)
        );
        let stale = GateReport { step: None, ..g };
        r.record(&stale);
        assert_eq!(
            r.passed_gates.len(),
            1,
            "a report for another step is not this step's record"
        );
    }

    /// `orders-api:live` 6 -> 7, `orders-worker:live` 30 -> 31 and `orders-feed:live` 2 -> 3 over 10%, 20%, …
    pub(crate) fn release() -> Rollout {
        let d = Deployment::from_value(serde_json::json!({
            "release": "orders-2026-11-29",
            "targets": [
                {"functionName": "orders-api", "alias": "live", "targetVersion": "7"},
                {"functionName": "orders-worker", "alias": "live", "targetVersion": "31"},
                {"functionName": "orders-feed", "alias": "live", "targetVersion": "3"}
            ],
            "strategy": "Linear10PercentEvery1Minute"
        }))
        .unwrap();
        let v = |n| Version::new(n).unwrap();
        Rollout::prepared(
            "d-1".into(),
            d,
            vec![
                (v(6), "a0".into()),
                (v(30), "w0".into()),
                (v(2), "f0".into()),
            ],
        )
    }

    #[test]
    fn a_release_moves_every_alias_to_the_same_weight_in_one_step() {
        let r = release();
        let read = [
            alias("6", &[], "a0"),
            alias("30", &[], "w0"),
            alias("2", &[], "f0"),
        ];
        let d = decide_shift(&r, &read).unwrap();
        assert_eq!(d.step, 0);
        let writes: Vec<AliasUpdate> = d.writes.into_iter().map(Option::unwrap).collect();
        assert_eq!(
            writes.iter().map(AliasUpdate::describe).collect::<Vec<_>>(),
            [
                "version 6 + 10% to version 7",
                "version 30 + 10% to version 31",
                "version 2 + 10% to version 3"
            ]
        );
        let r1 = r.advanced(0, vec!["a1".into(), "w1".into(), "f1".into()], 0);
        assert_eq!(
            r1.aliases
                .iter()
                .map(|a| a.revision_id.as_str())
                .collect::<Vec<_>>(),
            ["a1", "w1", "f1"]
        );
    }

    #[test]
    fn a_release_step_that_landed_on_some_aliases_writes_only_the_others() {
        // The first alias's write landed (new revision, never read), then the second's failed: the retry writes
        // the second and third only.
        let r = release();
        let read = [
            alias("6", &[("7", 0.1)], "a1"),
            alias("30", &[], "w0"),
            alias("2", &[], "f0"),
        ];
        let d = decide_shift(&r, &read).unwrap();
        assert!(d.writes[0].is_none());
        assert!(d.writes[1].is_some() && d.writes[2].is_some());
        assert!(!d.already_applied());
    }

    #[test]
    fn a_conflict_on_one_alias_refuses_the_whole_step_naming_it() {
        let r = release().advanced(0, vec!["a1".into(), "w1".into(), "f1".into()], 0);
        // Someone moved the worker's alias meanwhile; the others are as the release left them.
        let read = [
            alias("6", &[("7", 0.1)], "a1"),
            alias("29", &[], "w9"),
            alias("2", &[("3", 0.1)], "f1"),
        ];
        let err = decide_shift(&r, &read).unwrap_err();
        assert_eq!(err.error_type(), crate::ErrorType::AliasConflict);
        assert!(
            err.to_string().contains("orders-worker:live")
                && err.to_string().contains("found version 29"),
            "{err}"
        );
    }

    #[test]
    fn a_rollout_naming_the_wrong_number_of_aliases_does_not_read() {
        let r = release();
        // A release writes no single `alias`: an engine before releases cannot read it, and must not.
        assert!(serde_json::to_value(&r).unwrap().get("alias").is_none());
        let mut forged = serde_json::to_value(&r).unwrap();
        forged["aliases"].as_array_mut().unwrap().pop();
        let err = serde_json::from_value::<Rollout>(forged).unwrap_err();
        assert!(
            err.to_string()
                .contains("the rollout moves 2 aliases, but its deployment has 3 targets"),
            "{err}"
        );
        // Nor the same aliases in another order: each alias is its target's.
        let mut swapped = serde_json::to_value(&r).unwrap();
        swapped["aliases"].as_array_mut().unwrap().swap(0, 1);
        assert!(serde_json::from_value::<Rollout>(swapped).is_err());
    }
}
