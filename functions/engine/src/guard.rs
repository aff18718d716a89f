//! The engine acts only for a running execution of its own state machine, and only on that execution's own
//! deployment. Every writing handler is handed the execution's ARN by the state machine (`$$.Execution.Id`) and
//! reads it back here before it reads or writes anything else, so neither a direct invocation nor a forged state
//! can move an alias around the gates.

use std::time::Duration;

use safeshift_core::{Deployment, Error};

use safeshift_core::rollout::Rollout;

use crate::ports::{AliasLock, ExecutionRecord, LockHolder, ReadExecution};

/// The state machine whose executions the engine serves (`SAFESHIFT_STATE_MACHINE_ARN`), and the functions it
/// may invoke as hooks (`SAFESHIFT_HOOK_PREFIX`, the stack's `HookFunctionPrefix`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub state_machine_arn: String,
    /// Hook function names must start with it; `None`: not checked (the role's policy still decides).
    pub hook_prefix: Option<String>,
}

impl Scope {
    pub fn new(state_machine_arn: impl Into<String>) -> Self {
        Self {
            state_machine_arn: state_machine_arn.into(),
            hook_prefix: None,
        }
    }

    /// Hooks must be functions whose names start with `prefix`.
    pub fn with_hook_prefix(self, prefix: impl Into<String>) -> Self {
        Self {
            hook_prefix: Some(prefix.into()),
            ..self
        }
    }

    /// The scope a Lambda function is deployed with.
    pub fn from_env() -> Result<Self, String> {
        let scope = std::env::var("SAFESHIFT_STATE_MACHINE_ARN")
            .map(Self::new)
            .map_err(|_| {
                "SAFESHIFT_STATE_MACHINE_ARN is not set: the engine cannot tell its own executions"
                    .to_owned()
            })?;
        Ok(match std::env::var("SAFESHIFT_HOOK_PREFIX") {
            Ok(prefix) if !prefix.is_empty() => scope.with_hook_prefix(prefix),
            _ => scope,
        })
    }

    /// The engine stack's name: `<stack>` of `<stack>-rollout`.
    fn stack_name(&self) -> &str {
        let name = self
            .state_machine_arn
            .rsplit(':')
            .next()
            .unwrap_or_default();
        name.strip_suffix("-rollout").unwrap_or(name)
    }

    /// The function that serves the `Safeshift` macro and the `Custom::SafeshiftAlias` resources:
    /// `<stack>-cloudformation`.
    pub fn provider_function(&self) -> String {
        format!("{}-cloudformation", self.stack_name())
    }

    /// The ARN an execution named `name` of the state machine gets.
    pub fn execution_arn(&self, name: &str) -> String {
        format!(
            "{}:{name}",
            self.state_machine_arn
                .replacen(":stateMachine:", ":execution:", 1)
        )
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
pub const LOCK_SECONDS: u64 = 360_000;

/// How long after an execution stopped a write it started may still land: the shift-weight function's timeout
/// (template.yaml; a test keeps the two equal). The reconciler looks at the alias again once it has passed.
pub const LONGEST_WRITE: Duration = Duration::from_secs(150);

/// How late after an execution's stop its status-change event may still arrive with a write of it in play.
pub const EVENT_DELAY_SECONDS: u64 = 300;

/// How long the reconciler remembers an execution it handled: past EventBridge's retries of one event (the
/// template's rule gives up after an hour).
pub const RECONCILED_SECONDS: u64 = 2 * 3600;

/// How long after a holder stopped (aborted, timed out, failed) its lock still says "being put back": its
/// reconciler's event may arrive late and waits out the holder's last write (`LONGEST_WRITE`) before it releases
/// the lock. Until then no one else takes the alias over: what the stopped holder wrote must be reverted first.
pub const RECONCILING_SECONDS: u64 = 600;

/// What the holder of a lock is doing, as Step Functions says.
#[derive(Debug, Clone, PartialEq)]
pub enum HolderState {
    Running,
    /// Stopped within [`RECONCILING_SECONDS`]: its rollback or reconciler is putting the alias back.
    Reconciling {
        status: String,
        stopped_at: u64,
    },
    /// Succeeded with its lock left behind, gone, or stopped long ago: its lock is free to take over.
    Ended,
}

/// What `execution_arn`, which holds a lock, is doing now (`now` in Unix seconds).
pub async fn holder_state<E: ReadExecution>(
    executions: &E,
    execution_arn: &str,
    now: u64,
) -> Result<HolderState, Error> {
    let record = match executions.describe_execution(execution_arn).await {
        Ok(record) => record,
        Err(Error::ResourceNotFound { .. }) => return Ok(HolderState::Ended),
        Err(e) => return Err(e),
    };
    Ok(match (record.status.as_str(), record.stopped_at) {
        ("RUNNING", _) => HolderState::Running,
        ("ABORTED" | "TIMED_OUT" | "FAILED", Some(t)) if t + RECONCILING_SECONDS > now => {
            HolderState::Reconciling {
                status: record.status,
                stopped_at: t,
            }
        }
        _ => HolderState::Ended,
    })
}

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

/// Checks that `execution_arn` still holds every alias of the rollout, each taken by a Prepare that found the
/// rollout's stable version for it. A rollout is state the caller hands in: without this, a forged one could name another stable version
/// and have it restored, and a redriven execution whose lock was released could write again. `released_ok`: a
/// rollback may also run once the lock is gone (its own earlier attempt released it; rolling back twice is a
/// no-op) — it still reverts only what the alias shows of this execution's writes. Returns the hold on the first
/// target's alias, which carries the deployment's alarms and waits (`None` only when `released_ok` and it was
/// released).
pub async fn holds_the_alias<L: AliasLock>(
    locks: &L,
    rollout: &Rollout,
    execution_arn: &str,
    released_ok: bool,
) -> Result<Option<LockHolder>, Error> {
    Ok(holds_each(locks, rollout, execution_arn, released_ok)
        .await?
        .into_iter()
        .next()
        .flatten())
}

/// [`holds_the_alias`] for each alias, in the targets' order: the hold, or `None` for one this execution released
/// already (only when `released_ok`; another deployment may have taken it since, which is theirs then).
pub async fn holds_each<L: AliasLock>(
    locks: &L,
    rollout: &Rollout,
    execution_arn: &str,
    released_ok: bool,
) -> Result<Vec<Option<LockHolder>>, Error> {
    let holds = crate::each(
        rollout
            .deployment
            .lock_keys()
            .into_iter()
            .zip(&rollout.aliases),
        |(key, alias)| {
            holds_one(
                locks,
                key,
                alias.stable_version.to_string(),
                execution_arn,
                released_ok,
            )
        },
    )
    .await;
    holds.into_iter().collect()
}

async fn holds_one<L: AliasLock>(
    locks: &L,
    key: String,
    stable: String,
    execution_arn: &str,
    released_ok: bool,
) -> Result<Option<LockHolder>, Error> {
    match locks.holder(&key).await? {
        Some((holder, _))
            if holder.execution_arn == execution_arn
                && holder.stable_version.as_deref() == Some(stable.as_str()) =>
        {
            Ok(Some(holder))
        }
        Some((holder, _)) if holder.execution_arn == execution_arn => Err(refused(format!(
            "the rollout claims stable version {stable}, but execution {execution_arn}'s Prepare found {}",
            holder.stable_version.as_deref().unwrap_or("none")
        ))),
        // Released by this execution earlier (a rollback's retry, an onRollback hook after it), then taken by
        // another deployment: this execution holds it no longer, as if released.
        Some(_) if released_ok => Ok(None),
        Some((holder, _)) => Err(refused(format!(
            "execution {execution_arn} no longer holds alias `{key}`: {} does",
            holder.execution_arn
        ))),
        None if released_ok => Ok(None),
        None => Err(refused(format!(
            "execution {execution_arn} no longer holds alias `{key}`: its lock was released"
        ))),
    }
}

/// Releases `execution_arn`'s lock on each of `keys` (anyone else's is left as it is), every one tried however
/// another fares; the first error once all were tried.
pub async fn release_all<L: AliasLock>(
    locks: &L,
    keys: Vec<String>,
    execution_arn: &str,
) -> Result<(), Error> {
    let released = crate::each(keys, |key| async move {
        locks.release(&key, execution_arn).await
    })
    .await;
    released.into_iter().collect()
}

/// A step that moves traffic on, or a wait that starts, after a listed alarm went to ALARM during the hold:
/// the deployment fails with that alarm, even if it is OK again by now (it fired and cleared between two reads).
pub fn no_alarm_fired(hold: Option<&LockHolder>) -> Result<(), Error> {
    match hold.and_then(|h| h.fired.as_ref()) {
        Some(fired) => Err(fired.error()),
        None => Ok(()),
    }
}

/// Both checks a step of a rollout passes before it reads or writes anything: its execution runs this very
/// deployment ([`own_execution`]), and still holds the alias as its Prepare took it ([`holds_the_alias`]).
/// Returns the execution and the hold.
pub async fn own_rollout<E: ReadExecution, L: AliasLock>(
    executions: &E,
    locks: &L,
    scope: &Scope,
    rollout: &Rollout,
    execution_arn: Option<&str>,
    released_ok: bool,
) -> Result<(ExecutionRecord, Option<LockHolder>), Error> {
    let record = own_execution(
        executions,
        scope,
        execution_arn,
        &rollout.deployment_id,
        &rollout.deployment,
    )
    .await?;
    let hold = holds_the_alias(
        locks,
        rollout,
        execution_arn.unwrap_or_default(),
        released_ok,
    )
    .await?;
    Ok((record, hold))
}
