//! The engine acts only for a running execution of its own state machine, and only on that execution's own
//! deployment. Every writing handler is handed the execution's ARN by the state machine (`$$.Execution.Id`) and
//! reads it back here before it reads or writes anything else, so neither a direct invocation nor a forged state
//! can move an alias around the gates.

use std::time::Duration;

use safeshift_core::{Deployment, Error};

use crate::ports::{ExecutionRecord, ReadExecution};

/// The state machine whose executions the engine serves (`SAFESHIFT_STATE_MACHINE_ARN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub state_machine_arn: String,
}

impl Scope {
    pub fn new(state_machine_arn: impl Into<String>) -> Self {
        Self {
            state_machine_arn: state_machine_arn.into(),
        }
    }

    /// The scope a Lambda function is deployed with.
    pub fn from_env() -> Result<Self, String> {
        std::env::var("SAFESHIFT_STATE_MACHINE_ARN")
            .map(Self::new)
            .map_err(|_| {
                "SAFESHIFT_STATE_MACHINE_ARN is not set: the engine cannot tell its own executions"
                    .into()
            })
    }

    /// The per-alias lock table beside the state machine: `<stack>-locks` for `<stack>-rollout`.
    pub fn lock_table(&self) -> String {
        let name = self
            .state_machine_arn
            .rsplit(':')
            .next()
            .unwrap_or_default();
        format!("{}-locks", name.strip_suffix("-rollout").unwrap_or(name))
    }
}

/// How long a lock lasts whatever becomes of its holder: past the longest execution (the state machine's
/// `TimeoutSeconds`, checked by a test), so a lock outlives every running holder and never blocks an alias for
/// much longer after a holder that vanished.
pub const LOCK_SECONDS: u64 = 270_000;

/// How long after an execution stopped a write it started may still land: the shift-weight function's timeout
/// (template.yaml; a test keeps the two equal). The reconciler looks at the alias again once it has passed.
pub const LONGEST_WRITE: Duration = Duration::from_secs(150);

/// How long the reconciler remembers an execution it handled: past EventBridge's retries of one event (the
/// template's rule gives up after an hour).
pub const RECONCILED_SECONDS: u64 = 2 * 3600;

fn refused(reason: String) -> Error {
    Error::ExecutionMismatch { reason }
}

/// Checks that `execution_arn` names a running execution of this engine's state machine, named
/// `deployment_id`, whose input is `deployment`; returns what DescribeExecution said of it.
pub async fn own_execution<E: ReadExecution>(
    executions: &E,
    scope: &Scope,
    execution_arn: Option<&str>,
    deployment_id: &str,
    deployment: &Deployment,
) -> Result<ExecutionRecord, Error> {
    let Some(arn) = execution_arn else {
        return Err(refused(format!(
            "invoked outside an execution; the engine acts only for running executions of {}",
            scope.state_machine_arn
        )));
    };
    let record = match executions.describe_execution(arn).await {
        Ok(r) => r,
        Err(Error::ResourceNotFound { .. }) => {
            return Err(refused(format!("execution {arn} does not exist")));
        }
        Err(e) => return Err(e),
    };
    if record.state_machine_arn != scope.state_machine_arn {
        return Err(refused(format!(
            "execution {arn} belongs to {}, not to {}",
            record.state_machine_arn, scope.state_machine_arn
        )));
    }
    if record.status != "RUNNING" {
        return Err(refused(format!(
            "execution {arn} is {}, not running",
            record.status
        )));
    }
    if record.name != deployment_id {
        return Err(refused(format!(
            "the rollout is deployment `{deployment_id}`, but execution {arn} is `{}`",
            record.name
        )));
    }
    let input = record.input.as_deref().map(Deployment::parse);
    if !matches!(&input, Some(Ok(d)) if d == deployment) {
        return Err(refused(format!(
            "the rollout's deployment is not the input execution {arn} was started with"
        )));
    }
    Ok(record)
}
