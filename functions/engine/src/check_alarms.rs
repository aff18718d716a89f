//! `check-alarms`: the gates of one step — the deployment's CloudWatch alarms and, with an `analysis` block,
//! the target version's own metrics next to the stable version's (the list is in `crate::gates`).
//!
//! Input: the state machine's state: the [`Rollout`], and `gates`, this step's previous [`GateReport`] when the
//! bake was extended (other fields the state machine adds are ignored).
//! Output: a [`GateReport`]: `verdict` `pass`, `fail` (with `error` `AlarmFired`, `AnalysisFailed` or
//! `AnalysisInconclusive`) or `inconclusive` (with `extendSeconds`), and `results`, one per gate that ran, each
//! with its findings and evidence: each alarm's state and reason, each version's counts, rates, p-value and p99s,
//! bounded to fit the state machine's state (`safeshift_core::gates::bounds`: at most 10 alarms, those in ALARM
//! first, reasons cut, every cut marked).
//! With no alarms and no analysis it passes without calling AWS.
//! Errors: `ResourceNotFound` when a listed alarm does not exist (fail closed: a missing alarm is never
//! "healthy"), `InvalidInput`, `Throttled`, `AwsError`.

use safeshift_core::Error;
use safeshift_core::events::LifecycleEvent;
use safeshift_core::gates::{self, GateReport, Verdict};
use safeshift_core::rollout::Rollout;
use serde::Deserialize;
use tracing::{Span, info};

use crate::gates::{Gate, StepUnderCheck};
use crate::ports::{Events, ReadAlarms, ReadMetrics};
use crate::runtime::Handler;

/// The state as the state machine passes it to CheckGates.
#[derive(Debug, Deserialize)]
pub struct CheckEvent {
    #[serde(flatten)]
    pub rollout: Rollout,
    /// The previous report, there only when this step's bake was extended: it counts the extensions. Read in
    /// the handler, not here, so that a report that does not read is the engine's bug (`Internal`), never the
    /// input's, and never a reason to start counting again.
    #[serde(default)]
    pub gates: Option<serde_json::Value>,
}

pub struct CheckAlarms<P> {
    ports: P,
    gates: Vec<Box<dyn Gate<P>>>,
    events: Events,
}

impl<P: ReadAlarms + ReadMetrics> CheckAlarms<P> {
    pub fn new(ports: P) -> Self {
        Self {
            ports,
            gates: crate::gates::all(),
            events: Events::default(),
        }
    }

    /// Publishes each step's verdict: passed (after its last look) or failed (best effort).
    pub fn with_events(self, events: Events) -> Self {
        Self { events, ..self }
    }

    /// Runs the gates on the event's step as of `now` (Unix seconds): the end of the step's metric window, and
    /// publishes the step's verdict when it is news.
    pub async fn check_at(&self, event: CheckEvent, now: u64) -> Result<GateReport, Error> {
        let rollout = &event.rollout;
        let previous: Option<GateReport> = match event.gates {
            None | Some(serde_json::Value::Null) => None,
            Some(g) => Some(serde_json::from_value(g).map_err(|e| {
                Error::Internal(format!("the previous gate report does not read: {e}"))
            })?),
        };
        // Only this step's own earlier report counts (for its extensions and the alpha its looks spent).
        let previous = previous.as_ref().filter(|p| p.step == rollout.step);
        let step = StepUnderCheck {
            rollout,
            now,
            previous,
        };
        let mut results = Vec::new();
        for gate in &self.gates {
            let found = gate.check(&self.ports, step).await?;
            let failed = found.iter().any(|r| r.verdict == Verdict::Fail);
            results.extend(found);
            if failed {
                break;
            }
        }
        let mut report = gates::decide(
            rollout.step,
            results,
            rollout.extensions(),
            previous,
            rollout.next_look(now),
        );
        // A traffic step that passed runs its afterStep hook once, then is judged again. The only way on from a
        // report that asked for it is through the hook, so the step's next report knows it ran, and says so to the
        // ones after it (an approval, a promote judge the step again) — whatever the hook answered.
        report.after_step_ran = previous.is_some_and(|p| p.after_step_due || p.after_step_ran);
        report.after_step_due = rollout.deployment.hooks.after_step.is_some()
            && report.verdict == Verdict::Pass
            && !report.baking
            && !rollout.promoted
            && !report.after_step_ran;
        info!(
            verdict = %report.verdict,
            error = ?report.error,
            extensions = report.extensions,
            evidence = %serde_json::to_string(&report.results).unwrap_or_default(),
            "gates checked: {}",
            report.summary()
        );
        // After an approval, a promote or the afterStep hook the same step is judged again: a pass already said
        // is not said twice (a pass that asked for the afterStep hook was not said: the re-check after it says it).
        let passed_before =
            previous.is_some_and(|p| p.verdict == Verdict::Pass && !p.baking && !p.after_step_due);
        if let Some(e) = LifecycleEvent::judged(rollout, &report)
            && !(passed_before && report.verdict == Verdict::Pass)
            && !report.after_step_due
        {
            self.events.publish(e).await;
        }
        Ok(report)
    }
}

impl<P: ReadAlarms + ReadMetrics + 'static> Handler for CheckAlarms<P> {
    type Event = CheckEvent;
    type Output = GateReport;
    const EXPECTED: &'static str = "a rollout";

    fn span(event: &CheckEvent) -> Span {
        let r = &event.rollout;
        crate::rollout_span!(
            "check_gates",
            r,
            step = r.step.map(|s| s + 1),
            weight = r.percent / 100.0
        )
    }

    async fn handle(&self, event: CheckEvent) -> Result<GateReport, Error> {
        self.check_at(event, crate::unix_now()).await
    }
}
