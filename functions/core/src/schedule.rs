//! The schedule: every weight the alias takes, in order, each held for its bake. The last step is always the
//! promotion to 100%, held for the deployment's `bakeSeconds`.

use serde::Serialize;

/// The most traffic steps one rollout may take. Each step costs a fixed number of state transitions and history
/// events; this bound keeps the execution far below Step Functions' 25,000-event history limit (`asl` derives the
/// exact worst case from the definition, and the state machine's tests hold it under the limit) and a plan readable.
pub const MAX_TRAFFIC_STEPS: usize = 100;

/// The longest rollout accepted. Longer is almost always a unit mistake (minutes typed as seconds × 60 twice).
pub const MAX_TOTAL_SECONDS: u64 = 48 * 3600;

/// One traffic weight held for a bake time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Share of traffic on the target version, in percent: (0, 100].
    pub percent: f64,
    pub bake_seconds: u64,
}

impl Step {
    pub fn new(percent: f64, bake_seconds: u64) -> Self {
        Self {
            percent,
            bake_seconds,
        }
    }

    /// The weight as Lambda's `AdditionalVersionWeights` takes it: (0, 1].
    pub fn weight(&self) -> f64 {
        self.percent / 100.0
    }

    /// The last step: the alias points at the target with routing cleared.
    pub fn is_promotion(&self) -> bool {
        self.percent >= 100.0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Schedule {
    steps: Vec<Step>,
}

impl Schedule {
    /// The traffic steps followed by the promotion held for `final_bake_seconds`.
    pub fn new(mut traffic_steps: Vec<Step>, final_bake_seconds: u64) -> Self {
        traffic_steps.push(Step::new(100.0, final_bake_seconds));
        Self {
            steps: traffic_steps,
        }
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Steps below 100%.
    pub fn traffic_steps(&self) -> &[Step] {
        &self.steps[..self.steps.len() - 1]
    }

    /// The whole rollout's bake time, in seconds; saturates rather than wrapping for absurd inputs.
    pub fn total_seconds(&self) -> u64 {
        self.steps
            .iter()
            .fold(0u64, |total, s| total.saturating_add(s.bake_seconds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_is_appended_with_the_final_bake() {
        let s = Schedule::new(vec![Step::new(10.0, 300)], 120);
        assert_eq!(s.steps(), [Step::new(10.0, 300), Step::new(100.0, 120)]);
        assert_eq!(s.traffic_steps(), [Step::new(10.0, 300)]);
        assert_eq!(s.total_seconds(), 420);
        assert!(s.steps()[1].is_promotion() && !s.steps()[0].is_promotion());
        assert_eq!(s.steps()[0].weight(), 0.1);
    }

    #[test]
    fn totals_saturate() {
        let s = Schedule::new(vec![Step::new(10.0, u64::MAX)], 5);
        assert_eq!(s.total_seconds(), u64::MAX);
    }
}
