//! The alarm gate's reading: every listed alarm's state, metric and composite, across every page.

use safeshift_core::gates::alarms;

use super::{Check, Gate, StepUnderCheck};
use crate::ports::ReadAlarms;

pub struct Alarms;

impl<P: ReadAlarms> Gate<P> for Alarms {
    fn check<'a>(&'a self, ports: &'a P, step: StepUnderCheck<'a>) -> Check<'a> {
        Box::pin(async move {
            let listed = &step.rollout.deployment.alarms;
            if listed.is_empty() {
                return Ok(Vec::new());
            }
            // A release's alarms are shared: judged once for all its targets.
            let found = ports.describe_alarms(listed).await?;
            alarms::judge_during(listed, found, &step.rollout.incident_alarms).map(|r| vec![r])
        })
    }
}
