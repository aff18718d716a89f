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
use safeshift_core::hooks::{self, HookEvent, Phase};
use safeshift_core::rollout::Rollout;
use serde::{Deserialize, Serialize};
use tracing::{Span, info};

use crate::guard::{self, Scope};
use crate::ports::{AliasLock, Events, InvokeHook, InvokeMode, ReadExecution, WatchAlarms};
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

/// What `run-hook` returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HookRun {
    pub phase: Phase,
    pub hook: Option<String>,
    pub verdict: HookVerdict,
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
    E: ReadExecution + 'static,
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

impl<P: InvokeHook, E: ReadExecution, L: AliasLock + WatchAlarms> RunHook<P, E, L> {
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
        let (_, hold) = guard::own_rollout(
            &self.executions,
            &self.locks,
            &self.scope,
            &event.rollout,
            arn,
            false,
        )
        .await?;
        let d = &event.rollout.deployment;
        let watched = !d.alarms.is_empty();
        let done = |hook: Option<String>, verdict| HookRun {
            phase: event.phase,
            hook,
            verdict,
        };
        let hook = match event.phase {
            Phase::PreTraffic => &d.hooks.pre_traffic,
            Phase::PostTraffic => &d.hooks.post_traffic,
            Phase::Approval => {
                // The state holds the task token until `safeshift approve` or `reject` answers it, or an alarm.
                if let (true, Some(token)) = (watched, &event.task_token) {
                    let wait = crate::watch_gates::Wait {
                        key: d.lock_key(),
                        execution_arn: arn.unwrap_or_default(),
                        task_token: token,
                        since: event.entered_at.as_deref(),
                    };
                    crate::watch_gates::register_or_degrade(&self.locks, &wait).await?;
                }
                info!(
                    step = event.rollout.step.map(|s| s + 2),
                    "waiting for approval"
                );
                self.events
                    .publish(LifecycleEvent::approval_pending(&event.rollout, arn))
                    .await;
                return Ok(done(None, HookVerdict::Pending));
            }
        };
        let Some(hook) = hook else {
            // No hook to run, but the promotion's last moment to act on an alarm recorded since the final check:
            // the hold was just read.
            if watched && event.phase == Phase::PostTraffic {
                guard::no_alarm_fired(hold.as_ref())?;
            }
            return Ok(done(None, HookVerdict::Skipped));
        };
        let a = &event.rollout.alias;
        let hook_event = HookEvent {
            deployment_id: event.rollout.deployment_id.clone(),
            function_name: a.function_name.clone(),
            alias: a.name.clone(),
            stable_version: a.stable_version.to_string(),
            target_version: a.target_version.to_string(),
            phase: event.phase,
            percent: event.rollout.percent,
            task_token: event.task_token.clone(),
        };
        let payload =
            serde_json::to_vec(&hook_event).map_err(|e| Error::Internal(e.to_string()))?;
        let mode = if event.task_token.is_some() {
            InvokeMode::Async
        } else {
            InvokeMode::Sync
        };
        let response = self.ports.invoke(hook.as_str(), payload, mode).await?;
        let verdict = match mode {
            InvokeMode::Async => HookVerdict::Pending,
            InvokeMode::Sync => {
                hooks::judge_hook(event.phase, hook.as_str(), &response)?;
                HookVerdict::Pass
            }
        };
        info!(hook = %hook, verdict = verdict.as_str(), "hook ran");
        if watched && event.phase == Phase::PostTraffic {
            // The alarms were watched while the hook ran; what fired meanwhile is recorded on the hold.
            self.no_alarm_fired(&event.rollout, arn).await?;
        }
        Ok(done(Some(hook.to_string()), verdict))
    }
}
