//! `run-hook`: runs the team's pre- or post-traffic hook.
//!
//! Input: `{"phase": "preTraffic" | "postTraffic" | "approval", "rollout": <Rollout>, "taskToken": "<optional>",
//! "executionArn": …}`; the execution is read back first and must be running this very rollout
//! (`ExecutionMismatch` otherwise: no hook is invoked).
//! The `approval` phase invokes nothing: its state waits with the task token for `safeshift approve`/`reject`,
//! and the token is registered with the deployment's alarms as `watch-gates` registers a bake's: a listed alarm
//! going to ALARM during the wait fails it at once with `AlarmFired` (and one that fired before it starts
//! fails it before it waits). The `postTraffic` phase fails with `AlarmFired` when a listed alarm went to ALARM
//! while the hook ran: a synchronous hook cannot be interrupted, so the alarm is acted on when it returns.
//! The hook function receives a [`HookEvent`] (deployment id, function, alias, stable and target versions, phase,
//! current weight, and the task token when there is one).
//! - Without a task token the hook is invoked synchronously: it passes when it returns without a function error
//!   and its response does not say `"status": "Failed"`.
//! - With a task token (the state waits with `.waitForTaskToken`) the hook is started asynchronously and reports
//!   later itself with SendTaskSuccess / SendTaskFailure.
//!
//! Output: `{"phase", "hook", "verdict": "pass" | "pending" | "skipped"}` — `skipped` when no hook is configured
//! for the phase. Errors: `HookFailed` with the hook's own message, `ResourceNotFound` (hook missing),
//! `InvalidInput`, `Throttled`, `AwsError`.

use safeshift_core::Error;
use safeshift_core::events::LifecycleEvent;
use safeshift_core::hooks::{self, Hook, HookEvent, HookMode, Phase};
use safeshift_core::rollout::Rollout;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{Span, info};

use crate::guard::{self, Scope};
use crate::ports::{
    AliasLock, Events, InvokeHook, InvokeMode, ReadExecution, ReportTask, WatchAlarms,
};
use crate::runtime::Handler;

/// Which hook to run, for which rollout.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HookRequest {
    pub phase: Phase,
    pub rollout: Rollout,
    #[serde(default)]
    pub task_token: Option<String>,
    /// `$$.State.EnteredTime` of a state that waits with the task token: orders its wait among the execution's.
    #[serde(default)]
    pub entered_at: Option<String>,
    /// `$$.Execution.Id`: the hook runs only for a running execution's own rollout.
    #[serde(default)]
    pub execution_arn: Option<String>,
    /// For `onRollback`: what caused the rollback (`$.error`).
    #[serde(default)]
    pub error: Option<Value>,
}

/// How a hook phase went, short of a failure (which is `HookFailed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HookVerdict {
    Pass,
    /// Started with a task token (or the approval wait): the answer comes back through Step Functions.
    Pending,
    /// No hook is configured for the phase.
    Skipped,
}

impl HookVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            HookVerdict::Pass => "pass",
            HookVerdict::Pending => "pending",
            HookVerdict::Skipped => "skipped",
        }
    }
}

/// What `run-hook` returns, and what a hook state records (`$.hook`, `$.afterStep`, `$.onRollback`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HookRun {
    pub phase: Phase,
    pub hook: Option<String>,
    pub verdict: HookVerdict,
    /// The step (0-based, as the rollout's) it ran at: CheckGates reads it not to run an afterStep hook twice.
    pub step: Option<usize>,
    /// A sync hook's answer, kept as evidence (bounded).
    #[serde(skip_serializing_if = "Value::is_null")]
    pub output: Value,
}

#[derive(Debug, Clone)]
pub struct RunHook<P, E, L> {
    ports: P,
    executions: E,
    locks: L,
    scope: Scope,
    events: Events,
}

impl<P, E, L> Handler for RunHook<P, E, L>
where
    P: InvokeHook + 'static,
    E: ReadExecution + ReportTask + 'static,
    L: AliasLock + WatchAlarms + 'static,
{
    type Event = HookRequest;
    type Output = HookRun;
    const EXPECTED: &'static str = "{\"phase\": …, \"rollout\": …}";

    fn span(event: &HookRequest) -> Span {
        let r = &event.rollout;
        crate::rollout_span!(
            "run_hook",
            r,
            phase = %event.phase,
            weight = r.percent / 100.0
        )
    }

    async fn handle(&self, event: HookRequest) -> Result<HookRun, Error> {
        self.run(event).await
    }
}

impl<P: InvokeHook, E: ReadExecution + ReportTask, L: AliasLock + WatchAlarms> RunHook<P, E, L> {
    pub fn new(ports: P, executions: E, locks: L, scope: Scope) -> Self {
        Self {
            ports,
            executions,
            locks,
            scope,
            events: Events::default(),
        }
    }

    /// Publishes an approval gate's wait (best effort).
    pub fn with_events(self, events: Events) -> Self {
        Self { events, ..self }
    }

    /// `AlarmFired` when a listed alarm was recorded on the hold since Prepare.
    async fn no_alarm_fired(&self, rollout: &Rollout, arn: Option<&str>) -> Result<(), Error> {
        let hold =
            guard::holds_the_alias(&self.locks, rollout, arn.unwrap_or_default(), false).await?;
        guard::no_alarm_fired(hold.as_ref())
    }

    async fn run(&self, event: HookRequest) -> Result<HookRun, Error> {
        let arn = event.execution_arn.as_deref();
        // After a rollback the alias's lock is released: the onRollback hook writes nothing, so the execution being
        // this rollout's own is enough.
        let (_, hold) = guard::own_rollout(
            &self.executions,
            &self.locks,
            &self.scope,
            &event.rollout,
            arn,
            event.phase == Phase::OnRollback,
        )
        .await?;
        let d = &event.rollout.deployment;
        let watched = !d.alarms.is_empty();
        let done = |hook: Option<String>, verdict, output| HookRun {
            phase: event.phase,
            hook,
            verdict,
            step: event.rollout.step,
            output,
        };
        if event.phase == Phase::Approval {
            // The state holds the task token until `safeshift approve` or `reject` answers it, or an alarm.
            if watched {
                self.watch_the_wait(&event).await?;
            }
            info!(
                step = event.rollout.step.map(|s| s + 2),
                "waiting for approval"
            );
            self.events
                .publish(LifecycleEvent::approval_pending(&event.rollout, arn))
                .await;
            return Ok(done(None, HookVerdict::Pending, Value::Null));
        }
        let hook = d.hooks.at(event.phase);
        // A hook's wait is watched as a bake is: a listed alarm going to ALARM while a hook runs (a callback hook
        // may take a day) fails it at once with AlarmFired. After a rollback there is nothing left to protect.
        if watched && hook.is_some() && event.phase != Phase::OnRollback {
            self.watch_the_wait(&event).await?;
        }
        let run = match hook {
            // No hook to run, but the promotion's last moment to act on an alarm recorded since the final check:
            // the hold was just read.
            None => {
                if watched && event.phase == Phase::PostTraffic {
                    guard::no_alarm_fired(hold.as_ref())?;
                }
                done(None, HookVerdict::Skipped, Value::Null)
            }
            Some(hook) => self.invoke(&event, hook, watched).await?,
        };
        // A hook state waits for its token: a sync hook's answer (or its absence) is reported here; a callback
        // hook reports itself.
        if run.verdict != HookVerdict::Pending
            && let Some(token) = &event.task_token
        {
            let output = serde_json::to_string(&run).map_err(|e| Error::Internal(e.to_string()))?;
            if !self.executions.succeed_task(token, &output).await? {
                // The wait ended first: an alarm failed it, or it timed out. Its own ending stands.
                tracing::warn!(phase = %event.phase, "the hook's wait had already ended; its answer was not taken");
            }
        }
        Ok(run)
    }

    /// Registers the state's wait (its task token) with the deployment's alarms, as watch-gates registers a bake.
    async fn watch_the_wait(&self, event: &HookRequest) -> Result<(), Error> {
        let Some(token) = &event.task_token else {
            return Ok(());
        };
        let wait = crate::watch_gates::Wait {
            key: event.rollout.deployment.lock_key(),
            execution_arn: event.execution_arn.as_deref().unwrap_or_default(),
            task_token: token,
            since: event.entered_at.as_deref(),
        };
        // A wait AWS throttled out of registering stays unwatched (logged): it is no reason to fail the step.
        crate::watch_gates::register_or_degrade(&self.locks, &wait)
            .await
            .map(|_| ())
    }

    /// Invokes `hook` for the event's phase: a sync hook is waited for and judged (its failure is `HookFailed`,
    /// naming the hook point and the step); a callback hook is started with the task token and answers itself.
    async fn invoke(
        &self,
        event: &HookRequest,
        hook: &Hook,
        watched: bool,
    ) -> Result<HookRun, Error> {
        let r = &event.rollout;
        let a = &r.aliases[0];
        let callback = hook.mode == HookMode::Callback;
        let hook_event = HookEvent {
            deployment_id: r.deployment_id.clone(),
            release: r.deployment.release.clone(),
            targets: r.aliases.iter().map(Into::into).collect(),
            function_name: a.function_name.clone(),
            alias: a.name.clone(),
            stable_version: a.stable_version.to_string(),
            target_version: a.target_version.to_string(),
            phase: event.phase,
            percent: r.percent,
            step: r.step.map(|s| s + 1),
            step_count: r.step_count,
            next_percent: (event.phase == Phase::BeforeStep)
                .then(|| r.next_step())
                .flatten()
                .map(|s| r.deployment.schedule().steps()[s].percent),
            passed_gates: r.passed_gates.clone(),
            error: event.error.clone().map(bounded_error),
            task_token: callback.then(|| event.task_token.clone()).flatten(),
        };
        if callback && hook_event.task_token.is_none() {
            return Err(Error::Internal(format!(
                "the {} hook is a callback hook, but its state passed no task token",
                event.phase
            )));
        }
        let payload =
            serde_json::to_vec(&hook_event).map_err(|e| Error::Internal(e.to_string()))?;
        let mode = if callback {
            InvokeMode::Async
        } else {
            InvokeMode::Sync
        };
        let name = hook.function.as_str();
        let response = self.ports.invoke(name, payload, mode).await?;
        let arn = event.execution_arn.as_deref();
        let step = r.step.map(|s| s + 1);
        let (verdict, output) = match mode {
            InvokeMode::Async => (HookVerdict::Pending, Value::Null),
            InvokeMode::Sync => {
                hooks::judge_hook(event.phase, name, &response).map_err(|e| match (e, step) {
                    (
                        Error::HookFailed {
                            phase,
                            hook,
                            message,
                        },
                        Some(step),
                    ) => Error::HookFailed {
                        phase,
                        hook,
                        message: format!("at step {step}: {message}"),
                    },
                    (e, _) => e,
                })?;
                let output = serde_json::from_slice(&response.payload).unwrap_or_else(|_| {
                    Value::String(String::from_utf8_lossy(&response.payload).into_owned())
                });
                (
                    HookVerdict::Pass,
                    safeshift_core::gates::bounds::evidence(output),
                )
            }
        };
        info!(hook = %name, verdict = verdict.as_str(), "hook ran");
        if watched && event.phase == Phase::PostTraffic {
            // The alarms were watched while the hook ran; what fired meanwhile is recorded on the hold.
            self.no_alarm_fired(r, arn).await?;
        }
        Ok(HookRun {
            phase: event.phase,
            hook: Some(name.to_owned()),
            verdict,
            step: r.step,
            output,
        })
    }
}

/// The error an `onRollback` hook is told about, its cause cut to 4 KB.
fn bounded_error(mut error: Value) -> Value {
    if let Some(cause) = error.get("Cause").and_then(Value::as_str) {
        error["Cause"] = Value::String(safeshift_core::gates::bounds::cut(cause, 4_096));
    }
    error
}
