//! The deployment input — the JSON users paste into the Step Functions console, pass from CodePipeline, or give
//! the CLI — and its validation into a [`Deployment`]. Validation collects every problem, each naming its field,
//! before anything else happens.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::error::{FieldError, InvalidInput};
use crate::gates::analysis::{Analysis, AnalysisInput};
use crate::hooks::{Hook, HookInput, Phase};
use crate::names::{FunctionRef, Qualifier, Version, VersionText, check_alias_name};
use crate::schedule::{MAX_TOTAL_SECONDS, Schedule};
use crate::strategy::{Strategy, StrategyInput};

/// DescribeAlarms takes at most 100 names per call; more alarms than that on one deployment is a mistake.
pub const MAX_ALARMS: usize = 100;
/// CloudWatch's limit on an alarm name.
const MAX_ALARM_NAME: usize = 255;

/// The input as written. Required fields are `Option` so that a missing one gets our named error rather than
/// serde's; unknown fields are rejected so that a typo (`"alarm"`) cannot silently drop a safety check.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_version: Option<VersionText>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<StrategyInput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarms: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hooks: Option<HooksInput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bake_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisInput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_pause_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident_fix: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emergency: Option<Emergency>,
    /// A release's name: several targets move together under one verdict (with `targets`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// A release's targets, instead of `functionName`/`alias`/`targetVersion`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<TargetInput>>,
}

/// One target of a release, as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_version: Option<VersionText>,
}

/// How many targets one release may move. Each step writes every alias within `shift-weight`'s timeout (reads
/// and writes [`SHIFT_CONCURRENCY`] at a time), and the rollout carries every alias's revision in the state
/// machine's state: ten keeps both well inside their limits, and a release of more functions than that is
/// better split.
pub const MAX_TARGETS: usize = 10;

/// How many aliases the engine reads or writes at once: Lambda's alias API is throttled per account, and a
/// release's steps must not spend the rate other deployments need.
pub const SHIFT_CONCURRENCY: usize = 5;

/// The longest release name: it leads the execution's name, which Step Functions caps at 80 characters.
const MAX_RELEASE_NAME: usize = 60;

/// One alias a deployment moves: which function, which alias, to which version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub function_name: FunctionRef,
    pub alias: String,
    pub target_version: Version,
}

impl Target {
    /// What the per-alias lock is keyed by ([`lock_key`]).
    pub fn lock_key(&self) -> String {
        lock_key(&self.function_name, &self.alias)
    }

    /// `function:alias`, as messages name a target.
    pub fn label(&self) -> String {
        format!("{}:{}", self.function_name.name, self.alias)
    }
}

/// How a deployment's targets are written back: one target without a release name in the single form
/// (`functionName`, `alias`, `targetVersion`, as every deployment before releases), otherwise `release` and
/// `targets`.
#[derive(Serialize)]
#[serde(untagged)]
enum TargetsWire<'a> {
    #[serde(rename_all = "camelCase")]
    One {
        function_name: &'a FunctionRef,
        alias: &'a str,
        target_version: Version,
    },
    Release {
        #[serde(skip_serializing_if = "Option::is_none")]
        release: Option<&'a str>,
        targets: &'a [Target],
    },
}

fn serialize_targets<S: serde::Serializer>(d: &&Deployment, s: S) -> Result<S::Ok, S::Error> {
    match (d.release.as_deref(), d.targets.as_slice()) {
        (None, [t]) => TargetsWire::One {
            function_name: &t.function_name,
            alias: &t.alias,
            target_version: t.target_version,
        },
        (release, targets) => TargetsWire::Release { release, targets },
    }
    .serialize(s)
}

/// How long a deployment may stay paused in all, unless the input says otherwise: a day.
pub const DEFAULT_MAX_PAUSE_SECONDS: u64 = 86_400;

/// A deliberate emergency deployment: all at once, no bake, no metric analysis, no approval gate, and alarms
/// already in ALARM do not block it (as `incidentFix`). Only with a reason, which the output keeps.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Emergency {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A manual approval gate: the rollout waits for `safeshift approve` (or rolls back on `reject`) before a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Approval {
    /// Before the promotion to 100%.
    BeforePromotion,
    /// Before the given step of the schedule (1-based, at least 2: there is always a step to look at first).
    BeforeStep(i64),
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HooksInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_traffic: Option<HookInput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before_step: Option<HookInput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_step: Option<HookInput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_traffic: Option<HookInput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_rollback: Option<HookInput>,
}

/// The team's test functions, at each hook point: before any traffic moves, before each step's shift (from the
/// second on), after each traffic step's bake, after promotion, and after a rollback.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hooks {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_traffic: Option<Hook>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before_step: Option<Hook>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_step: Option<Hook>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_traffic: Option<Hook>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_rollback: Option<Hook>,
}

impl Hooks {
    /// Every hook point with its field name, configured or not.
    pub fn points(&self) -> [(&'static str, Option<&Hook>); 5] {
        [
            ("hooks.preTraffic", self.pre_traffic.as_ref()),
            ("hooks.beforeStep", self.before_step.as_ref()),
            ("hooks.afterStep", self.after_step.as_ref()),
            ("hooks.postTraffic", self.post_traffic.as_ref()),
            ("hooks.onRollback", self.on_rollback.as_ref()),
        ]
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    pub fn count(&self) -> usize {
        self.points().iter().filter(|(_, h)| h.is_some()).count()
    }

    /// The hook at `phase`'s point, if configured (the approval gate has none).
    pub fn at(&self, phase: Phase) -> Option<&Hook> {
        match phase {
            Phase::PreTraffic => self.pre_traffic.as_ref(),
            Phase::BeforeStep => self.before_step.as_ref(),
            Phase::AfterStep => self.after_step.as_ref(),
            Phase::PostTraffic => self.post_traffic.as_ref(),
            Phase::OnRollback => self.on_rollback.as_ref(),
            Phase::Approval => None,
        }
    }
}

/// What the per-alias lock is keyed by: the function's bare name and the alias, the same however the function was
/// spelled (name, partial or full ARN), so two deployments of one alias — or a stack's update and a deployment —
/// always meet.
pub fn lock_key(function: &FunctionRef, alias: &str) -> String {
    format!("{}:{alias}", function.name)
}

/// A validated deployment. Only [`Deployment::parse`] and friends make one, so holding one means every check
/// passed; it serializes back to an input that parses to the same deployment.
///
/// A deployment moves one or more targets (a release) under one schedule and one verdict; the single form is a
/// release of one, with no name.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "DeploymentInput")]
pub struct Deployment {
    /// The release's name, when the input gave one.
    pub release: Option<String>,
    /// Every alias the deployment moves, in the input's order: at least one, at most [`MAX_TARGETS`].
    pub targets: Vec<Target>,
    pub strategy: Strategy,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alarms: Vec<String>,
    #[serde(skip_serializing_if = "Hooks::is_empty")]
    pub hooks: Hooks,
    pub bake_seconds: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// Metric analysis of the target version's own metrics, next to the stable version's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Analysis>,
    /// How long the rollout may stay paused, all pauses together; past it, a pause rolls back.
    #[serde(skip_serializing_if = "is_default_pause")]
    pub max_pause_seconds: u64,
    /// Shipping the fix for an incident: alarms already in ALARM when the deployment starts neither block it nor
    /// fail it until they leave ALARM; the fix's own metrics (an `analysis` block, required) judge it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub incident_fix: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emergency: Option<Emergency>,
    #[serde(skip)]
    schedule: Schedule,
}

/// The deployment as it serializes: its targets in their form, then its other fields.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeploymentWire<'a> {
    #[serde(flatten, serialize_with = "serialize_targets")]
    targets: &'a Deployment,
    strategy: &'a Strategy,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    alarms: &'a [String],
    #[serde(skip_serializing_if = "Hooks::is_empty")]
    hooks: &'a Hooks,
    bake_seconds: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    approval: Option<Approval>,
    #[serde(skip_serializing_if = "Option::is_none")]
    analysis: Option<&'a Analysis>,
    #[serde(skip_serializing_if = "is_default_pause")]
    max_pause_seconds: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    incident_fix: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    emergency: Option<&'a Emergency>,
}

impl Serialize for Deployment {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        DeploymentWire {
            targets: self,
            strategy: &self.strategy,
            alarms: &self.alarms,
            hooks: &self.hooks,
            bake_seconds: self.bake_seconds,
            approval: self.approval,
            analysis: self.analysis.as_ref(),
            max_pause_seconds: self.max_pause_seconds,
            incident_fix: self.incident_fix,
            emergency: self.emergency.as_ref(),
        }
        .serialize(s)
    }
}

impl Deployment {
    /// Parses and validates the input's JSON text.
    pub fn parse(json: &str) -> Result<Self, InvalidInput> {
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| InvalidInput::one("input", format!("is not valid JSON: {e}")))?;
        Self::from_value(value)
    }

    /// Parses and validates an input already decoded as JSON (a Lambda event, a state's output).
    pub fn from_value(value: serde_json::Value) -> Result<Self, InvalidInput> {
        // serde lets a struct be read from an array too; a deployment input is only ever an object.
        if !value.is_object() {
            return Err(InvalidInput::one(
                "input",
                format!(
                    "must be a JSON object like {{\"functionName\": …}}, not {}",
                    json_kind(&value)
                ),
            ));
        }
        let input: DeploymentInput = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            InvalidInput::one(
                if path == "." {
                    "input".to_owned()
                } else {
                    path
                },
                e.inner().to_string(),
            )
        })?;
        Self::validate(&input)
    }

    /// Checks every field, collecting every problem.
    pub fn validate(input: &DeploymentInput) -> Result<Self, InvalidInput> {
        let mut problems = Vec::new();
        let p = &mut problems;
        let release = check_release(p, input.release.as_deref());
        let targets = check_targets(p, input);
        let bake_seconds = field(
            p,
            "bakeSeconds",
            match input.bake_seconds {
                None => Ok(0),
                Some(s) => {
                    u64::try_from(s).map_err(|_| format!("must be 0 or more seconds (got {s})"))
                }
            },
        );
        let h = input.hooks.clone().unwrap_or_default();
        let hooks = Hooks {
            pre_traffic: hook(&mut problems, "hooks.preTraffic", h.pre_traffic.as_ref()),
            before_step: hook(&mut problems, "hooks.beforeStep", h.before_step.as_ref()),
            after_step: hook(&mut problems, "hooks.afterStep", h.after_step.as_ref()),
            post_traffic: hook(&mut problems, "hooks.postTraffic", h.post_traffic.as_ref()),
            on_rollback: hook(&mut problems, "hooks.onRollback", h.on_rollback.as_ref()),
        };
        let alarms = input.alarms.clone().unwrap_or_default();
        check_alarms(&mut problems, &alarms);
        let emergency = check_emergency(&mut problems, input.emergency.as_ref());
        // An emergency deployment goes all at once, unjudged by metrics and ungated: whatever else the input
        // says about the schedule gives way (the output and `plan` say so).
        let emergency_input;
        let input = if emergency.is_some() {
            emergency_input = DeploymentInput {
                strategy: Some(StrategyInput::Named("AllAtOnce".into())),
                bake_seconds: None,
                approval: None,
                analysis: None,
                ..input.clone()
            };
            &emergency_input
        } else {
            input
        };
        let analysis = input
            .analysis
            .as_ref()
            .and_then(|a| Analysis::validate(a, &mut problems));
        let max_pause_seconds = field(
            &mut problems,
            "maxPauseSeconds",
            match input.max_pause_seconds {
                None => Ok(DEFAULT_MAX_PAUSE_SECONDS),
                Some(s) if (0..=DEFAULT_MAX_PAUSE_SECONDS as i64).contains(&s) => Ok(s as u64),
                Some(s) => Err(format!(
                    "must be from 0 (no pausing) to {DEFAULT_MAX_PAUSE_SECONDS} seconds (got {s})"
                )),
            },
        );
        let incident_fix = input.incident_fix.unwrap_or(false);
        if incident_fix && emergency.is_none() && input.analysis.is_none() {
            problems.push(FieldError::new(
                "incidentFix",
                "needs an analysis block: with the incident's alarms not judging the fix until they leave ALARM, the fix's own metrics are what stop a bad one",
            ));
        }

        let strategy = match &input.strategy {
            None => {
                problems.push(FieldError::new(
                    "strategy",
                    "is required: a predefined name like \"Canary10Percent5Minutes\" or a custom form",
                ));
                None
            }
            Some(s) => Strategy::from_input(s, "strategy")
                .map_err(|p| problems.extend(p))
                .ok(),
        };

        let schedule = match (&strategy, bake_seconds) {
            (Some((_, traffic)), Some(bake)) => {
                let schedule = Schedule::new(traffic.clone(), bake);
                check_duration(&mut problems, &schedule, analysis.as_ref());
                check_history(&mut problems, &schedule, analysis.as_ref(), &hooks);
                check_approval(&mut problems, input.approval, &schedule);
                Some(schedule)
            }
            _ => None,
        };

        match (targets, strategy, bake_seconds, schedule) {
            (Some(targets), Some((strategy, _)), Some(bake_seconds), Some(schedule))
                if problems.is_empty() =>
            {
                Ok(Self {
                    release,
                    targets,
                    strategy,
                    alarms,
                    hooks,
                    bake_seconds,
                    approval: input.approval,
                    analysis,
                    max_pause_seconds: max_pause_seconds.unwrap_or(DEFAULT_MAX_PAUSE_SECONDS),
                    incident_fix: incident_fix || emergency.is_some(),
                    emergency,
                    schedule,
                })
            }
            _ => Err(InvalidInput { problems }),
        }
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The first target: the one whose lock carries the deployment's hold (its alarms, the wait it is in, an
    /// alarm that fired), and whose name reads first in messages.
    pub fn primary(&self) -> &Target {
        &self.targets[0]
    }

    /// The key of the lock that carries the deployment's hold: the first target's ([`lock_key`]). Every other
    /// target's alias is locked as well ([`Deployment::lock_keys`]).
    pub fn lock_key(&self) -> String {
        self.primary().lock_key()
    }

    /// Whether this is a release (several targets, or one under a release name) rather than a single
    /// deployment: a release names each target in its errors, fields and evidence, as its targets may share an
    /// alias name or a version number.
    pub fn is_release(&self) -> bool {
        self.targets.len() > 1 || self.release.is_some()
    }

    /// How errors name target `i`'s alias: by its name alone for a single deployment (as always), with its
    /// function for a release.
    pub fn alias_label(&self, i: usize) -> String {
        let t = &self.targets[i];
        if self.is_release() {
            t.label()
        } else {
            t.alias.clone()
        }
    }

    /// Every target's lock key, in the targets' order.
    pub fn lock_keys(&self) -> Vec<String> {
        self.targets.iter().map(Target::lock_key).collect()
    }

    /// The release's name, or the single target's `function:alias`: how people name this deployment.
    pub fn label(&self) -> String {
        match (&self.release, self.targets.as_slice()) {
            (Some(r), _) => r.clone(),
            (None, [t]) => t.label(),
            (None, targets) => format!("{} and {} more", targets[0].label(), targets.len() - 1),
        }
    }

    /// The 0-based index of the step that waits for approval, if any.
    pub fn approval_step(&self) -> Option<usize> {
        match self.approval? {
            Approval::BeforePromotion => Some(self.schedule.steps().len() - 1),
            Approval::BeforeStep(n) => usize::try_from(n).ok().map(|n| n - 1),
        }
    }

    /// The Step Functions execution name for this deployment: the same function, alias and target version
    /// always give the same name, so a retried start is the same execution, and a different input for the same
    /// rollout is refused by Step Functions instead of running twice. `attempt` > 1 names a deliberate re-run
    /// after a finished attempt (execution names stay taken for 90 days).
    ///
    /// `{function}-{alias}-{target}-{digest}[-attempt-{n}]`, e.g. `orders-api-live-7-6793970e`. The readable part
    /// alone is ambiguous (`a-b` + alias `c` and `a` + alias `b-c` both read `a-b-c`), so the digest (the first 4
    /// bytes of a SHA-256, in hex) covers the `functionName` as written (an ARN's account and region included) and
    /// the alias. Past Step Functions' 80 characters only the readable function and alias are cut: the target, the
    /// digest and the attempt always stay.
    ///
    /// A release is `{release}-{digest}[-attempt-{n}]`, the digest covering every target's function, alias and
    /// target version in order: the same release of the same versions is the same execution.
    pub fn execution_name(&self, attempt: u32) -> String {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        let single = match (&self.release, self.targets.as_slice()) {
            (None, [t]) => Some(t),
            _ => None,
        };
        for t in &self.targets {
            hash.update(t.function_name.as_str());
            // A byte neither a function reference nor an alias can contain, so the boundary between them is
            // hashed too.
            hash.update([0]);
            hash.update(&t.alias);
            if single.is_none() {
                hash.update([0]);
                hash.update(t.target_version.to_string());
                hash.update([0]);
            }
        }
        let digest: String = hash.finalize()[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let (readable, mut tail) = match single {
            Some(t) => (
                format!("{}-{}", t.function_name.name, t.alias),
                format!("-{}-{digest}", t.target_version),
            ),
            None => (
                self.release
                    .clone()
                    .unwrap_or_else(|| format!("release-{}", self.targets.len())),
                format!("-{digest}"),
            ),
        };
        if attempt > 1 {
            tail.push_str(&format!("-attempt-{attempt}"));
        }
        // Names and aliases are ASCII, so any byte index is a character boundary.
        let keep = readable.len().min(MAX_EXECUTION_NAME - tail.len());
        format!("{}{tail}", &readable[..keep])
    }
}

/// An emergency needs its reason: it skips every gradual safety the deployment would otherwise have.
fn check_emergency(
    problems: &mut Vec<FieldError>,
    emergency: Option<&Emergency>,
) -> Option<Emergency> {
    let e = emergency?;
    match e.reason.as_deref().map(str::trim) {
        None | Some("") => {
            problems.push(FieldError::new(
                "emergency.reason",
                "is required: an emergency deployment goes to 100% at once without bakes or metric analysis, and the record says why",
            ));
            None
        }
        Some(r) if r.len() > crate::control::MAX_REASON_BYTES => {
            problems.push(FieldError::new(
                "emergency.reason",
                format!(
                    "must be at most {} bytes (got {})",
                    crate::control::MAX_REASON_BYTES,
                    r.len()
                ),
            ));
            None
        }
        Some(_) => Some(e.clone()),
    }
}

/// A release's name leads its execution's name: the characters Step Functions allows there, and short enough to
/// leave room for the digest.
fn check_release(problems: &mut Vec<FieldError>, release: Option<&str>) -> Option<String> {
    let r = release?;
    let why = if r.is_empty() || r.len() > MAX_RELEASE_NAME {
        format!(
            "must be 1 to {MAX_RELEASE_NAME} characters (got {})",
            r.len()
        )
    } else if let Some(c) = r
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '.'))
    {
        format!(
            "may hold only letters, digits, `-`, `_` and `.` (it names the execution), not {c:?}"
        )
    } else {
        return Some(r.to_owned());
    };
    problems.push(FieldError::new("release", why));
    None
}

/// The targets, from either form: `targets` (a release), or `functionName`, `alias` and `targetVersion` (a
/// release of one). Each problem names its field, a release's by the target's index.
fn check_targets(problems: &mut Vec<FieldError>, input: &DeploymentInput) -> Option<Vec<Target>> {
    let single = TargetInput {
        function_name: input.function_name.clone(),
        alias: input.alias.clone(),
        target_version: input.target_version.clone(),
    };
    let (inputs, indexed) = match &input.targets {
        // A named release with neither form: what is missing is its list of targets.
        None if input.release.is_some() && single == TargetInput::default() => {
            problems.push(FieldError::new(
                "targets",
                "is required with `release`: list each target as {\"functionName\", \"alias\", \"targetVersion\"}",
            ));
            return None;
        }
        None => (vec![&single], false),
        Some(_) if single != TargetInput::default() => {
            let given: Vec<&str> = [
                ("functionName", input.function_name.is_some()),
                ("alias", input.alias.is_some()),
                ("targetVersion", input.target_version.is_some()),
            ]
            .into_iter()
            .filter_map(|(name, given)| given.then_some(name))
            .collect();
            problems.push(FieldError::new(
                given[0],
                format!(
                    "cannot be given with `targets`: a release names each target's functionName, alias and \
                     targetVersion inside `targets` (found {} at the top level)",
                    given.join(", ")
                ),
            ));
            return None;
        }
        Some(targets) if targets.is_empty() => {
            problems.push(FieldError::new("targets", "must list at least one target"));
            return None;
        }
        Some(targets) if targets.len() > MAX_TARGETS => {
            problems.push(FieldError::new(
                "targets",
                format!(
                    "lists {} targets; a release moves at most {MAX_TARGETS} (split it into several releases)",
                    targets.len()
                ),
            ));
            return None;
        }
        Some(targets) => (targets.iter().collect(), true),
    };
    let before = problems.len();
    let mut targets: Vec<Target> = Vec::new();
    for (i, t) in inputs.into_iter().enumerate() {
        let name = |field: &str| {
            if indexed {
                format!("targets[{i}].{field}")
            } else {
                field.to_owned()
            }
        };
        let function_name = field(
            problems,
            &name("functionName"),
            required(&t.function_name).and_then(|f| FunctionRef::parse(f, Qualifier::Forbidden)),
        );
        let alias = field(
            problems,
            &name("alias"),
            required(&t.alias).and_then(|a| check_alias_name(a).map(|()| a.clone())),
        );
        let target_version = field(
            problems,
            &name("targetVersion"),
            required(&t.target_version).and_then(|v| Version::parse(&v.to_text())),
        );
        if let (Some(function_name), Some(alias), Some(target_version)) =
            (function_name, alias, target_version)
        {
            let target = Target {
                function_name,
                alias,
                target_version,
            };
            if let Some(j) = targets
                .iter()
                .position(|t| t.lock_key() == target.lock_key())
            {
                problems.push(FieldError::new(
                    format!("targets[{i}]"),
                    format!(
                        "`{}` is listed twice (also targets[{j}]): a release moves each alias once",
                        target.label()
                    ),
                ));
            }
            targets.push(target);
        }
    }
    (problems.len() == before).then_some(targets)
}

fn is_default_pause(seconds: &u64) -> bool {
    *seconds == DEFAULT_MAX_PAUSE_SECONDS
}

/// Step Functions' limit on an execution name.
const MAX_EXECUTION_NAME: usize = 80;

impl TryFrom<DeploymentInput> for Deployment {
    type Error = InvalidInput;
    fn try_from(input: DeploymentInput) -> Result<Self, InvalidInput> {
        Self::validate(&input)
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The value, or `None` with the reason recorded against `name`.
fn field<T>(problems: &mut Vec<FieldError>, name: &str, result: Result<T, String>) -> Option<T> {
    result
        .map_err(|reason| problems.push(FieldError::new(name, reason)))
        .ok()
}

fn required<T>(value: &Option<T>) -> Result<&T, String> {
    value.as_ref().ok_or_else(|| "is required".to_owned())
}

fn hook(problems: &mut Vec<FieldError>, field: &str, input: Option<&HookInput>) -> Option<Hook> {
    Hook::validate(input?, field)
        .map_err(|p| problems.extend(p))
        .ok()
}

fn check_alarms(problems: &mut Vec<FieldError>, alarms: &[String]) {
    if alarms.len() > MAX_ALARMS {
        problems.push(FieldError::new(
            "alarms",
            format!(
                "lists {} alarms; at most {MAX_ALARMS} are allowed",
                alarms.len()
            ),
        ));
    }
    let mut seen = HashSet::new();
    for (i, name) in alarms.iter().enumerate() {
        let field = format!("alarms[{i}]");
        if name.trim().is_empty() {
            problems.push(FieldError::new(field, "must not be empty"));
        } else if name.len() > MAX_ALARM_NAME {
            problems.push(FieldError::new(
                field,
                format!(
                    "is {} characters long; CloudWatch allows at most {MAX_ALARM_NAME}",
                    name.len()
                ),
            ));
        } else if !seen.insert(name.as_str()) {
            problems.push(FieldError::new(field, format!("`{name}` is listed twice")));
        }
    }
}

fn check_approval(problems: &mut Vec<FieldError>, approval: Option<Approval>, schedule: &Schedule) {
    let steps = schedule.steps().len();
    match approval {
        Some(Approval::BeforePromotion) if steps < 2 => problems.push(FieldError::new(
            "approval",
            "needs a traffic step to look at before the promotion; this strategy promotes at once",
        )),
        Some(Approval::BeforeStep(n)) if n < 2 || n as usize > steps => problems.push(FieldError::new(
            "approval.beforeStep",
            format!("must be a step from 2 to {steps} of this schedule (got {n}): approval follows a step you can observe"),
        )),
        _ => {}
    }
}

/// Unreachable while `MAX_TRAFFIC_STEPS` holds (a test checks the worst case), but the limit is the state
/// machine's, so check it against the definition itself should either ever change.
///
/// Looking at baking steps often (`analysis.intervalSeconds`) can cross it: then the interval is named.
fn check_history(
    problems: &mut Vec<FieldError>,
    schedule: &Schedule,
    analysis: Option<&Analysis>,
    hooks: &Hooks,
) {
    let steps = schedule.steps().len();
    let extensions = analysis.map_or(0, |a| a.max_extensions);
    let looks = crate::gates::analysis::interim_looks(schedule, analysis);
    let definition = crate::asl::Definition::rollout();
    let step_hooks = (hooks.before_step.is_some(), hooks.after_step.is_some());
    match definition.worst_case_history(steps, extensions, looks, step_hooks) {
        Ok(events) if events > crate::asl::HISTORY_EVENT_LIMIT => {
            let without_looks = definition.worst_case_history(steps, extensions, 0, step_hooks);
            let without_hooks =
                definition.worst_case_history(steps, extensions, looks, (false, false));
            let (field, why) = if step_hooks != (false, false)
                && without_hooks.is_ok_and(|e| e <= crate::asl::HISTORY_EVENT_LIMIT)
            {
                (
                    "hooks",
                    format!(
                        "a beforeStep/afterStep hook on each of {steps} steps could write {events} history events, over Step Functions' limit of {}: fewer steps, or no per-step hook",
                        crate::asl::HISTORY_EVENT_LIMIT
                    ),
                )
            } else if looks > 0 && without_looks.is_ok_and(|e| e <= crate::asl::HISTORY_EVENT_LIMIT)
            {
                (
                    "analysis.intervalSeconds",
                    format!(
                        "{looks} looks at baking steps could write {events} history events, over Step Functions' limit of {}: look less often",
                        crate::asl::HISTORY_EVENT_LIMIT
                    ),
                )
            } else {
                (
                    if extensions > 0 {
                        "analysis.maxExtensions"
                    } else {
                        "strategy"
                    },
                    format!(
                        "{steps} steps could write {events} history events, over Step Functions' limit of {}",
                        crate::asl::HISTORY_EVENT_LIMIT
                    ),
                )
            };
            problems.push(FieldError::new(field, why));
        }
        Ok(_) => {}
        Err(e) => problems.push(FieldError::new(
            "strategy",
            format!("cannot check the history limit: {e}"),
        )),
    }
}

/// The limit holds for the longest rollout: every step extended as often as the analysis allows.
fn check_duration(
    problems: &mut Vec<FieldError>,
    schedule: &Schedule,
    analysis: Option<&Analysis>,
) {
    let extensions = analysis.map_or(0, |a| a.max_extensions);
    let total = crate::gates::analysis::total_seconds(schedule, analysis);
    let longest = crate::gates::analysis::longest_seconds(schedule, analysis, extensions);
    if total <= MAX_TOTAL_SECONDS && longest > MAX_TOTAL_SECONDS {
        problems.push(FieldError::new(
            "analysis.maxExtensions",
            format!(
                "with {extensions} extension(s) of every step the rollout could take {longest} s ({:.1} h); the limit is {MAX_TOTAL_SECONDS} s (48 h)",
                longest as f64 / 3600.0
            ),
        ));
    }
    if total > MAX_TOTAL_SECONDS {
        let traffic: u64 = schedule
            .traffic_steps()
            .iter()
            .map(|s| s.bake_seconds)
            .fold(0, u64::saturating_add);
        let field = if traffic > MAX_TOTAL_SECONDS {
            "strategy"
        } else if schedule.total_seconds() <= MAX_TOTAL_SECONDS {
            // The bakes fit; the analysed steps' waits for their metrics do not.
            "analysis.metricDelaySeconds"
        } else {
            "bakeSeconds"
        };
        problems.push(FieldError::new(
            field,
            format!(
                "the rollout would take {total} s ({:.1} h); the limit is {MAX_TOTAL_SECONDS} s (48 h)",
                total as f64 / 3600.0
            ),
        ));
    }
}
