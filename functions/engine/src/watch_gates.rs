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
//! An alarm event is acted on only when CloudWatch bears it out (DescribeAlarms: the alarm exists and is in
//! ALARM, or changed again since the event's time): a forged or mistaken event stops nothing.
//!
//! Errors: `InvalidInput`, `ExecutionMismatch`, `AlarmFired`, `Throttled`, `AwsError`.

use safeshift_core::Error;
use safeshift_core::error::ErrorType;
use safeshift_core::gates::alarms::FiredAlarm;
use safeshift_core::rollout::Rollout;
use serde::{Deserialize, Serialize};
use tracing::{Span, info, info_span, warn};

use crate::guard::{self, Scope};
use crate::ports::{AliasLock, ReadAlarms, ReadExecution, ReportTask, Watch, WatchAlarms};
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
    /// `$$.State.EnteredTime`: orders the execution's waits, so a late registration never replaces a later one.
    #[serde(default)]
    pub entered_at: Option<String>,
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
        /// Why this wait is not watched (AWS failed to answer while registering it): the alarms are still read
        /// by the check at its end, and an alarm recorded meanwhile still stops the next step.
        #[serde(skip_serializing_if = "Option::is_none")]
        unwatched: Option<String>,
    },
    Alarm {
        alarm: String,
        state: String,
        deployments: Vec<DeploymentOutcome>,
    },
}

pub struct WatchGates<L, E, T, W> {
    locks: L,
    executions: E,
    tasks: T,
    /// Reads the alarm an event names: an event is acted on only if CloudWatch bears it out.
    alarms: W,
    scope: Scope,
}

impl<L, E, T, W> Handler for WatchGates<L, E, T, W>
where
    L: AliasLock + WatchAlarms + 'static,
    E: ReadExecution + 'static,
    T: ReportTask + 'static,
    W: ReadAlarms + 'static,
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

impl<L, E, T, W> WatchGates<L, E, T, W>
where
    L: AliasLock + WatchAlarms,
    E: ReadExecution,
    T: ReportTask,
    W: ReadAlarms,
{
    pub fn new(locks: L, executions: E, tasks: T, alarms: W, scope: Scope) -> Self {
        Self {
            locks,
            executions,
            tasks,
            alarms,
            scope,
        }
    }

    /// Whether CloudWatch bears out an event's claim that `alarm` went to ALARM at `changed_ms` (Unix ms): it is
    /// in ALARM now, or its state changed again since (it went back). An alarm that does not exist, or that has
    /// been in another state since before the claimed change, did not fire then: the event is forged or wrong,
    /// and acting on it would roll back deployments that nothing stopped. `Err` says why it is not.
    async fn confirmed(&self, alarm: &str, changed_ms: u64) -> Result<Result<(), String>, Error> {
        let found = self.alarms.describe_alarms(&[alarm.to_owned()]).await?;
        let Some(a) = found.iter().find(|a| a.name == alarm) else {
            return Ok(Err(format!("alarm `{alarm}` does not exist")));
        };
        if a.state == "ALARM" {
            return Ok(Ok(()));
        }
        let since = a.updated_at.as_deref().and_then(unix_millis);
        match since {
            Some(since) if since > changed_ms => Ok(Ok(())),
            _ => Ok(Err(format!(
                "alarm `{alarm}` is {} since {}, not changed after the event's ALARM",
                a.state,
                a.updated_at.as_deref().unwrap_or("an unknown time")
            ))),
        }
    }

    async fn bake(&self, event: BakeEvent) -> Result<WatchReport, Error> {
        let BakeEvent {
            state: rollout,
            task_token,
            entered_at,
            execution_arn,
        } = event;
        let alarms = rollout.deployment.alarms.clone();
        let seconds = rollout.wait_seconds;
        if alarms.is_empty() {
            return Ok(WatchReport::Bake {
                watching: alarms,
                seconds,
                unwatched: None,
            });
        }
        let arn = execution_arn.as_deref();
        let registered = async {
            // Unverified, nothing is registered; a transient failure to verify leaves the wait unwatched.
            if let Err(e) = guard::own_rollout(
                &self.executions,
                &self.locks,
                &self.scope,
                &rollout,
                arn,
                false,
            )
            .await
            {
                return degraded(e);
            }
            let wait = Wait {
                key: rollout.deployment.lock_key(),
                execution_arn: arn.unwrap_or_default(),
                task_token: &task_token,
                since: entered_at.as_deref(),
            };
            register_or_degrade(&self.locks, &wait).await
        }
        .await?;
        info!(
            alarms = alarms.len(),
            watched = registered.is_none(),
            "the bake's alarms"
        );
        Ok(WatchReport::Bake {
            watching: if registered.is_none() { alarms } else { vec![] },
            seconds,
            unwatched: registered,
        })
    }

    async fn alarm_changed(&self, change: AlarmChange) -> Result<WatchReport, Error> {
        if change.detail_type != ALARM_STATE_CHANGE {
            return Err(Error::InvalidInput(safeshift_core::InvalidInput::one(
                "detail-type",
                format!(
                    "is `{}`; the watcher handles `{ALARM_STATE_CHANGE}` events",
                    change.detail_type
                ),
            )));
        }
        let deployments = self.hand_over(&change).await?;
        Ok(WatchReport::Alarm {
            alarm: change.detail.alarm_name,
            state: change.detail.state.value,
            deployments,
        })
    }

    /// Hands the change to every deployment that lists the alarm: none unless it went to ALARM and CloudWatch
    /// bears it out. One deployment's failure does not keep the alarm from the others; the event fails after
    /// them all, and is delivered again for it.
    async fn hand_over(&self, change: &AlarmChange) -> Result<Vec<DeploymentOutcome>, Error> {
        let detail = &change.detail;
        // Only a change to ALARM stops a deployment: OK and INSUFFICIENT_DATA change nothing.
        if detail.state.value != "ALARM" {
            return Ok(Vec::new());
        }
        // When it changed: the detail's timestamp, else the event's time; a time that does not read is now (an
        // event is never dropped for its timestamp).
        let (changed_at, changed_ms) = [detail.state.timestamp.as_deref(), change.time.as_deref()]
            .into_iter()
            .flatten()
            .find_map(|t| unix_millis(t).map(|ms| (t.to_owned(), ms)))
            .unwrap_or_else(|| {
                let now = crate::unix_now();
                (crate::rfc3339(now), now.saturating_mul(1000))
            });
        if let Err(why) = self.confirmed(&detail.alarm_name, changed_ms).await? {
            warn!(reason = %why, "an alarm event CloudWatch does not bear out: ignored");
            return Ok(Vec::new());
        }
        let fired = FiredAlarm::new(&detail.alarm_name, &detail.state.reason, changed_at);
        let (mut deployments, mut first_error) = (Vec::new(), None);
        for watcher in self.locks.watchers(&detail.alarm_name).await? {
            match self
                .interrupt(
                    &watcher.key,
                    &watcher.execution_arn,
                    &fired,
                    changed_ms / 1000,
                )
                .await
            {
                Ok(outcome) => {
                    info!(execution = %watcher.execution_arn, ?outcome, "alarm handed to deployment");
                    deployments.push(DeploymentOutcome {
                        execution_arn: watcher.execution_arn,
                        outcome,
                    });
                }
                Err(e) => {
                    warn!(execution = %watcher.execution_arn, error = %e, "could not hand the alarm over");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(deployments),
        }
    }

    async fn interrupt(
        &self,
        key: &str,
        execution_arn: &str,
        fired: &FiredAlarm,
        changed_at: u64,
    ) -> Result<AlarmOutcome, Error> {
        let Some(interrupt) = self
            .locks
            .record_fired(key, execution_arn, fired, changed_at)
            .await?
        else {
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

/// A wait to register on a hold: the hold's key, the execution, the wait's task token, and when its state was
/// entered (`$$.State.EnteredTime`; when absent, now).
pub struct Wait<'a> {
    pub key: String,
    pub execution_arn: &'a str,
    pub task_token: &'a str,
    pub since: Option<&'a str>,
}

/// Registers the wait: `AlarmFired` when a listed alarm already fired (the wait must not start),
/// `ExecutionMismatch` when the execution no longer holds the alias. Returns why the wait is not watched, if it
/// is not: a registration that arrives after a later wait's is left out (that one is watched); when AWS does not
/// answer (throttled, or an error the engine does not classify), the wait runs unwatched rather than failing a
/// healthy step — never worse than before the watch: the check at the wait's end still reads the alarms.
pub async fn register_or_degrade<L: WatchAlarms>(
    locks: &L,
    wait: &Wait<'_>,
) -> Result<Option<String>, Error> {
    let since = wait
        .since
        .and_then(unix_millis)
        .unwrap_or_else(|| crate::unix_now().saturating_mul(1000));
    match locks
        .watch(&wait.key, wait.execution_arn, wait.task_token, since)
        .await
    {
        Ok(Watch::Watching) => Ok(None),
        Ok(Watch::Superseded) => {
            info!(
                since,
                "a later wait is watched already; this late registration is left out"
            );
            Ok(Some(
                "a later wait of this execution is watched already: this one ended before it was registered"
                    .into(),
            ))
        }
        Ok(Watch::Fired(fired)) => Err(fired.error()),
        Ok(Watch::NotHeld) => Err(Error::ExecutionMismatch {
            reason: format!(
                "execution {} no longer holds alias `{}`",
                wait.execution_arn, wait.key
            ),
        }),
        Err(e) => degraded(e),
    }
}

/// A transient AWS failure leaves the wait unwatched (logged, and said in the output); any other error stands.
fn degraded(e: Error) -> Result<Option<String>, Error> {
    match e {
        Error::Throttled { .. } | Error::AwsError { .. } => {
            warn!(error = %e, "the wait runs unwatched: its alarms are read at its end");
            Ok(Some(e.to_string()))
        }
        e => Err(e),
    }
}

/// Unix seconds of a time as CloudWatch, EventBridge and Step Functions write it: RFC 3339 (`…Z`, `…+00:00`) or
/// CloudWatch's `2026-11-29T10:00:05.123+0000`.
pub fn unix_seconds(text: &str) -> Option<u64> {
    unix_millis(text).map(|ms| ms / 1000)
}

/// [`unix_seconds`] in milliseconds: orders two waits entered within one second, whatever digits the text has.
pub fn unix_millis(text: &str) -> Option<u64> {
    use aws_smithy_types::date_time::{DateTime, Format};
    let normalized = match text.len().checked_sub(5).map(|i| text.split_at(i)) {
        Some((head, "+0000")) => format!("{head}Z"),
        _ => text.replace("+00:00", "Z"),
    };
    let t = DateTime::from_str(&normalized, Format::DateTime).ok()?;
    u64::try_from(t.to_millis().ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::{unix_millis, unix_seconds};

    #[test]
    fn alarm_times_read_in_every_form_aws_writes_them() {
        for text in [
            "2026-11-29T10:00:05.123+0000",
            "2026-11-29T10:00:05Z",
            "2026-11-29T10:00:05.123456Z",
            "2026-11-29T10:00:05+00:00",
        ] {
            assert_eq!(unix_seconds(text), Some(1_795_946_405), "{text}");
        }
        assert_eq!(unix_seconds("yesterday"), None);
        // Within one second, with or without the milliseconds Step Functions may leave out.
        assert!(unix_millis("2026-11-29T10:00:05Z") < unix_millis("2026-11-29T10:00:05.800Z"));
        assert_eq!(
            unix_millis("2026-11-29T10:00:05.800Z"),
            Some(1_795_946_405_800)
        );
    }
}
