//! The metric analysis's reading: both versions' Lambda metrics over the step's window, in one batched query —
//! for each target of a release on its own, so one target's bad version fails the whole release, and its result
//! names it (`evidence.targetAlias`, and its findings lead with `function:alias`).

use safeshift_core::alias::AliasTarget;
use safeshift_core::gates::analysis::{self, Look, Window};
use safeshift_core::gates::{GateReport, GateResult};

use super::{Check, Gate, StepUnderCheck};
use crate::ports::{MetricsQuery, ReadMetrics};

pub struct Analysis;

impl<P: ReadMetrics> Gate<P> for Analysis {
    fn check<'a>(&'a self, ports: &'a P, step: StepUnderCheck<'a>) -> Check<'a> {
        Box::pin(async move {
            let rollout = step.rollout;
            let Some(config) = &rollout.deployment.analysis else {
                return Ok(Vec::new());
            };
            if !rollout.is_analysed_now() {
                return Ok(Vec::new());
            }
            if rollout.bake_skipped() {
                let promote = rollout.skip.and_then(|s| s.operation);
                return Ok(vec![analysis::skipped(
                    promote.and_then(|i| rollout.operations.get(i)),
                )]);
            }
            // `shift-weight` records every step's start; without it, the step's bake is the best guess of its
            // window.
            let started = rollout
                .step_started_at
                .unwrap_or_else(|| step.now.saturating_sub(rollout.bake_seconds));
            let window = Window::for_step(started, step.now, config.metric_delay_seconds);
            // A release's results name their target; a single deployment's read as they always have.
            let named = rollout.deployment.is_release();
            // Several targets are several comparisons: each gets its share of the alpha (Bonferroni), so a
            // healthy release is refused no more often than a healthy single deployment.
            let share = rollout.aliases.len() as f64;
            let judged = crate::each(
                rollout.deployment.targets.iter().zip(&rollout.aliases),
                |(t, a)| async move {
                    let label = named.then(|| t.label());
                    let spent = spent_before(step.previous, config, label.as_deref(), share);
                    let mut look = rollout.look(step.now, spent).unwrap_or(Look {
                        spent_before: spent,
                        ..Look::only(config)
                    });
                    look.spendable /= share;
                    let result =
                        judge(ports, &t.function_name.name, a, config, window, look).await?;
                    Ok(match label {
                        Some(label) => named_result(result, &label),
                        None => result,
                    })
                },
            )
            .await;
            judged.into_iter().collect()
        })
    }
}

/// One alias's look: its target and stable versions' metrics, read in one batched query, judged.
async fn judge<P: ReadMetrics>(
    ports: &P,
    function_name: &str,
    a: &AliasTarget,
    config: &analysis::Analysis,
    window: Window,
    look: Look,
) -> Result<GateResult, safeshift_core::Error> {
    let (target, stable) = (a.target_version.to_string(), a.stable_version.to_string());
    let [target, stable] = ports
        .version_metrics(&MetricsQuery {
            function_name,
            alias: &a.name,
            versions: [&target, &stable],
            window,
            latency: config.needs_latency(),
        })
        .await?;
    Ok(analysis::judge_look(config, window, target, stable, look).into())
}

/// A release target's result: its evidence and every finding name the target.
fn named_result(mut result: GateResult, label: &str) -> GateResult {
    if let serde_json::Value::Object(evidence) = &mut result.evidence {
        // `target` is already the target version's metrics.
        evidence.insert("targetAlias".into(), label.into());
    }
    for finding in &mut result.findings {
        *finding = format!("{label}: {finding}");
    }
    result
}

/// What the step's earlier looks spent of the comparison's alpha, from the previous report's analysis evidence
/// (a release's: the evidence of `target`). A previous report of the step whose evidence does not say is taken to
/// have spent it all: never more than `1 - confidence` across the looks (a release's target: its `share` of it).
fn spent_before(
    previous: Option<&GateReport>,
    config: &analysis::Analysis,
    target: Option<&str>,
    share: f64,
) -> f64 {
    let Some(report) = previous else {
        return 0.0;
    };
    report
        .results
        .iter()
        .filter(|r| r.gate == analysis::GATE)
        .find(|r| {
            r.evidence
                .get("targetAlias")
                .and_then(serde_json::Value::as_str)
                == target
        })
        .and_then(|r| r.evidence.get("alphaSpent"))
        .and_then(serde_json::Value::as_f64)
        .unwrap_or((1.0 - config.confidence) / share)
}
