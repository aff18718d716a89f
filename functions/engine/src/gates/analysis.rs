//! The metric analysis's reading: both versions' Lambda metrics over the step's window, in one batched query.

use safeshift_core::gates::analysis::{self, Window};

use super::{Check, Gate, StepUnderCheck};
use crate::ports::{MetricsQuery, ReadMetrics};

pub struct Analysis;

impl<P: ReadMetrics> Gate<P> for Analysis {
    fn check<'a>(&'a self, ports: &'a P, step: StepUnderCheck<'a>) -> Check<'a> {
        Box::pin(async move {
            let rollout = step.rollout;
            let Some(config) = &rollout.deployment.analysis else {
                return Ok(None);
            };
            if !rollout.is_analysed_now() {
                return Ok(None);
            }
            // `shift-weight` records every step's start; without it, the step's bake is the best guess of its
            // window.
            let started = rollout
                .step_started_at
                .unwrap_or_else(|| step.now.saturating_sub(rollout.bake_seconds));
            let window = Window::for_step(started, step.now, config.metric_delay_seconds);
            let (target, stable) = (
                rollout.alias.target_version.to_string(),
                rollout.alias.stable_version.to_string(),
            );
            let [target, stable] = ports
                .version_metrics(&MetricsQuery {
                    function_name: &rollout.deployment.function_name.name,
                    alias: &rollout.alias.name,
                    versions: [&target, &stable],
                    window,
                    latency: config.needs_latency(),
                })
                .await?;
            Ok(Some(analysis::judge(config, window, target, stable).into()))
        })
    }
}
