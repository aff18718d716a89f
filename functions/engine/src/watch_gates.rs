//! `watch-gates`: watches a deployment's alarms through every wait once traffic has moved, so that a listed
//! alarm going to ALARM rolls the deployment back within seconds instead of at the end of the bake.
//!
//! A wait (a step's bake, a bake extension) is a `.waitForTaskToken` task of the state machine whose timeout is
//! the bake: its normal end is `States.Timeout`, which the state machine routes on to CheckGates. This function
//! is what that task invokes, and also the target of the EventBridge rule on "CloudWatch Alarm State Change":
//!
//! - `{"bake": {"state": <Rollout>, "taskToken": …, "executionArn": …}}` — the execution must be running this
//!   rollout and hold its alias (`crate::guard`); the task token is registered on the alias's lock item, where
//!   the alarm events find it. A listed alarm that fired since Prepare (recorded on the same item) fails the wait
//!   at once with `AlarmFired`, naming it. A deployment without alarms registers nothing.
//!   Output: `{"watching": [alarm…], "seconds": <bake>}` (Step Functions waits for the token, not for this).
//! - An EventBridge "CloudWatch Alarm State Change" event to ALARM — every running deployment that lists the
//!   alarm gets it recorded on its hold (the first alarm stays) and, when it waits, its task failed with
//!   `AlarmFired` naming the alarm, its reason and when it changed: the state machine's Catch rolls it back. A
//!   deployment between two waits (shifting, checking gates, running a hook) finds the record at its next
//!   shift, wait or release of a hook and fails then. Events for other alarms or other states change nothing.
//!   Output: `{"alarm", "state", "deployments": [{"executionArn", "outcome"}]}`.
//!
//! The two sides write the same item: the wait registers its token only while no alarm is recorded, and the
//! alarm side records before it reads the token, so whichever comes second sees the first.
//!
//! Errors: `InvalidInput`, `ExecutionMismatch`, `AlarmFired`, `Throttled`, `AwsError`.

use safeshift_core::Error;
use safeshift_core::error::ErrorType;
use safeshift_core::gates::alarms::FiredAlarm;
use safeshift_core::rollout::Rollout;
use serde::{Deserialize, Serialize};
use tracing::{Span, info, info_span, warn};

use crate::guard::{self, Scope};
use crate::ports::{AliasLock, ReadExecution, ReportTask, Watch, WatchAlarms};
use crate::runtime::Handler;

/// The EventBridge detail type of an alarm's state change.
pub const ALARM_STATE_CHANGE: &str = "CloudWatch Alarm State Change";

/// What `watch-gates` is handed: a wait starting, or an alarm's state change.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum WatchEvent {
    Bake { bake: Box<BakeEvent> },
    AlarmChange(AlarmChange),
}

/// A wait starting: the state as the state machine holds it, the wait's task token, and the execution.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BakeEvent {
    pub state: Rollout,
    pub task_token: String,
    #[serde(default)]
    pub execution_arn: Option<String>,
}

/// EventBridge's "CloudWatch Alarm State Change" event, as far as the watcher reads it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AlarmChange {
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    /// When EventBridge saw the change (used when the detail carries no timestamp).
    #[serde(default)]
    pub time: Option<String>,
    pub detail: AlarmDetail,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmDetail {
    pub alarm_name: String,
    pub state: AlarmStateDetail,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AlarmStateDetail {
    /// OK, ALARM or INSUFFICIENT_DATA.
    pub value: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub timestamp: Option<String>,
}

/// What became of one deployment that lists the alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AlarmOutcome {
    /// Its wait was failed with `AlarmFired`: it is rolling back.
    Interrupted,
    /// It was not waiting (shifting, checking gates, running a hook): its next step finds the record and fails.
    Recorded,
    /// It no longer holds its alias (it ended, or released it since the lookup).
    NotHeld,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentOutcome {
    pub execution_arn: String,
    pub outcome: AlarmOutcome,
}

/// What `watch-gates` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum WatchReport {
    Bake {
        watching: Vec<String>,
        seconds: u64,
    },
    Alarm {
        alarm: String,
        state: String,
        deployments: Vec<DeploymentOutcome>,
    },
}

pub struct WatchGates<L, E, T> {
    locks: L,
    executions: E,
    tasks: T,
    scope: Scope,
}

impl<L, E, T> Handler for WatchGates<L, E, T>
where
    L: AliasLock + WatchAlarms + 'static,
    E: ReadExecution + 'static,
    T: ReportTask + 'static,
{
    type Event = WatchEvent;
    type Output = WatchReport;
    const EXPECTED: &'static str = "{\"bake\": {\"state\": <rollout>, \"taskToken\": …, \"executionArn\": …}} or a \"CloudWatch Alarm State Change\" event";

    fn span(event: &WatchEvent) -> Span {
        match event {
            WatchEvent::Bake { bake } => {
                let r = &bake.state;
                crate::rollout_span!(
                    "watch_bake",
                    r,
                    step = r.step.map(|s| s + 1),
                    weight = r.percent / 100.0
                )
            }
            WatchEvent::AlarmChange(change) => info_span!(
                "alarm_change",
                alarm = %change.detail.alarm_name,
                state = %change.detail.state.value
            ),
        }
    }

    async fn handle(&self, event: WatchEvent) -> Result<WatchReport, Error> {
        match event {
            WatchEvent::Bake { bake } => self.bake(*bake).await,
            WatchEvent::AlarmChange(change) => self.alarm_changed(change).await,
        }
    }
}

impl<L, E, T> WatchGates<L, E, T>
where
    L: AliasLock + WatchAlarms,
    E: ReadExecution,
    T: ReportTask,
{
    pub fn new(locks: L, executions: E, tasks: T, scope: Scope) -> Self {
        Self {
            locks,
            executions,
            tasks,
            scope,
        }
    }

    async fn bake(&self, event: BakeEvent) -> Result<WatchReport, Error> {
        let BakeEvent {
            state: rollout,
            task_token,
            execution_arn,
        } = event;
        let alarms = rollout.deployment.alarms.clone();
        let report = WatchReport::Bake {
            watching: alarms.clone(),
            seconds: rollout.wait_seconds,
        };
        if alarms.is_empty() {
            return Ok(report);
        }
        let arn = execution_arn.as_deref();
        guard::own_rollout(
            &self.executions,
            &self.locks,
            &self.scope,
            &rollout,
            arn,
            false,
        )
        .await?;
        let arn = arn.unwrap_or_default();
        let key = rollout.deployment.lock_key();
        register_wait(&self.locks, &key, arn, &task_token).await?;
        info!(
            alarms = alarms.len(),
            "watching the alarms through the bake"
        );
        Ok(report)
    }

    async fn alarm_changed(&self, change: AlarmChange) -> Result<WatchReport, Error> {
        let AlarmChange {
            detail_type,
            time,
            detail,
        } = change;
        let mut report = (
            detail.alarm_name.clone(),
            detail.state.value.clone(),
            vec![],
        );
        let done = |(alarm, state, deployments)| WatchReport::Alarm {
            alarm,
            state,
            deployments,
        };
        if detail_type != ALARM_STATE_CHANGE {
            return Err(Error::InvalidInput(safeshift_core::InvalidInput::one(
                "detail-type",
                format!("is `{detail_type}`; the watcher handles `{ALARM_STATE_CHANGE}` events"),
            )));
        }
        // Only a change to ALARM stops a deployment: OK and INSUFFICIENT_DATA change nothing.
        if detail.state.value != "ALARM" {
            return Ok(done(report));
        }
        let changed_at = detail
            .state
            .timestamp
            .or(time)
            .unwrap_or_else(|| crate::rfc3339(crate::unix_now()));
        let fired = FiredAlarm::new(&detail.alarm_name, &detail.state.reason, changed_at);
        let mut first_error = None;
        for watcher in self.locks.watchers(&detail.alarm_name).await? {
            match self
                .interrupt(&watcher.key, &watcher.execution_arn, &fired)
                .await
            {
                Ok(outcome) => {
                    info!(execution = %watcher.execution_arn, ?outcome, "alarm handed to deployment");
                    report.2.push(DeploymentOutcome {
                        execution_arn: watcher.execution_arn,
                        outcome,
                    });
                }
                // One deployment's failure does not keep the alarm from the others; the event is retried for it.
                Err(e) => {
                    warn!(execution = %watcher.execution_arn, error = %e, "could not hand the alarm over");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(done(report)),
        }
    }

    async fn interrupt(
        &self,
        key: &str,
        execution_arn: &str,
        fired: &FiredAlarm,
    ) -> Result<AlarmOutcome, Error> {
        let Some(interrupt) = self.locks.record_fired(key, execution_arn, fired).await? else {
            return Ok(AlarmOutcome::NotHeld);
        };
        let Some(token) = interrupt.task_token else {
            return Ok(AlarmOutcome::Recorded);
        };
        let error = interrupt.fired.error();
        let delivered = self
            .tasks
            .fail_task(&token, ErrorType::AlarmFired.into(), &error.to_string())
            .await?;
        Ok(if delivered {
            AlarmOutcome::Interrupted
        } else {
            AlarmOutcome::Recorded
        })
    }
}

/// Registers `task_token` as the wait `execution_arn` is in on its hold of `key`: `AlarmFired` when a listed
/// alarm already fired (the wait must not start), `ExecutionMismatch` when the execution no longer holds it.
pub async fn register_wait<L: WatchAlarms>(
    locks: &L,
    key: &str,
    execution_arn: &str,
    task_token: &str,
) -> Result<(), Error> {
    match locks.watch(key, execution_arn, task_token).await? {
        Watch::Watching => Ok(()),
        Watch::Fired(fired) => Err(fired.error()),
        Watch::NotHeld => Err(Error::ExecutionMismatch {
            reason: format!("execution {execution_arn} no longer holds alias `{key}`"),
        }),
    }
}
