//! `rollback`: puts every alias of the deployment (each target of a release) back on its stable version with
//! routing cleared — only ever undoing what this execution wrote (`safeshift_core::rollback::decide_rollback`,
//! alias by alias: its last write's revision and routing, or the routing of a write whose answer was lost), then
//! releases the aliases' locks.
//!
//! Input, one of:
//! - `{"rollback": <state>, "executionArn": …}` from the state machine's Catch: the state at the failure, a
//!   [`Rollout`]. The execution is read back first (`crate::guard`): only a running execution of this engine's
//!   state machine, rolling back its own deployment, is served (`ExecutionMismatch` otherwise, nothing written).
//! - The EventBridge "Step Functions Execution Status Change" event (the reconciler), for executions that ended
//!   where no Catch ran. Anyone may send it, so it trusts nothing in it but the ARN: DescribeExecution must say
//!   ABORTED, TIMED_OUT or FAILED, for this engine's state machine; an execution whose own RollBack completed is
//!   left to it; the rollout is the one the execution recorded in its history (none: it shifted nothing); and
//!   while another execution holds the alias's lock, the alias is theirs. After a revert it waits until the
//!   longest write of the stopped execution could have landed and looks again.
//!
//! Output: `{"outcome": "reverted" | "alreadyStable" | "leftAlone" | "nothingShifted" | "ignored", "reason",
//! "alias", "targets"}`: `targets` has each alias's own outcome, reason and routing; the top-level `outcome` is
//! `leftAlone` when any alias was left alone (someone else's change, which a person should look at), else
//! `reverted` when any was reverted; `alias` is the first target's. Idempotent: rolling back twice, or when
//! already stable, writes nothing and succeeds.
//! Errors: `ExecutionMismatch`, `Throttled`, `AwsError` (the caller retries), `InvalidInput` for an event of
//! neither shape.

use std::time::Duration;

use safeshift_core::alias::{AliasState, AliasTarget};
use safeshift_core::events::LifecycleEvent;
use safeshift_core::rollback::{RollbackDecision, decide_rollback};
use safeshift_core::rollout::Rollout;
use safeshift_core::{Deployment, Error};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{Instrument, Span, info, info_span, warn};

use crate::guard::{self, Scope};
use crate::ports::{AliasLock, Events, LockHolder, ReadAlias, ReadExecution, WriteAlias};
use crate::runtime::Handler;

/// Execution statuses after which no Catch ran and the alias may still be split.
const RECONCILED_STATUSES: [&str; 3] = ["ABORTED", "TIMED_OUT", "FAILED"];

/// Why `rollback` runs: the state machine's Catch, or an execution's status change.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RollbackEvent {
    /// The state at the failure, as it came, and the execution it belongs to.
    Catch {
        rollback: Value,
        #[serde(default, rename = "executionArn")]
        execution_arn: Option<String>,
    },
    StatusChange(StatusChange),
}

/// EventBridge's "Step Functions Execution Status Change" event, as far as the reconciler reads it.
#[derive(Debug, Deserialize)]
pub struct StatusChange {
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub detail: StatusDetail,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetail {
    pub execution_arn: String,
    pub status: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    Reverted,
    AlreadyStable,
    LeftAlone,
    NothingShifted,
    Ignored,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub outcome: Outcome,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<AliasState>,
    /// Each alias's own report, in the targets' order (empty when no rollout was found to roll back).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetReport>,
}

/// What the rollback did to one alias.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetReport {
    pub function_name: String,
    pub alias_name: String,
    pub outcome: Outcome,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing: Option<AliasState>,
}

impl Report {
    fn new(outcome: Outcome, reason: impl Into<String>, alias: Option<AliasState>) -> Self {
        Self {
            outcome,
            reason: reason.into(),
            alias,
            targets: Vec::new(),
        }
    }

    /// One report of each alias's, in the targets' order: left alone when any was (a person should look), else
    /// reverted when any was, else the first's outcome.
    fn combine(aliases: &[AliasTarget], reports: Vec<Report>) -> Report {
        let targets: Vec<TargetReport> = aliases
            .iter()
            .zip(&reports)
            .map(|(a, r)| TargetReport {
                function_name: a.function_name.clone(),
                alias_name: a.name.clone(),
                outcome: r.outcome,
                reason: r.reason.clone(),
                routing: r.alias.clone(),
            })
            .collect();
        let outcome = [Outcome::LeftAlone, Outcome::Reverted]
            .into_iter()
            .find(|o| reports.iter().any(|r| r.outcome == *o))
            .unwrap_or(reports[0].outcome);
        let reason = if reports.len() == 1 {
            reports[0].reason.clone()
        } else {
            targets
                .iter()
                .map(|t| format!("{}:{}: {}", t.function_name, t.alias_name, t.reason))
                .collect::<Vec<_>>()
                .join("; ")
        };
        Report {
            outcome,
            reason,
            alias: reports.into_iter().next().and_then(|r| r.alias),
            targets,
        }
    }
}

/// Every result, or the first error once all have run: one alias's failure does not stop another's revert, and
/// the caller's retry finds the reverted ones stable.
fn all<T>(results: Vec<Result<T, Error>>) -> Result<Vec<T>, Error> {
    results.into_iter().collect()
}

#[derive(Debug, Clone)]
pub struct Rollback<A, E, L> {
    aliases: A,
    executions: E,
    locks: L,
    scope: Scope,
    /// How long after an execution stopped one of its writes could still land: its longest write's bound.
    settle: Duration,
    events: Events,
}

impl<A, E, L> Handler for Rollback<A, E, L>
where
    A: ReadAlias + WriteAlias + 'static,
    E: ReadExecution + 'static,
    L: AliasLock + 'static,
{
    type Event = RollbackEvent;
    type Output = Report;
    const EXPECTED: &'static str = "{\"rollback\": <state>, \"executionArn\": …} or a Step Functions Execution \
                                    Status Change event";

    fn span(event: &RollbackEvent) -> Span {
        match event {
            RollbackEvent::Catch { .. } => info_span!("rollback"),
            RollbackEvent::StatusChange(change) => {
                info_span!("reconcile", execution = %change.detail.execution_arn)
            }
        }
    }

    async fn handle(&self, event: RollbackEvent) -> Result<Report, Error> {
        let report = match event {
            RollbackEvent::Catch {
                rollback,
                execution_arn,
            } => self.after_catch(rollback, execution_arn).await?,
            RollbackEvent::StatusChange(change) => self.reconcile(change).await?,
        };
        info!(outcome = ?report.outcome, reason = %report.reason, "rollback finished");
        Ok(report)
    }
}

impl<A, E, L> Rollback<A, E, L>
where
    A: ReadAlias + WriteAlias,
    E: ReadExecution,
    L: AliasLock,
{
    pub fn new(aliases: A, executions: E, locks: L, scope: Scope, settle: Duration) -> Self {
        Self {
            aliases,
            executions,
            locks,
            scope,
            settle,
            events: Events::default(),
        }
    }

    /// Publishes the rollback's end, or its failure (best effort).
    pub fn with_events(self, events: Events) -> Self {
        Self { events, ..self }
    }

    async fn after_catch(
        &self,
        state: Value,
        execution_arn: Option<String>,
    ) -> Result<Report, Error> {
        // Prepare's output is the first state with a deployment id: without one, nothing was prepared.
        let prepared = state.get("deploymentId").is_some();
        let cause = state["error"]["Error"].as_str().map(str::to_owned);
        let rollout = match serde_json::from_value::<Rollout>(state) {
            Ok(rollout) => rollout,
            Err(_) if !prepared => {
                return Ok(Report::new(
                    Outcome::NothingShifted,
                    "the deployment failed before it was prepared, so the alias was never shifted",
                    None,
                ));
            }
            // A prepared rollout that does not read may have shifted: fail loudly (the reconciler and the
            // operator see it) rather than report that nothing needs undoing.
            Err(e) => {
                return Err(Error::Internal(format!(
                    "the rollout to roll back does not read: {e}"
                )));
            }
        };
        let span = crate::rollout_span!(
            "rollback",
            rollout,
            step = rollout.step.map(|s| s + 1),
            weight = rollout.percent / 100.0
        );
        let result: Result<Report, Error> = async {
            guard::own_execution(
                &self.executions,
                &self.scope,
                execution_arn.as_deref(),
                &rollout.deployment_id,
                &rollout.deployment,
            )
            .await?;
            let arn = execution_arn.as_deref().unwrap_or_default();
            let holds = guard::holds_each(&self.locks, &rollout, arn, true).await?;
            let held: Vec<bool> = holds.iter().map(Option::is_some).collect();
            let report = self.revert(&rollout, &held).await?;
            // One that fails is released by the state machine's retry of this rollback.
            guard::release_all(&self.locks, rollout.deployment.lock_keys(), arn).await?;
            Ok(report)
        }
        .instrument(span)
        .await;
        let arn = execution_arn.as_deref();
        let event = match &result {
            Ok(report) => LifecycleEvent::rolled_back(
                &rollout,
                arn,
                serde_json::to_value(report.outcome)
                    .ok()
                    .and_then(|o| o.as_str().map(str::to_owned))
                    .as_deref()
                    .unwrap_or("?"),
                &report.reason,
                cause.as_deref(),
            ),
            // A refusal to act for another execution is no failed rollback of this one; a throttle or a transient
            // AWS error is retried by the state machine, so it is no failed rollback yet either (one that fails
            // every retry ends in RollbackFailed, and the reconciler takes it over).
            Err(
                Error::ExecutionMismatch { .. } | Error::Throttled { .. } | Error::AwsError { .. },
            ) => {
                return result;
            }
            Err(e) => LifecycleEvent::rollback_failed(&rollout, arn, &e.to_string()),
        };
        self.events.publish(event).await;
        result
    }

    /// Every alias of the rollout, each as its own state says. `held`: whether this execution still holds each
    /// alias's lock. One it released was handled by an earlier attempt of this rollback (locks are released only
    /// once every alias was decided), so a routing there that this execution never recorded is someone else's.
    async fn revert(&self, rollout: &Rollout, held: &[bool]) -> Result<Report, Error> {
        let reports = crate::each(rollout.aliases.iter().zip(held), |(a, held)| async move {
            let alias = self.aliases.get_alias(&a.function_name, &a.name).await?;
            // The execution is failing right now: the write its last attempt made may have landed unseen —
            // while it still holds the alias.
            self.apply(rollout, a, alias, *held).await
        })
        .await;
        Ok(Report::combine(&rollout.aliases, all(reports)?))
    }

    /// Reverts alias `a` as just read, if it still carries what this execution wrote (see [`decide_rollback`]).
    async fn apply(
        &self,
        rollout: &Rollout,
        a: &AliasTarget,
        alias: AliasState,
        lost_write_may_land: bool,
    ) -> Result<Report, Error> {
        match decide_rollback(rollout, a, &alias, lost_write_may_land) {
            RollbackDecision::AlreadyStable => Ok(Report::new(
                Outcome::AlreadyStable,
                format!("the alias already routes only {}", alias.describe()),
                Some(alias),
            )),
            RollbackDecision::LeaveAlone { reason } => {
                warn!(function = %a.function_name, alias = %a.name, %reason, "not rolling back");
                Ok(Report::new(Outcome::LeftAlone, reason, Some(alias)))
            }
            RollbackDecision::Revert { update } => {
                let written = crate::write::update_alias(
                    &self.aliases,
                    &a.function_name,
                    &a.name,
                    &update,
                    &alias.revision_id,
                )
                .await?;
                Ok(Report::new(
                    Outcome::Reverted,
                    format!(
                        "the alias routed {}; it now routes only {}",
                        alias.describe(),
                        written.describe()
                    ),
                    Some(written),
                ))
            }
        }
    }

    async fn reconcile(&self, change: StatusChange) -> Result<Report, Error> {
        let arn = &change.detail.execution_arn;
        let ignored = |why: String| Ok(Report::new(Outcome::Ignored, why, None));
        if change.detail_type != "Step Functions Execution Status Change"
            || !RECONCILED_STATUSES.contains(&change.detail.status.as_str())
        {
            return ignored(format!(
                "{} {} needs no reconciliation",
                change.detail_type, change.detail.status
            ));
        }
        // The event is only a hint: what the execution really is comes from Step Functions.
        let execution = match self.executions.describe_execution(arn).await {
            Ok(e) => e,
            Err(Error::ResourceNotFound { .. }) => {
                return ignored(format!("execution {arn} does not exist"));
            }
            Err(e) => return Err(e),
        };
        if execution.state_machine_arn != self.scope.state_machine_arn {
            return ignored(format!(
                "execution {arn} belongs to {}, not to this engine",
                execution.state_machine_arn
            ));
        }
        if !RECONCILED_STATUSES.contains(&execution.status.as_str()) {
            return ignored(format!(
                "execution {arn} is {}: nothing to reconcile",
                execution.status
            ));
        }
        let deployment = execution
            .input
            .as_deref()
            .ok_or_else(|| "the execution has no input".to_owned())
            .and_then(|i| Deployment::parse(i).map_err(|e| e.to_string()));
        let d = match deployment {
            Ok(d) => d,
            Err(why) => {
                return Ok(Report::new(
                    Outcome::NothingShifted,
                    format!("{why}; it cannot have shifted"),
                    None,
                ));
            }
        };
        // The reconciler's own revert leaves nothing in the execution's history, and EventBridge delivers an
        // event again for up to an hour: a mark beside the locks says this execution was handled, so a late
        // delivery cannot revert what a newer deployment set since.
        let mark = format!("reconciled:{arn}");
        let now = crate::unix_now();
        if let Some((_, until)) = self.locks.holder(&mark).await?
            && until > now
        {
            return ignored(format!(
                "execution {arn} was reconciled already; what was decided then stands"
            ));
        }
        let outputs = self.executions.task_outputs(arn).await?;
        let report = self
            .reconcile_aliases(arn, &d, &outputs, execution.stopped_at)
            .await?;
        // Whatever was decided, this execution holds the aliases no longer.
        guard::release_all(&self.locks, d.lock_keys(), arn).await?;
        // Marked only once no write of the execution can land any more: a reconciler that did not wait (the CLI's
        // abort) leaves the event EventBridge delivers to the one that does.
        let now = crate::unix_now();
        if now < execution.stopped_at.unwrap_or_default() + guard::LONGEST_WRITE.as_secs() {
            return Ok(report);
        }
        let handled = LockHolder {
            execution_arn: arn.clone(),
            deployment_id: execution.name.clone(),
            acquired_at: now,
            ..LockHolder::default()
        };
        self.locks
            .acquire(&mark, &handled, now + guard::RECONCILED_SECONDS, None)
            .await?;
        Ok(report)
    }

    async fn reconcile_aliases(
        &self,
        arn: &str,
        d: &Deployment,
        outputs: &[String],
        stopped_at: Option<u64>,
    ) -> Result<Report, Error> {
        if outputs.iter().any(|o| is_rollback_report(o)) {
            return Ok(Report::new(
                Outcome::Ignored,
                "the execution's own rollback completed; what it decided stands",
                None,
            ));
        }
        // Only an execution that got past Prepare can have shifted anything, and its own record says what it
        // wrote. Without this, a second attempt at the same target that failed in Prepare (the alias was busy)
        // would revert the first attempt's split.
        let Some(rollout) = outputs
            .iter()
            .filter_map(|o| serde_json::from_str::<Rollout>(o).ok())
            .find(|r| r.deployment == *d)
        else {
            return Ok(Report::new(
                Outcome::NothingShifted,
                "the execution never got past Prepare, so it shifted nothing",
                None,
            ));
        };
        // A write the stopped execution started can land only until shift-weight's timeout has passed (and the
        // event can arrive a little after that); past that, the routing its next step would have set is someone
        // else's.
        let lost_write_may_land = crate::unix_now()
            <= stopped_at.unwrap_or_default()
                + guard::LONGEST_WRITE.as_secs()
                + guard::EVENT_DELAY_SECONDS;
        let rollout = &rollout;
        let keys = d.lock_keys();
        let reports = crate::each(rollout.aliases.iter().zip(&keys), |(a, key)| async move {
            let report = self
                .reconcile_alias(arn, rollout, a, key, lost_write_may_land)
                .await?;
            self.settle(arn, rollout, a, key, stopped_at, report).await
        })
        .await;
        Ok(Report::combine(&rollout.aliases, all(reports)?))
    }

    /// One alias of the stopped execution: left to whoever holds it now, else reverted if it carries what the
    /// execution wrote.
    async fn reconcile_alias(
        &self,
        arn: &str,
        rollout: &Rollout,
        a: &AliasTarget,
        key: &str,
        lost_write_may_land: bool,
    ) -> Result<Report, Error> {
        if let Some(holder) = self.held_by_another(arn, key).await? {
            return Ok(Report::new(
                Outcome::LeftAlone,
                format!(
                    "execution {} (deployment `{}`) holds the alias now; leaving it as it is",
                    holder.execution_arn, holder.deployment_id
                ),
                None,
            ));
        }
        let alias = match self.aliases.get_alias(&a.function_name, &a.name).await {
            Err(Error::ResourceNotFound { .. }) => {
                return Ok(Report::new(
                    Outcome::NothingShifted,
                    "the alias does not exist",
                    None,
                ));
            }
            other => other?,
        };
        self.apply(rollout, a, alias, lost_write_may_land).await
    }

    /// Whoever other than `arn` holds the lock on `key` now: a newer deployment took it over from the ended
    /// execution, and the alias is theirs.
    async fn held_by_another(&self, arn: &str, key: &str) -> Result<Option<LockHolder>, Error> {
        Ok(self
            .locks
            .holder(key)
            .await?
            .map(|(holder, _)| holder)
            .filter(|holder| holder.execution_arn != arn))
    }

    /// A write the execution started before it stopped may still land until its bound has passed: wait for
    /// that, look again, and revert what landed.
    async fn settle(
        &self,
        arn: &str,
        rollout: &Rollout,
        a: &AliasTarget,
        key: &str,
        stopped_at: Option<u64>,
        report: Report,
    ) -> Result<Report, Error> {
        let settled_at = stopped_at.unwrap_or_default() + self.settle.as_secs();
        let now = crate::unix_now();
        if settled_at <= now {
            return Ok(report);
        }
        tokio::time::sleep(Duration::from_secs(settled_at - now)).await;
        // Meanwhile a newer deployment may have taken the alias over from this ended execution: it is theirs now.
        if self.held_by_another(arn, key).await?.is_some() {
            return Ok(report);
        }
        let alias = self.aliases.get_alias(&a.function_name, &a.name).await?;
        if !matches!(
            decide_rollback(rollout, a, &alias, true),
            RollbackDecision::Revert { .. }
        ) {
            return Ok(report);
        }
        let late = self.apply(rollout, a, alias, true).await?;
        Ok(Report::new(
            late.outcome,
            format!(
                "{}; then a write the execution had started landed after it stopped: {}",
                report.reason, late.reason
            ),
            late.alias,
        ))
    }
}

/// Whether a task output is a rollback's report: the execution's own RollBack ran to the end.
fn is_rollback_report(output: &str) -> bool {
    #[derive(Deserialize)]
    struct Decided {
        outcome: Outcome,
    }
    serde_json::from_str::<Decided>(output).is_ok_and(|d| d.outcome != Outcome::Ignored)
}
