//! `run-hook`: runs the team's pre- or post-traffic hook.
//!
//! Input: `{"phase": "preTraffic" | "postTraffic" | "approval", "rollout": <Rollout>, "taskToken": "<optional>"}`.
//! The `approval` phase invokes nothing: its state waits with the task token for `safeshift approve`/`reject`.
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

use safeshift_core::rollout::{self, HookEvent, Phase, Rollout};
use safeshift_core::{Error, InvalidInput};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{Instrument, info, info_span};

use crate::ports::{InvokeHook, InvokeMode};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Event {
    phase: Phase,
    rollout: Rollout,
    #[serde(default)]
    task_token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RunHook<P> {
    ports: P,
}

impl<P: InvokeHook> RunHook<P> {
    pub fn new(ports: P) -> Self {
        Self { ports }
    }

    pub async fn handle(&self, event: Value) -> Result<Value, Error> {
        let event: Event = serde_json::from_value(event).map_err(|e| {
            InvalidInput::one(
                "event",
                format!("expected {{\"phase\": …, \"rollout\": …}}: {e}"),
            )
        })?;
        let r = &event.rollout;
        let span = info_span!(
            "run_hook",
            deployment_id = %r.deployment_id,
            function = %r.deployment.function_name,
            alias = %r.deployment.alias,
            phase = %event.phase,
            weight = r.percent / 100.0,
        );
        self.run(event).instrument(span).await
    }

    async fn run(&self, event: Event) -> Result<Value, Error> {
        let d = &event.rollout.deployment;
        let hook = match event.phase {
            Phase::PreTraffic => &d.hooks.pre_traffic,
            Phase::PostTraffic => &d.hooks.post_traffic,
            Phase::Approval => {
                // The state holds the task token until `safeshift approve` or `reject` answers it.
                info!(
                    step = event.rollout.step.map(|s| s + 2),
                    "waiting for approval"
                );
                return Ok(json!({"phase": event.phase, "hook": null, "verdict": "pending"}));
            }
        };
        let Some(hook) = hook else {
            return Ok(json!({"phase": event.phase, "hook": null, "verdict": "skipped"}));
        };
        let hook_event = HookEvent {
            deployment_id: event.rollout.deployment_id.clone(),
            function_name: d.function_name.to_string(),
            alias: d.alias.clone(),
            stable_version: event.rollout.stable_version.to_string(),
            target_version: d.target_version.to_string(),
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
            InvokeMode::Async => "pending",
            InvokeMode::Sync => {
                rollout::judge_hook(event.phase, hook.as_str(), &response)?;
                "pass"
            }
        };
        info!(hook = %hook, verdict, "hook ran");
        Ok(json!({"phase": event.phase, "hook": hook.as_str(), "verdict": verdict}))
    }
}
