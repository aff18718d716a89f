//! `check-alarms`: the alarm gate.
//!
//! Input: the [`Rollout`] (fields the state machine adds beside it are ignored).
//! Output: an [`AlarmVerdict`]: `verdict` `pass` or `fail`, the failing alarms by name, and each alarm's state,
//! reason and timestamp as evidence. With no alarms configured it passes without calling AWS.
//! Errors: `ResourceNotFound` when a listed alarm does not exist (fail closed: a missing alarm is never
//! "healthy"), `InvalidInput`, `Throttled`, `AwsError`.

use safeshift_core::rollout::{self, AlarmVerdict, Rollout};
use safeshift_core::{Error, InvalidInput};
use serde_json::Value;
use tracing::{Instrument, info, info_span};

use crate::ports::ReadAlarms;

#[derive(Debug, Clone)]
pub struct CheckAlarms<P> {
    ports: P,
}

impl<P: ReadAlarms> CheckAlarms<P> {
    pub fn new(ports: P) -> Self {
        Self { ports }
    }

    pub async fn handle(&self, event: Value) -> Result<Value, Error> {
        let rollout: Rollout = serde_json::from_value(event)
            .map_err(|e| InvalidInput::one("event", format!("expected a rollout: {e}")))?;
        let span = info_span!(
            "check_alarms",
            deployment_id = %rollout.deployment_id,
            function = %rollout.deployment.function_name,
            alias = %rollout.deployment.alias,
            step = rollout.step.map(|s| s + 1),
            weight = rollout.percent / 100.0,
        );
        let verdict = self.check(&rollout).instrument(span).await?;
        serde_json::to_value(&verdict).map_err(|e| Error::Internal(e.to_string()))
    }

    async fn check(&self, rollout: &Rollout) -> Result<AlarmVerdict, Error> {
        let listed = &rollout.deployment.alarms;
        let found = if listed.is_empty() {
            Vec::new()
        } else {
            self.ports.describe_alarms(listed).await?
        };
        let verdict = rollout::judge_alarms(listed, found)?;
        info!(verdict = %verdict.verdict, failing = ?verdict.failing, "alarms checked");
        Ok(verdict)
    }
}
