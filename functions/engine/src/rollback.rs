//! `rollback`: puts the alias back on the stable version with routing cleared — only ever undoing what this
//! deployment did.
//!
//! Input, one of:
//! - `{"rollback": <state>}` from the state machine's Catch: the state at the failure, a [`Rollout`] once
//!   prepared. A state that never became a rollout (failure before or during prepare) shifted nothing: no write.
//! - The EventBridge "Step Functions Execution Status Change" event (the reconciler), for executions that ended
//!   ABORTED, TIMED_OUT or FAILED, where no Catch ran. It reads the execution's input with DescribeExecution and
//!   the rollout its Prepare recorded in the execution's history (no record: it shifted nothing), and reverts only
//!   if the alias is still split toward, or promoted to, that execution's target from that stable version.
//!
//! Output: `{"outcome": "reverted" | "alreadyStable" | "leftAlone" | "nothingShifted" | "ignored", "reason",
//! "alias"}`. Idempotent: rolling back twice, or when already stable, writes nothing and succeeds.
//! Errors: `Throttled`, `AwsError` (the caller retries), `InvalidInput` for an event of neither shape.

use safeshift_core::alias::{AliasState, AliasTarget};
use safeshift_core::rollback::{RollbackDecision, decide_rollback};
use safeshift_core::rollout::Rollout;
use safeshift_core::{Deployment, Error};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{Instrument, Span, info, info_span, warn};

use crate::ports::{ReadAlias, ReadExecution, WriteAlias};
use crate::runtime::Handler;

/// Execution statuses after which no Catch ran and the alias may still be split.
const RECONCILED_STATUSES: [&str; 3] = ["ABORTED", "TIMED_OUT", "FAILED"];

/// Why `rollback` runs: the state machine's Catch, or an execution's status change.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RollbackEvent {
    /// The state at the failure, as it came: a rollout once prepared, anything before.
    Catch {
        rollback: Value,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
}

impl Report {
    fn new(outcome: Outcome, reason: impl Into<String>, alias: Option<AliasState>) -> Self {
        Self {
            outcome,
            reason: reason.into(),
            alias,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Rollback<A, E> {
    aliases: A,
    executions: E,
}

impl<A, E> Handler for Rollback<A, E>
where
    A: ReadAlias + WriteAlias + 'static,
    E: ReadExecution + 'static,
{
    type Event = RollbackEvent;
    type Output = Report;
    const EXPECTED: &'static str =
        "{\"rollback\": <state>} or a Step Functions Execution Status Change event";

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
            RollbackEvent::Catch { rollback } => self.after_catch(rollback).await?,
            RollbackEvent::StatusChange(change) => self.reconcile(change).await?,
        };
        info!(outcome = ?report.outcome, reason = %report.reason, "rollback finished");
        Ok(report)
    }
}

impl<A: ReadAlias + WriteAlias, E: ReadExecution> Rollback<A, E> {
    pub fn new(aliases: A, executions: E) -> Self {
        Self {
            aliases,
            executions,
        }
    }

    async fn after_catch(&self, state: Value) -> Result<Report, Error> {
        // Prepare's output is the first state with a deployment id: without one, nothing was prepared.
        let prepared = state.get("deploymentId").is_some();
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
        self.revert(&rollout.alias).instrument(span).await
    }

    async fn revert(&self, target: &AliasTarget) -> Result<Report, Error> {
        let alias = self
            .aliases
            .get_alias(&target.function_name, &target.name)
            .await?;
        self.apply(target, alias).await
    }

    /// Reverts the alias as just read, if this deployment's target still owns it.
    async fn apply(&self, target: &AliasTarget, alias: AliasState) -> Result<Report, Error> {
        let decision = decide_rollback(target, &alias);
        match decision {
            RollbackDecision::AlreadyStable => Ok(Report::new(
                Outcome::AlreadyStable,
                format!("the alias already routes only {}", alias.describe()),
                Some(alias),
            )),
            RollbackDecision::LeaveAlone { reason } => {
                warn!(%reason, "not rolling back");
                Ok(Report::new(Outcome::LeftAlone, reason, Some(alias)))
            }
            RollbackDecision::Revert { update } => {
                let written = self
                    .aliases
                    .update_alias(
                        &target.function_name,
                        &target.name,
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
        if change.detail_type != "Step Functions Execution Status Change"
            || !RECONCILED_STATUSES.contains(&change.detail.status.as_str())
        {
            return Ok(Report::new(
                Outcome::Ignored,
                format!(
                    "{} {} needs no reconciliation",
                    change.detail_type, change.detail.status
                ),
                None,
            ));
        }
        let execution = self.executions.describe_execution(arn).await?;
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
        // Only an execution that got past Prepare can have shifted anything, and its own record says from which
        // stable version. Without this, a second attempt at the same target that failed in Prepare (the alias
        // was busy) would revert the first attempt's split.
        let Some(target) = self.recorded_target(arn, &d).await? else {
            return Ok(Report::new(
                Outcome::NothingShifted,
                "the execution never got past Prepare, so it shifted nothing",
                None,
            ));
        };
        let alias = match self
            .aliases
            .get_alias(&target.function_name, &target.name)
            .await
        {
            Err(Error::ResourceNotFound { .. }) => {
                return Ok(Report::new(
                    Outcome::NothingShifted,
                    "the alias does not exist",
                    None,
                ));
            }
            other => other?,
        };
        self.apply(&target, alias).await
    }

    /// The alias target recorded by this execution's prepare step (and every shift after it).
    async fn recorded_target(
        &self,
        arn: &str,
        d: &Deployment,
    ) -> Result<Option<AliasTarget>, Error> {
        let outputs = self.executions.task_outputs(arn).await?;
        Ok(outputs
            .iter()
            .filter_map(|o| serde_json::from_str::<Rollout>(o).ok())
            .find(|r| {
                r.deployment.function_name == d.function_name
                    && r.deployment.alias == d.alias
                    && r.deployment.target_version == d.target_version
            })
            .map(|r| r.alias))
    }
}
