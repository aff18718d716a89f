//! `shift-weight`: prepares a deployment against the real alias and versions, then moves the alias one step at a
//! time.
//!
//! Every event names the execution it acts for (`executionArn`, from `$$.Execution.Id`); the function first
//! reads it back and refuses (`ExecutionMismatch`, nothing read or written) unless it is a running execution of
//! this engine's state machine whose name and input are the rollout's (`crate::guard`).
//!
//! Input, one of:
//! - `{"prepare": {"deploymentId": "<execution name>", "executionArn": …, "input": <deployment input>}}` —
//!   validates the input, then checks before any write, for every target of a release: the function and alias
//!   exist; the alias is not split
//!   (`AliasConflict`, "deployment in progress"); every listed alarm exists (`ResourceNotFound`) and none is
//!   already in ALARM (`AlarmFiringAtStart`); every hook is within the hook prefix (`InvalidInput`, by field) and
//!   exists (`ResourceNotFound`); the target version exists, differs from the stable one and is
//!   Active with a successful last update (waiting a bounded time while it is Pending); stable and target share
//!   role and dead-letter config. Last, it takes every target alias's lock (one deployment per alias, across
//!   releases and single deployments): a running holder of any is `AliasConflict` naming it, and the locks taken
//!   so far are released. Returns the [`Rollout`] with each alias's stable version and revision.
//! - `{"shift": {"state": <Rollout>, "executionArn": …}}` — applies the next step of the schedule to every
//!   alias (the last one promotes: each alias points at its target with routing cleared) and returns the advanced
//!   [`Rollout`]: one task for all of a release's aliases, read and written
//!   [`safeshift_core::deployment::SHIFT_CONCURRENCY`] at a time. Every write carries the revision just read; an
//!   alias that does not look exactly as this rollout left it is `AliasConflict`, and then no alias is written. A step whose write already landed is not written again, so
//!   retries and redrives are safe. A listed alarm that went to ALARM since Prepare (recorded on the alias's
//!   lock by `watch-gates`) fails the shift with `AlarmFired` before anything is read.
//! - `{"release": {"state": <Rollout>, "executionArn": …}}` — the deployment succeeded: releases its locks.
//!
//! Errors: `InvalidInput`, `ExecutionMismatch`, `ResourceNotFound`, `AliasConflict`, `TargetNotReady`,
//! `IncompatibleVersions`, `AlarmFired`, `AlarmFiringAtStart`, `Throttled`, `AwsError`.

use std::time::Duration;

use safeshift_core::alias::AliasState;
use safeshift_core::deployment::Target;
use safeshift_core::error::Resource;
use safeshift_core::events::LifecycleEvent;
use safeshift_core::gates::{GateReport, alarms};
use safeshift_core::names::Version;
use safeshift_core::prepare::{self, Readiness, VersionConfig};
use safeshift_core::rollout::{self, Rollout, ShiftDecision};
use safeshift_core::{Deployment, Error};
use serde::Deserialize;
use serde_json::Value;
use tracing::{Span, info, info_span};

use crate::guard::{self, HolderState, Scope};
use crate::ports::{
    AliasLock, Events, ExecutionRecord, LockHolder, ReadAlarms, ReadAlias, ReadExecution,
    ReadVersion, WriteAlias,
};
use crate::runtime::Handler;

/// How far the engine's clock and CloudWatch's may disagree: an alarm change stamped this much before Prepare read
/// the alarms is still taken as this deployment's (failing closed, never missing one).
const CLOCK_SKEW_SECONDS: u64 = 2;

/// How long prepare waits for a Pending target version, and how often it looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyWait {
    pub timeout: Duration,
    pub interval: Duration,
}

impl Default for ReadyWait {
    /// A version still Pending after a minute is stuck, not slow. The wait and prepare's other calls (GetAlias,
    /// the last poll, the stable version: three [`crate::aws::OPERATION_TIMEOUT`]s) stay under shift-weight's
    /// `Timeout` (template.yaml), so prepare ends before its function does; tests/template_check.py checks it.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            interval: Duration::from_secs(2),
        }
    }
}

/// What `shift-weight` is asked to do.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum ShiftWeightEvent {
    Prepare(PrepareEvent),
    Shift(Box<ShiftEvent>),
    Release(Box<ReleaseEvent>),
}

/// The execution's name and ARN and the user's input, as it came: it is validated here, so every problem is
/// reported by field.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrepareEvent {
    pub deployment_id: String,
    /// `$$.Execution.Id`: absent only when someone invokes the function directly, which is refused.
    #[serde(default)]
    pub execution_arn: Option<String>,
    pub input: Value,
}

/// The next shift: the state as the state machine holds it, and the execution it belongs to.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShiftEvent {
    pub state: StepState,
    #[serde(default)]
    pub execution_arn: Option<String>,
}

/// The rollout, and the gates' report on the step just passed (absent before the first step), which the rollout
/// keeps as its record.
#[derive(Debug, Deserialize)]
pub struct StepState {
    #[serde(flatten)]
    pub rollout: Rollout,
    #[serde(default)]
    pub gates: Option<GateReport>,
}

/// The deployment succeeded: release its alias.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleaseEvent {
    pub state: Rollout,
    #[serde(default)]
    pub execution_arn: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ShiftWeight<A, E, L, W> {
    aliases: A,
    executions: E,
    locks: L,
    /// The deployment's alarms, read once before any traffic moves.
    alarms: W,
    scope: Scope,
    wait: ReadyWait,
    events: Events,
}

impl<A, E, L, W> Handler for ShiftWeight<A, E, L, W>
where
    A: ReadAlias + WriteAlias + ReadVersion + 'static,
    E: ReadExecution + 'static,
    L: AliasLock + 'static,
    W: ReadAlarms + 'static,
{
    type Event = ShiftWeightEvent;
    type Output = Rollout;
    const EXPECTED: &'static str =
        "{\"prepare\": …}, {\"shift\": {\"state\": <rollout>, …}} or {\"release\": …}";

    fn span(event: &ShiftWeightEvent) -> Span {
        match event {
            ShiftWeightEvent::Prepare(p) => {
                let field = |name: &str| match p.input.get(name) {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                info_span!(
                    "prepare",
                    deployment_id = %p.deployment_id,
                    release = %field("release"),
                    function = %field("functionName"),
                    alias = %field("alias"),
                    target = %field("targetVersion"),
                )
            }
            ShiftWeightEvent::Shift(s) => {
                let r = &s.state.rollout;
                crate::rollout_span!("shift", r, step = r.next_step().map(|s| s + 1))
            }
            ShiftWeightEvent::Release(r) => crate::rollout_span!("release", r.state),
        }
    }

    async fn handle(&self, event: ShiftWeightEvent) -> Result<Rollout, Error> {
        match event {
            ShiftWeightEvent::Prepare(p) => {
                let deployment = Deployment::from_value(p.input)?;
                let arn = p.execution_arn.clone();
                let rollout = self
                    .prepare(p.deployment_id, p.execution_arn, deployment)
                    .await?;
                self.events
                    .publish(LifecycleEvent::started(&rollout, arn.as_deref()))
                    .await;
                Ok(rollout)
            }
            ShiftWeightEvent::Shift(event) => {
                let ShiftEvent {
                    state: StepState { mut rollout, gates },
                    execution_arn,
                } = *event;
                let (_, hold) = self.own(&rollout, execution_arn.as_deref()).await?;
                // No more traffic after a listed alarm fired, even one that is OK again by now.
                guard::no_alarm_fired(hold.as_ref())?;
                if rollout.step.is_none() {
                    self.no_alarm_in_alarm(&rollout).await?;
                }
                if let Some(gates) = gates {
                    rollout.record(&gates);
                }
                let shifted = self.shift(rollout).await?;
                self.events
                    .publish(LifecycleEvent::shifted(&shifted, execution_arn.as_deref()))
                    .await;
                Ok(shifted)
            }
            ShiftWeightEvent::Release(event) => {
                let ReleaseEvent {
                    state,
                    execution_arn,
                } = *event;
                let (record, _) = self.own(&state, execution_arn.as_deref()).await?;
                let arn = execution_arn.unwrap_or_default();
                // Promoted and its post-traffic hook passed: the deployment has succeeded whatever becomes of the
                // release (a failed one is caught into Deployed), so this is said first.
                self.events
                    .publish(LifecycleEvent::succeeded(&state, Some(&arn)))
                    .await;
                // Should one fail, the deployment has still succeeded (Deployed records the error), and the next
                // Prepare takes over a lock whose holder succeeded.
                guard::release_all(&self.locks, state.deployment.lock_keys(), &arn).await?;
                info!(execution = %arn, status = %record.status, "released the alias");
                Ok(state)
            }
        }
    }
}

impl<A, E, L, W> ShiftWeight<A, E, L, W>
where
    A: ReadAlias + WriteAlias + ReadVersion,
    E: ReadExecution,
    L: AliasLock,
    W: ReadAlarms,
{
    pub fn new(
        aliases: A,
        executions: E,
        locks: L,
        alarms: W,
        scope: Scope,
        wait: ReadyWait,
    ) -> Self {
        Self {
            aliases,
            executions,
            locks,
            alarms,
            scope,
            wait,
            events: Events::default(),
        }
    }

    /// Publishes the deployment's start, each shift and its success (best effort).
    pub fn with_events(self, events: Events) -> Self {
        Self { events, ..self }
    }

    /// The rollout must be its running execution's own, and that execution must still hold the alias with the
    /// stable version its Prepare found.
    async fn own(
        &self,
        rollout: &Rollout,
        execution_arn: Option<&str>,
    ) -> Result<(ExecutionRecord, Option<LockHolder>), Error> {
        guard::own_rollout(
            &self.executions,
            &self.locks,
            &self.scope,
            rollout,
            execution_arn,
            false,
        )
        .await
    }

    async fn prepare(
        &self,
        deployment_id: String,
        execution_arn: Option<String>,
        deployment: Deployment,
    ) -> Result<Rollout, Error> {
        guard::own_execution(
            &self.executions,
            &self.scope,
            execution_arn.as_deref(),
            &deployment_id,
            &deployment,
        )
        .await?;
        // Every target's alias first: one missing, or in another deployment, refuses the whole release.
        let read = crate::each(0..deployment.targets.len(), |i| {
            self.read_before_start(&deployment, i)
        })
        .await;
        let found: Vec<(Version, AliasState)> = read.into_iter().collect::<Result<_, _>>()?;
        // An alarm that changes from here on is this deployment's to act on (a little earlier, for clocks).
        let alarms_checked_at = crate::unix_now().saturating_sub(CLOCK_SKEW_SECONDS);
        let incident_alarms = if deployment.alarms.is_empty() {
            Vec::new()
        } else {
            let found = self.alarms.describe_alarms(&deployment.alarms).await?;
            alarms::check_before_start(&deployment.alarms, found, deployment.incident_fix)?
        };
        self.check_hooks(&deployment).await?;
        // One deadline for every target's readiness: a release's targets are checked a few at a time, and their
        // waits together must stay within the one minute Prepare allows for it (see `ReadyWait`).
        let deadline = tokio::time::Instant::now() + self.wait.timeout;
        let named = deployment.is_release();
        let versions = crate::each(deployment.targets.iter().zip(&found), |(t, (stable, _))| {
            self.check_versions(t, *stable, deadline, named)
        })
        .await;
        versions.into_iter().collect::<Result<Vec<()>, _>>()?;
        // Last, once every check passed: a Prepare that fails leaves no lock behind.
        let stables: Vec<Version> = found.iter().map(|(stable, _)| *stable).collect();
        self.lock(
            &deployment,
            &deployment_id,
            execution_arn.unwrap_or_default(),
            &stables,
            alarms_checked_at,
        )
        .await?;
        for (t, (stable, alias)) in deployment.targets.iter().zip(&found) {
            info!(target = %t.label(), stable = %stable, revision = %alias.revision_id, "prepared");
        }
        info!(
            targets = found.len(),
            incident_alarms = incident_alarms.len(),
            "prepared"
        );
        let found = found
            .into_iter()
            .map(|(stable, alias)| (stable, alias.revision_id))
            .collect();
        Ok(Rollout::prepared(deployment_id, deployment, found)
            .with_incident_alarms(incident_alarms))
    }

    /// Target `i`'s alias as it stands, checked to be free to start from: returns its stable version.
    async fn read_before_start(
        &self,
        deployment: &Deployment,
        i: usize,
    ) -> Result<(Version, AliasState), Error> {
        let t = &deployment.targets[i];
        let alias = match self
            .aliases
            .get_alias(t.function_name.as_str(), &t.alias)
            .await
        {
            Ok(a) => a,
            Err(Error::ResourceNotFound { .. }) => {
                return Err(self.missing_function_or_alias(t).await);
            }
            Err(e) => return Err(e),
        };
        let stable = prepare::check_alias_before_start(deployment, i, &alias)?;
        Ok((stable, alias))
    }

    /// The target's version can take traffic, and shares a weighted alias with its stable version.
    async fn check_versions(
        &self,
        t: &Target,
        stable: Version,
        deadline: tokio::time::Instant,
        named: bool,
    ) -> Result<(), Error> {
        // A release's versions are named with their function: its targets may share version numbers.
        let name = |e: Error| match e {
            Error::TargetNotReady { version, reason } if named => Error::TargetNotReady {
                version: format!("{}:{version}", t.function_name.name),
                reason,
            },
            Error::IncompatibleVersions {
                stable,
                target,
                reason,
            } if named => Error::IncompatibleVersions {
                stable: format!("{}:{stable}", t.function_name.name),
                target: format!("{}:{target}", t.function_name.name),
                reason,
            },
            other => other,
        };
        self.check_versions_of(t, stable, deadline)
            .await
            .map_err(name)
    }

    async fn check_versions_of(
        &self,
        t: &Target,
        stable: Version,
        deadline: tokio::time::Instant,
    ) -> Result<(), Error> {
        let function = t.function_name.as_str();
        let target = self
            .wait_until_ready(function, &t.target_version.to_string(), deadline)
            .await?;
        let stable_config = self
            .aliases
            .get_version(function, &stable.to_string())
            .await?;
        prepare::check_compatible(&stable_config, &target)
    }

    /// Takes every target alias's lock for this execution, in the keys' order (so two releases sharing aliases
    /// meet on the same first one, and one of them gets both), or none: when one is held, the ones taken are
    /// released and the holder is named.
    async fn lock(
        &self,
        deployment: &Deployment,
        deployment_id: &str,
        execution_arn: String,
        stables: &[Version],
        alarms_checked_at: u64,
    ) -> Result<(), Error> {
        let now = crate::unix_now();
        let mut order: Vec<usize> = (0..deployment.targets.len()).collect();
        order.sort_by_key(|&i| deployment.targets[i].lock_key());
        let mut taken = Vec::new();
        for i in order {
            let holder = LockHolder {
                execution_arn: execution_arn.clone(),
                deployment_id: deployment_id.to_owned(),
                acquired_at: now,
                stable_version: Some(stables[i].to_string()),
                // The first target's hold is the deployment's: its alarms, the wait it is in, an alarm that fired.
                alarms: if i == 0 {
                    deployment.alarms.clone()
                } else {
                    Vec::new()
                },
                alarms_checked_at: Some(alarms_checked_at),
                fired: None,
            };
            let key = deployment.targets[i].lock_key();
            match self.lock_one(deployment, i, &key, &holder).await {
                Ok(()) => taken.push(key),
                Err(e) => {
                    // Best effort: the conflict named is what the user needs; a lock left here is this
                    // execution's, and its end frees it (the reconciler, or the next Prepare's takeover).
                    if let Err(release) =
                        guard::release_all(&self.locks, taken, &execution_arn).await
                    {
                        tracing::warn!(error = %release, "could not release the locks taken for this refused release");
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Takes one alias's lock: one deployment per alias. A lock whose holder has ended (it failed before
    /// releasing, or its release was lost) is taken over; a running holder is named.
    async fn lock_one(
        &self,
        deployment: &Deployment,
        i: usize,
        key: &str,
        holder: &LockHolder,
    ) -> Result<(), Error> {
        let alias_name = deployment.alias_label(i);
        let expires_at = holder.acquired_at + guard::LOCK_SECONDS;
        if self.locks.acquire(key, holder, expires_at, None).await? {
            return Ok(());
        }
        let other = match self.locks.holder(key).await? {
            Some((other, _)) => other,
            // Released between the two calls.
            None if self.locks.acquire(key, holder, expires_at, None).await? => return Ok(()),
            None => {
                return Err(Error::AliasConflict {
                    alias: alias_name,
                    reason: "deployment in progress: another deployment took the alias meanwhile"
                        .into(),
                });
            }
        };
        let state =
            guard::holder_state(&self.executions, &other.execution_arn, crate::unix_now()).await?;
        if let HolderState::Reconciling { status, stopped_at } = &state {
            // What the stopped holder wrote is being put back (on a release, perhaps some aliases promoted and
            // others not): taking the alias now would build on a version nobody vetted.
            return Err(Error::AliasConflict {
                alias: alias_name,
                reason: format!(
                    "deployment in progress: execution {} (deployment `{}`) ended {status} at {} and its aliases are \
                     being put back; try again once that is done (at most {} s after it ended)",
                    other.execution_arn,
                    other.deployment_id,
                    crate::rfc3339(*stopped_at),
                    guard::RECONCILING_SECONDS
                ),
            });
        }
        if state == HolderState::Ended
            && self
                .locks
                .acquire(key, holder, expires_at, Some(&other.execution_arn))
                .await?
        {
            info!(previous = %other.execution_arn, "took over the lock of an ended execution");
            return Ok(());
        }
        Err(Error::AliasConflict {
            alias: alias_name,
            reason: format!(
                "deployment in progress: execution {} (deployment `{}`) holds the alias since {}",
                other.execution_arn,
                other.deployment_id,
                crate::rfc3339(other.acquired_at)
            ),
        })
    }

    /// Every hook is one the engine may invoke (the prefix) and exists (at its qualifier, if it names one): a typo
    /// or a hook outside the prefix is found before any traffic moves, not after the first bake.
    async fn check_hooks(&self, d: &Deployment) -> Result<(), Error> {
        prepare::check_hook_prefix(&d.hooks, self.scope.hook_prefix.as_deref())?;
        for hook in d
            .hooks
            .points()
            .into_iter()
            .filter_map(|(_, h)| h.map(|h| &h.function))
        {
            let unqualified = hook.as_str().strip_suffix(
                &hook
                    .qualifier
                    .as_ref()
                    .map(|q| format!(":{q}"))
                    .unwrap_or_default(),
            );
            let function = unqualified.unwrap_or(hook.as_str());
            let qualifier = hook.qualifier.as_deref().unwrap_or("$LATEST");
            match self.aliases.get_version(function, qualifier).await {
                Ok(_) => {}
                Err(Error::ResourceNotFound { .. }) => {
                    return Err(Error::ResourceNotFound {
                        resource: Resource::Hook,
                        name: hook.to_string(),
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Before the first traffic moves, the alarms once more: one that went to ALARM while Prepare was still
    /// checking (waiting for a Pending target, say) found no hold to be recorded on, and would otherwise go
    /// unnoticed until the first step's check.
    async fn no_alarm_in_alarm(&self, rollout: &Rollout) -> Result<(), Error> {
        let d = &rollout.deployment;
        if d.alarms.is_empty() {
            return Ok(());
        }
        let alarms = alarms::firing_during(
            &d.alarms,
            self.alarms.describe_alarms(&d.alarms).await?,
            &rollout.incident_alarms,
        )?;
        if alarms.is_empty() {
            Ok(())
        } else {
            Err(Error::AlarmFired { alarms })
        }
    }

    /// GetAlias says only "not found"; tell the user which of the two is missing.
    async fn missing_function_or_alias(&self, t: &Target) -> Error {
        match self
            .aliases
            .get_version(t.function_name.as_str(), "$LATEST")
            .await
        {
            Err(Error::ResourceNotFound { .. }) => Error::ResourceNotFound {
                resource: Resource::Function,
                name: t.function_name.to_string(),
            },
            Err(e) => e,
            Ok(_) => Error::ResourceNotFound {
                resource: Resource::Alias,
                name: format!("{}:{}", t.function_name, t.alias),
            },
        }
    }

    async fn wait_until_ready(
        &self,
        function: &str,
        version: &str,
        deadline: tokio::time::Instant,
    ) -> Result<VersionConfig, Error> {
        loop {
            let config = self.aliases.get_version(function, version).await?;
            match prepare::readiness(&config)? {
                Readiness::Ready => return Ok(config),
                Readiness::NotYet(why)
                    if tokio::time::Instant::now() + self.wait.interval <= deadline =>
                {
                    info!(version, %why, "target version not ready yet; waiting");
                    tokio::time::sleep(self.wait.interval).await;
                }
                Readiness::NotYet(why) => {
                    return Err(Error::TargetNotReady {
                        version: version.to_owned(),
                        reason: format!("still {why} after {} s", self.wait.timeout.as_secs()),
                    });
                }
            }
        }
    }

    /// Every alias to the next step: all read, judged together (one changed by someone else refuses the step
    /// before any write), then the ones not there yet written. A write that fails after others landed fails the
    /// step; the rollback finds those others at the step being written and reverts them.
    async fn shift(&self, rollout: Rollout) -> Result<Rollout, Error> {
        let read = crate::each(&rollout.aliases, |a| {
            self.aliases.get_alias(&a.function_name, &a.name)
        })
        .await;
        let read: Vec<AliasState> = read.into_iter().collect::<Result<_, _>>()?;
        let ShiftDecision { step, writes } = rollout::decide_shift(&rollout, &read)?;
        let written = crate::each(
            rollout.aliases.iter().zip(read).zip(writes),
            |((a, now), write)| async move {
                let Some(update) = write else {
                    info!(alias = %a.name, function = %a.function_name, step = step + 1, "step already applied; no write");
                    return Ok(now.revision_id);
                };
                crate::write::update_alias(
                    &self.aliases,
                    &a.function_name,
                    &a.name,
                    &update,
                    &now.revision_id,
                )
                .await
                .map(|w| w.revision_id)
                .inspect_err(|e| {
                    tracing::warn!(alias = %a.name, function = %a.function_name, error = %e, "alias write failed")
                })
            },
        )
        .await;
        let revisions: Vec<String> = written.into_iter().collect::<Result<_, _>>()?;
        let next = rollout.advanced(step, revisions, crate::unix_now());
        info!(
            step = step + 1,
            weight = next.percent / 100.0,
            promoted = next.promoted,
            aliases = next.aliases.len(),
            "aliases shifted"
        );
        Ok(next)
    }
}
