//! `check-alarms`: the gates of one step — the deployment's CloudWatch alarms and, with an `analysis` block,
//! the target version's own metrics next to the stable version's.
//!
//! Input: the state machine's state: the [`Rollout`], and `gates`, this step's previous [`GateReport`] when the
//! bake was extended (other fields the state machine adds are ignored).
//! Output: a [`GateReport`]: `verdict` `pass`, `fail` (with `error` `AlarmFired`, `AnalysisFailed` or
//! `AnalysisInconclusive`) or `inconclusive` (with `extendSeconds`), and the evidence: each alarm's state and
//! reason, each version's counts, rates, p-value and p99s, and a finding per check. With no alarms and no
//! analysis it passes without calling AWS.
//! Errors: `ResourceNotFound` when a listed alarm does not exist (fail closed: a missing alarm is never
//! "healthy"), `InvalidInput`, `Throttled`, `AwsError`.

use safeshift_core::analysis::{self, AnalysisEvidence, Window};
use safeshift_core::rollout::{self, GateReport, Rollout};
use safeshift_core::{Error, InvalidInput};
use serde_json::Value;
use tracing::{Instrument, info, info_span};

use crate::ports::{MetricsQuery, ReadAlarms, ReadMetrics};

#[derive(Debug, Clone)]
pub struct CheckAlarms<P> {
    ports: P,
}

impl<P: ReadAlarms + ReadMetrics> CheckAlarms<P> {
    pub fn new(ports: P) -> Self {
        Self { ports }
    }

    pub async fn handle(&self, event: Value) -> Result<Value, Error> {
        self.handle_at(event, crate::unix_now()).await
    }

    /// As [`Self::handle`], judging the metrics as of `now` (Unix seconds).
    pub async fn handle_at(&self, mut event: Value, now: u64) -> Result<Value, Error> {
        // The previous report is only there when this step's bake was extended; it counts the extensions, so a
        // report that does not read is a bug to surface, never a reason to start counting again.
        let previous: Option<GateReport> =
            match event.as_object_mut().and_then(|o| o.remove("gates")) {
                None | Some(Value::Null) => None,
                Some(g) => Some(serde_json::from_value(g).map_err(|e| {
                    Error::Internal(format!("the previous gate report does not read: {e}"))
                })?),
            };
        let rollout: Rollout = serde_json::from_value(event)
            .map_err(|e| InvalidInput::one("event", format!("expected a rollout: {e}")))?;
        let span = info_span!(
            "check_gates",
            deployment_id = %rollout.deployment_id,
            function = %rollout.deployment.function_name,
            alias = %rollout.deployment.alias,
            step = rollout.step.map(|s| s + 1),
            weight = rollout.percent / 100.0,
        );
        let report = self
            .check(&rollout, previous.as_ref(), now)
            .instrument(span)
            .await?;
        serde_json::to_value(&report).map_err(|e| Error::Internal(e.to_string()))
    }

    async fn check(
        &self,
        rollout: &Rollout,
        previous: Option<&GateReport>,
        now: u64,
    ) -> Result<GateReport, Error> {
        let listed = &rollout.deployment.alarms;
        let found = if listed.is_empty() {
            Vec::new()
        } else {
            self.ports.describe_alarms(listed).await?
        };
        let alarms = rollout::judge_alarms(listed, found)?;
        let steps = rollout.deployment.schedule().steps();
        let observed = rollout
            .step
            .is_none_or(|s| steps.get(s).is_none_or(analysis::is_analysed));
        let analysis = match &rollout.deployment.analysis {
            Some(config) if alarms.failing.is_empty() && observed => {
                Some(self.analyse(rollout, config, now).await?)
            }
            _ => None,
        };
        let report = rollout::decide_gates(rollout, alarms, analysis, previous);
        info!(
            verdict = %report.verdict,
            error = ?report.error,
            extensions = report.extensions,
            evidence = %serde_json::to_string(&report.analysis).unwrap_or_default(),
            "gates checked: {}",
            report.summary()
        );
        Ok(report)
    }

    async fn analyse(
        &self,
        rollout: &Rollout,
        config: &analysis::Analysis,
        now: u64,
    ) -> Result<AnalysisEvidence, Error> {
        // `shift-weight` records every step's start; without it, the step's bake is the best guess of its window.
        let started = rollout
            .step_started_at
            .unwrap_or_else(|| now.saturating_sub(rollout.bake_seconds));
        let window = Window::for_step(started, now, config.metric_delay_seconds);
        let target = rollout.deployment.target_version.to_string();
        let stable = rollout.stable_version.to_string();
        let [target, stable] = self
            .ports
            .version_metrics(&MetricsQuery {
                function_name: &rollout.deployment.function_name.name,
                alias: &rollout.deployment.alias,
                versions: [&target, &stable],
                window,
                latency: config.needs_latency(),
            })
            .await?;
        Ok(analysis::judge(config, window, target, stable))
    }
}
