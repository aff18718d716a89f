//! The metric analysis's reading: both versions' Lambda metrics over the step's window, in one batched query.

use safeshift_core::gates::GateReport;
use safeshift_core::gates::analysis::{self, Look, Window};

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
            if rollout.bake_skipped() {
                let promote = rollout.skip.and_then(|s| s.operation);
                return Ok(Some(analysis::skipped(
                    promote.and_then(|i| rollout.operations.get(i)),
                )));
            }
            // `shift-weight` records every step's start; without it, the step's bake is the best guess of its
            // window.
            let started = rollout
                .step_started_at
                .unwrap_or_else(|| step.now.saturating_sub(rollout.bake_seconds));
            let window = Window::for_step(started, step.now, config.metric_delay_seconds);
            let spent = spent_before(step.previous, config);
            let look = rollout.look(step.now, spent).unwrap_or(Look {
                spent_before: spent,
                ..Look::only(config)
            });
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
            Ok(Some(
                analysis::judge_look(config, window, target, stable, look).into(),
            ))
        })
    }
}

/// What the step's earlier looks spent of the comparison's alpha, from the previous report's analysis evidence.
/// A previous report of the step whose evidence does not say is taken to have spent it all: never more than
/// `1 - confidence` across the looks.
fn spent_before(previous: Option<&GateReport>, config: &analysis::Analysis) -> f64 {
    let Some(report) = previous else {
        return 0.0;
    };
    report
        .result(analysis::GATE)
        .and_then(|r| r.evidence.get("alphaSpent"))
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(1.0 - config.confidence)
}
