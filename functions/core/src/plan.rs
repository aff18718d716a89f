//! What a deployment will do and cost before it starts: its schedule, its duration, and the state transitions
//! Step Functions will bill for it.

use serde::Serialize;

use crate::asl::TransitionModel;
use crate::deployment::Deployment;
use crate::schedule::Step;
use crate::strategy::Strategy;

/// Step Functions Standard list price: $0.025 per 1,000 state transitions (before the monthly free tier).
pub const USD_PER_TRANSITION: f64 = 0.025 / 1000.0;

/// A deployment's plan, as `safeshift plan` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// The first target's function, alias and version (a single deployment's only one).
    pub function_name: String,
    pub alias: String,
    pub target_version: String,
    /// Every target the deployment moves: each step shifts them all in one task, so the transitions and their
    /// cost are a single deployment's, whatever their number.
    pub targets: Vec<crate::deployment::Target>,
    pub strategy: Strategy,
    pub steps: Vec<Step>,
    pub total_seconds: u64,
    /// Transitions when every gate passes at its first check (an analysed step's every look included).
    pub state_transitions: u64,
    /// With metric analysis: how many times the steps' metrics are looked at when every look passes.
    #[serde(skip_serializing_if = "is_zero")]
    pub analysis_looks: u64,
    pub estimated_cost_usd: f64,
    /// With metric analysis: the most, every step extended `maxExtensions` times for want of traffic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_state_transitions: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_total_seconds: Option<u64>,
}

impl Plan {
    pub fn new(deployment: &Deployment, model: &TransitionModel) -> Self {
        let steps = deployment.schedule().steps();
        let analysis = deployment.analysis.as_ref();
        let looks = crate::gates::analysis::interim_looks(deployment.schedule(), analysis);
        let hooks = model.hook_transitions(
            steps.len(),
            deployment.hooks.before_step.is_some(),
            deployment.hooks.after_step.is_some(),
        );
        let transitions =
            model.transitions(steps.len(), deployment.approval.is_some(), 0, looks) + hooks;
        let extensions = analysis.map(|a| a.max_extensions);
        let analysed = steps
            .iter()
            .filter(|s| crate::gates::analysis::is_analysed(s))
            .count() as u64;
        let max_state_transitions = extensions.map(|e| {
            model.transitions(
                steps.len(),
                deployment.approval.is_some(),
                analysed * u64::from(e),
                looks,
            ) + hooks
        });
        let max_total_seconds = extensions
            .map(|e| crate::gates::analysis::longest_seconds(deployment.schedule(), analysis, e));
        Self {
            release: deployment.release.clone(),
            function_name: deployment.primary().function_name.to_string(),
            alias: deployment.primary().alias.clone(),
            target_version: deployment.primary().target_version.to_string(),
            targets: deployment.targets.clone(),
            strategy: deployment.strategy.clone(),
            steps: deployment.schedule().steps().to_vec(),
            total_seconds: crate::gates::analysis::total_seconds(deployment.schedule(), analysis),
            analysis_looks: if analysis.is_some() {
                looks + analysed
            } else {
                0
            },
            state_transitions: transitions,
            estimated_cost_usd: cost_usd(transitions),
            max_state_transitions,
            max_total_seconds,
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Rounded to a nano-dollar so that the printed figure is the decimal a person would compute.
pub fn cost_usd(transitions: u64) -> f64 {
    (transitions as f64 * USD_PER_TRANSITION * 1e9).round() / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_the_list_price_per_transition() {
        assert_eq!(cost_usd(9), 0.000225);
        assert_eq!(cost_usd(1000), 0.025);
        assert_eq!(cost_usd(0), 0.0);
    }
}
