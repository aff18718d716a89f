//! What a deployment will do and cost before it starts: its schedule, its duration, and the state transitions
//! Step Functions will bill for it.

use serde::Serialize;

use crate::deployment::Deployment;
use crate::schedule::Step;
use crate::strategy::Strategy;

/// Step Functions Standard list price: $0.025 per 1,000 state transitions (before the monthly free tier).
pub const USD_PER_TRANSITION: f64 = 0.025 / 1000.0;

/// How many states the rollout state machine enters, by what drives the count. Standard workflows bill one
/// transition per state entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransitionModel {
    /// States entered once per schedule step, the promotion included.
    pub per_step: u64,
    /// States entered once per configured hook.
    pub per_hook: u64,
    /// States entered once per execution whatever the input.
    pub fixed: u64,
}

impl TransitionModel {
    /// The shape the rollout state machine is designed to have until `statemachine/rollout.asl.json` exists
    /// and the count is derived from it: per step `ShiftWeight` (Task, which also prepares on the first step)
    /// -> `Bake` (Wait) -> `CheckGates` (Task) -> `NextStep` (Choice) = 4; one `RunHook` Task per hook; and the
    /// final `Succeed`.
    pub const DESIGNED: Self = Self {
        per_step: 4,
        per_hook: 1,
        fixed: 1,
    };

    pub fn transitions(&self, deployment: &Deployment) -> u64 {
        let steps = deployment.schedule().steps().len() as u64;
        let hooks = deployment.hooks.count() as u64;
        self.fixed + self.per_step * steps + self.per_hook * hooks
    }
}

/// A deployment's plan, as `safeshift plan` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub function_name: String,
    pub alias: String,
    pub target_version: String,
    pub strategy: Strategy,
    pub steps: Vec<Step>,
    pub total_seconds: u64,
    pub state_transitions: u64,
    pub estimated_cost_usd: f64,
}

impl Plan {
    pub fn new(deployment: &Deployment, model: &TransitionModel) -> Self {
        let transitions = model.transitions(deployment);
        Self {
            function_name: deployment.function_name.to_string(),
            alias: deployment.alias.clone(),
            target_version: deployment.target_version.to_string(),
            strategy: deployment.strategy.clone(),
            steps: deployment.schedule().steps().to_vec(),
            total_seconds: deployment.schedule().total_seconds(),
            state_transitions: transitions,
            estimated_cost_usd: cost_usd(transitions),
        }
    }
}

/// Rounded to a nano-dollar so that the printed figure is the decimal a person would compute.
fn cost_usd(transitions: u64) -> f64 {
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

    #[test]
    fn designed_model_counts_steps_hooks_and_the_end() {
        let d = Deployment::parse(
            r#"{"functionName":"f","alias":"live","targetVersion":"2","strategy":"Canary10Percent5Minutes",
                "hooks":{"preTraffic":"smoke"}}"#,
        )
        .unwrap();
        // 2 steps x 4 + 1 hook + Succeed
        assert_eq!(TransitionModel::DESIGNED.transitions(&d), 10);
    }
}
