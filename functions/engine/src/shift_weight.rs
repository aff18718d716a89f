//! `shift-weight`: prepares a deployment against the real alias and versions, then moves the alias one step at a
//! time.
//!
//! Input, one of:
//! - `{"prepare": {"deploymentId": "<execution name>", "input": <deployment input>}}` — validates the input,
//!   then checks before any write: the function and alias exist; the alias is not split (`AliasConflict`,
//!   "deployment in progress"); the target version exists, differs from the stable one and is Active with a
//!   successful last update (waiting a bounded time while it is Pending); stable and target share role and
//!   dead-letter config. Returns the [`Rollout`] with the stable version and the alias's revision; writes nothing.
//! - `{"shift": <Rollout>}` — applies the next step of the schedule (the last one promotes: the alias points at
//!   the target with routing cleared) and returns the advanced [`Rollout`]. Every write carries the revision just
//!   read; an alias that does not look exactly as this rollout left it is `AliasConflict` and is never
//!   overwritten. A step whose write already landed is not written again, so retries and redrives are safe.
//!
//! Errors: `InvalidInput`, `ResourceNotFound`, `AliasConflict`, `TargetNotReady`, `IncompatibleVersions`,
//! `Throttled`, `AwsError`.

use std::time::Duration;

use safeshift_core::error::Resource;
use safeshift_core::gates::GateReport;
use safeshift_core::prepare::{self, Readiness, VersionConfig};
use safeshift_core::rollout::{self, Rollout, ShiftDecision};
use safeshift_core::{Deployment, Error};
use serde::Deserialize;
use serde_json::Value;
use tracing::{Span, info, info_span};

use crate::ports::{ReadAlias, ReadVersion, WriteAlias};
use crate::runtime::Handler;

/// How long prepare waits for a Pending target version, and how often it looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyWait {
    pub timeout: Duration,
    pub interval: Duration,
}

impl Default for ReadyWait {
    /// A version still Pending after a minute is stuck, not slow. The wait and prepare's other calls (GetAlias,
    /// the last poll, the stable version: three [`crate::aws::OPERATION_TIMEOUT`]s) stay under shift-weight's
    /// `Timeout` (template.yaml), so prepare ends before its function does; tests/template_check.py checks it.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            interval: Duration::from_secs(2),
        }
    }
}

/// What `shift-weight` is asked to do.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum ShiftWeightEvent {
    Prepare(PrepareEvent),
    Shift(Box<ShiftEvent>),
}

/// The state as the state machine passes it to ShiftWeight: the rollout, and the gates' report on the step just
/// passed (absent before the first step), which the rollout keeps as its record.
#[derive(Debug, Deserialize)]
pub struct ShiftEvent {
    #[serde(flatten)]
    pub rollout: Rollout,
    #[serde(default)]
    pub gates: Option<GateReport>,
}

/// The execution's name and the user's input, as it came: it is validated here, so every problem is reported
/// by field.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrepareEvent {
    pub deployment_id: String,
    pub input: Value,
}

#[derive(Debug, Clone)]
pub struct ShiftWeight<P> {
    ports: P,
    wait: ReadyWait,
}

impl<P: ReadAlias + WriteAlias + ReadVersion + 'static> Handler for ShiftWeight<P> {
    type Event = ShiftWeightEvent;
    type Output = Rollout;
    const EXPECTED: &'static str = "{\"prepare\": …} or {\"shift\": <rollout>}";

    fn span(event: &ShiftWeightEvent) -> Span {
        match event {
            ShiftWeightEvent::Prepare(p) => {
                let field = |name: &str| match p.input.get(name) {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                info_span!(
                    "prepare",
                    deployment_id = %p.deployment_id,
                    function = %field("functionName"),
                    alias = %field("alias"),
                    target = %field("targetVersion"),
                )
            }
            ShiftWeightEvent::Shift(s) => {
                let r = &s.rollout;
                crate::rollout_span!("shift", r, step = r.next_step().map(|s| s + 1))
            }
        }
    }

    async fn handle(&self, event: ShiftWeightEvent) -> Result<Rollout, Error> {
        match event {
            ShiftWeightEvent::Prepare(p) => {
                let deployment = Deployment::from_value(p.input)?;
                self.prepare(p.deployment_id, deployment).await
            }
            ShiftWeightEvent::Shift(event) => {
                let ShiftEvent { mut rollout, gates } = *event;
                if let Some(gates) = gates {
                    rollout.record(&gates);
                }
                self.shift(rollout).await
            }
        }
    }
}

impl<P: ReadAlias + WriteAlias + ReadVersion> ShiftWeight<P> {
    pub fn new(ports: P, wait: ReadyWait) -> Self {
        Self { ports, wait }
    }

    async fn prepare(
        &self,
        deployment_id: String,
        deployment: Deployment,
    ) -> Result<Rollout, Error> {
        let function = deployment.function_name.as_str();
        let alias = match self.ports.get_alias(function, &deployment.alias).await {
            Ok(a) => a,
            Err(Error::ResourceNotFound { .. }) => {
                return Err(self.missing_function_or_alias(&deployment).await);
            }
            Err(e) => return Err(e),
        };
        let stable = prepare::check_alias_before_start(&deployment, &alias)?;
        let target = self
            .wait_until_ready(function, &deployment.target_version.to_string())
            .await?;
        let stable_config = self
            .ports
            .get_version(function, &stable.to_string())
            .await?;
        prepare::check_compatible(&stable_config, &target)?;
        info!(stable = %stable, revision = %alias.revision_id, "prepared");
        Ok(Rollout::prepared(
            deployment_id,
            deployment,
            stable,
            alias.revision_id,
        ))
    }

    /// GetAlias says only "not found"; tell the user which of the two is missing.
    async fn missing_function_or_alias(&self, d: &Deployment) -> Error {
        match self
            .ports
            .get_version(d.function_name.as_str(), "$LATEST")
            .await
        {
            Err(Error::ResourceNotFound { .. }) => Error::ResourceNotFound {
                resource: Resource::Function,
                name: d.function_name.to_string(),
            },
            Err(e) => e,
            Ok(_) => Error::ResourceNotFound {
                resource: Resource::Alias,
                name: format!("{}:{}", d.function_name, d.alias),
            },
        }
    }

    async fn wait_until_ready(
        &self,
        function: &str,
        version: &str,
    ) -> Result<VersionConfig, Error> {
        let deadline = tokio::time::Instant::now() + self.wait.timeout;
        loop {
            let config = self.ports.get_version(function, version).await?;
            match prepare::readiness(&config)? {
                Readiness::Ready => return Ok(config),
                Readiness::NotYet(why)
                    if tokio::time::Instant::now() + self.wait.interval <= deadline =>
                {
                    info!(version, %why, "target version not ready yet; waiting");
                    tokio::time::sleep(self.wait.interval).await;
                }
                Readiness::NotYet(why) => {
                    return Err(Error::TargetNotReady {
                        version: version.to_owned(),
                        reason: format!("still {why} after {} s", self.wait.timeout.as_secs()),
                    });
                }
            }
        }
    }

    async fn shift(&self, rollout: Rollout) -> Result<Rollout, Error> {
        let a = &rollout.alias;
        let alias = self.ports.get_alias(&a.function_name, &a.name).await?;
        match rollout::decide_shift(&rollout, &alias)? {
            ShiftDecision::AlreadyApplied { step } => {
                info!(step = step + 1, "step already applied; no write");
                Ok(rollout.advanced(step, alias.revision_id, crate::unix_now()))
            }
            ShiftDecision::Write { step, update } => {
                let written = self
                    .ports
                    .update_alias(&a.function_name, &a.name, &update, &alias.revision_id)
                    .await?;
                let next = rollout.advanced(step, written.revision_id, crate::unix_now());
                info!(
                    step = step + 1,
                    weight = next.percent / 100.0,
                    promoted = next.promoted,
                    "alias shifted"
                );
                Ok(next)
            }
        }
    }
}
