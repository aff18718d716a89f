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

use safeshift_core::rollout::{self, AliasState, RollbackDecision, Rollout};
use safeshift_core::{Deployment, Error, InvalidInput, names::Version};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{Instrument, info, info_span, warn};

use crate::ports::{ReadAlias, ReadExecution, WriteAlias};

/// Execution statuses after which no Catch ran and the alias may still be split.
const RECONCILED_STATUSES: [&str; 3] = ["ABORTED", "TIMED_OUT", "FAILED"];

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Event {
    Catch { rollback: Value },
    StatusChange(StatusChange),
}

#[derive(Debug, Deserialize)]
struct StatusChange {
    #[serde(rename = "detail-type")]
    detail_type: String,
    detail: StatusDetail,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusDetail {
    execution_arn: String,
    status: String,
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

impl<A: ReadAlias + WriteAlias, E: ReadExecution> Rollback<A, E> {
    pub fn new(aliases: A, executions: E) -> Self {
        Self {
            aliases,
            executions,
        }
    }

    pub async fn handle(&self, event: Value) -> Result<Value, Error> {
        let event: Event = serde_json::from_value(event).map_err(|_| {
            InvalidInput::one(
                "event",
                "expected {\"rollback\": <state>} or a Step Functions Execution Status Change event",
            )
        })?;
        let report = match event {
            Event::Catch { rollback } => self.after_catch(rollback).await?,
            Event::StatusChange(change) => {
                let span = info_span!("reconcile", execution = %change.detail.execution_arn);
                self.reconcile(change).instrument(span).await?
            }
        };
        info!(outcome = ?report.outcome, reason = %report.reason, "rollback finished");
        serde_json::to_value(&report).map_err(|e| Error::Internal(e.to_string()))
    }

    async fn after_catch(&self, state: Value) -> Result<Report, Error> {
        let Ok(rollout) = serde_json::from_value::<Rollout>(state) else {
            return Ok(Report::new(
                Outcome::NothingShifted,
                "the deployment failed before it was prepared, so the alias was never shifted",
                None,
            ));
        };
        let d = &rollout.deployment;
        let span = info_span!(
            "rollback",
            deployment_id = %rollout.deployment_id,
            function = %d.function_name,
            alias = %d.alias,
            step = rollout.step.map(|s| s + 1),
            weight = rollout.percent / 100.0,
        );
        self.revert(d, rollout.stable_version)
            .instrument(span)
            .await
    }

    async fn revert(&self, d: &Deployment, stable: Version) -> Result<Report, Error> {
        let alias = self
            .aliases
            .get_alias(d.function_name.as_str(), &d.alias)
            .await?;
        self.apply(
            d,
            rollout::decide_rollback(stable, d.target_version, &alias),
            alias,
        )
        .await
    }

    async fn apply(
        &self,
        d: &Deployment,
        decision: RollbackDecision,
        alias: AliasState,
    ) -> Result<Report, Error> {
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
                        d.function_name.as_str(),
                        &d.alias,
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
        let Some(stable) = self.recorded_stable(arn, &d).await? else {
            return Ok(Report::new(
                Outcome::NothingShifted,
                "the execution never got past Prepare, so it shifted nothing",
                None,
            ));
        };
        let alias = match self
            .aliases
            .get_alias(d.function_name.as_str(), &d.alias)
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
        self.apply(
            &d,
            rollout::decide_rollback(stable, d.target_version, &alias),
            alias,
        )
        .await
    }

    /// The stable version recorded by this execution's prepare step.
    async fn recorded_stable(&self, arn: &str, d: &Deployment) -> Result<Option<Version>, Error> {
        let outputs = self.executions.task_outputs(arn).await?;
        Ok(outputs
            .iter()
            .filter_map(|o| serde_json::from_str::<Rollout>(o).ok())
            .find(|r| {
                r.deployment.function_name == d.function_name
                    && r.deployment.alias == d.alias
                    && r.deployment.target_version == d.target_version
            })
            .map(|r| r.stable_version))
    }
}
