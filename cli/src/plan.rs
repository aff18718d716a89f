//! The human-readable form of a plan.

use std::fmt::Write;
use std::time::Duration;

use safeshift_core::plan::USD_PER_TRANSITION;
use safeshift_core::{Deployment, Plan};

fn duration(seconds: u64) -> String {
    humantime::format_duration(Duration::from_secs(seconds)).to_string()
}

pub fn render_text(plan: &Plan, deployment: &Deployment) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    match (&plan.release, plan.targets.as_slice()) {
        (None, [_]) => {
            let _ = writeln!(
                out,
                "Deployment of {}:{} to version {} ({})",
                plan.function_name, plan.alias, plan.target_version, plan.strategy
            );
        }
        (release, targets) => {
            let _ = writeln!(
                out,
                "Release {} of {} targets ({}), every alias at the same weight after each step:",
                release.as_deref().unwrap_or("(unnamed)"),
                targets.len(),
                plan.strategy
            );
            for t in targets {
                let _ = writeln!(out, "  {} to version {}", t.label(), t.target_version);
            }
        }
    }
    if let Some(e) = &deployment.emergency {
        let _ = writeln!(
            out,
            "EMERGENCY ({}): all at once, no bake, no metric analysis, no approval gate; alarms already in ALARM do not block it",
            e.reason.as_deref().unwrap_or_default()
        );
    } else if deployment.incident_fix {
        let _ = writeln!(
            out,
            "Incident fix: alarms already in ALARM do not judge it until they leave ALARM; its own metrics do"
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:>4}  {:>8}  {:>10}  {:>12}",
        "step", "weight", "bake", "elapsed"
    );
    let mut elapsed = 0u64;
    for (i, step) in plan.steps.iter().enumerate() {
        elapsed = elapsed.saturating_add(step.bake_seconds);
        let note = if step.is_promotion() {
            "  promotion"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{:>4}  {:>7}%  {:>10}  {:>12}{note}",
            i + 1,
            step.percent,
            duration(step.bake_seconds),
            duration(elapsed),
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Total: {} ({} s)",
        duration(plan.total_seconds),
        plan.total_seconds
    );
    let gates = gates(deployment);
    let _ = writeln!(
        out,
        "Gates: {}",
        if gates.is_empty() {
            "none (no alarms, no hooks)".to_owned()
        } else {
            gates.join("; ")
        }
    );
    let _ = writeln!(
        out,
        "State transitions: {} (about ${:.6} at ${} per 1,000){}{}",
        plan.state_transitions,
        plan.estimated_cost_usd,
        USD_PER_TRANSITION * 1000.0,
        if plan.analysis_looks > 0 {
            format!(", {} metric analysis looks included", plan.analysis_looks)
        } else {
            String::new()
        },
        if plan.targets.len() > 1 {
            format!(
                "; the same for {} targets: each step shifts them all in one task",
                plan.targets.len()
            )
        } else {
            String::new()
        }
    );
    if let (Some(transitions), Some(seconds)) = (plan.max_state_transitions, plan.max_total_seconds)
    {
        let _ = writeln!(
            out,
            "At most, every analysed step extended for want of traffic: {transitions} transitions (about ${:.6}), {}",
            safeshift_core::plan::cost_usd(transitions),
            duration(seconds)
        );
    }
    out
}

fn gates(d: &Deployment) -> Vec<String> {
    let mut gates = Vec::new();
    if !d.alarms.is_empty() {
        gates.push(format!("alarms {}", d.alarms.join(", ")));
    }
    for (field, hook) in d.hooks.points() {
        if let Some(h) = hook {
            gates.push(format!("{} hook {h}", field.trim_start_matches("hooks.")));
        }
    }
    if let Some(step) = d.approval_step() {
        gates.push(format!("manual approval before step {}", step + 1));
    }
    if let Some(a) = &d.analysis {
        let mut checks = Vec::new();
        if let Some(r) = a.max_error_rate {
            checks.push(format!("error rate <= {}%", r * 100.0));
        }
        if a.compare_to_stable {
            checks.push(format!(
                "not significantly worse than stable ({}% confidence)",
                a.confidence * 100.0
            ));
        }
        if let Some(r) = a.max_p99_latency_increase {
            checks.push(format!("p99 <= stable's +{}%", r * 100.0));
        }
        gates.push(format!(
            "metric analysis: {}, no new throttles; looked at every {} s while a step bakes, on its own traffic ({} s late); needs {} invocations per step, up to {} extension(s), then {}",
            checks.join(", "),
            a.interval_seconds,
            a.metric_delay_seconds,
            a.min_invocations,
            a.max_extensions,
            match a.on_inconclusive {
                safeshift_core::gates::analysis::OnInconclusive::Fail => "roll back",
                safeshift_core::gates::analysis::OnInconclusive::Pass => "go on",
            }
        ));
    }
    gates
}
