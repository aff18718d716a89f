//! The gates `check-alarms` runs on each step, as a list of one shape: each gate reads what it needs through the
//! ports and answers a [`GateResult`], or nothing when the deployment does not use it at this step. A new gate
//! is one file here (its reading; its judgement lives in `safeshift_core::gates`) and one line in [`all`].

mod alarms;
mod analysis;

use std::future::Future;
use std::pin::Pin;

use safeshift_core::Error;
use safeshift_core::gates::{GateReport, GateResult};
use safeshift_core::rollout::Rollout;

use crate::ports::{ReadAlarms, ReadMetrics};

/// The step a gate judges.
#[derive(Debug, Clone, Copy)]
pub struct StepUnderCheck<'a> {
    pub rollout: &'a Rollout,
    /// The time of the check, in Unix seconds: the end of the step's metric window.
    pub now: u64,
    /// The report of this same step's previous look or extension, if any.
    pub previous: Option<&'a GateReport>,
}

/// What a gate's check returns: its results — none when the deployment does not use it at this step, one per
/// target when it judges each target of a release on its own (the metric analysis).
pub type Check<'a> = Pin<Box<dyn Future<Output = Result<Vec<GateResult>, Error>> + Send + 'a>>;

/// One gate, over the ports `P` it reads through.
pub trait Gate<P>: Send + Sync {
    fn check<'a>(&'a self, ports: &'a P, step: StepUnderCheck<'a>) -> Check<'a>;
}

/// Every gate, in the order they run: the cheap, decisive alarm read first; a failing gate ends the check, so a
/// step whose alarm fires does not also wait on a metric query.
pub fn all<P: ReadAlarms + ReadMetrics>() -> Vec<Box<dyn Gate<P>>> {
    vec![Box::new(alarms::Alarms), Box::new(analysis::Analysis)]
}
