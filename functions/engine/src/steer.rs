//! `Steer` (served by the `shift-weight` function): an operator's control ended one of the rollout's waits —
//! `Bake`, `ExtendBake`, `Paused` or `Approval` — and the state machine brings it here with the wait it ended.
//! The decision is `safeshift_core::control::steer`: this records it in the state and says where the rollout
//! goes (`steered.next`, which the state machine's `Steered` choice reads).
//!
//! Input: `{"steer": {"state": <the state, with "control": {"sent": <the control>, "waitState": "Bake",
//! "waitEnteredAt": "<the wait's $$.State.EnteredTime>"}>, "executionArn": …}}`.
//! Output: the state as it came (the gates' last report kept: a resumed step's looks and extensions go on
//! counting), with the rollout's record of the control (`operations`), its pause (`paused`), the wait a
//! resume goes back to (`waitSeconds`), an ended bake (`skip`), and `steered`: `{"next", "outcome", "note"}`.
//! Nothing is read or written outside the state: a forged invocation only gets a state back.
//! Errors: `InvalidInput` when the state is not a rollout's or the control's wrapper is missing.

use safeshift_core::control::{self, Control, WaitState};
use safeshift_core::events::LifecycleEvent;
use safeshift_core::rollout::Rollout;
use safeshift_core::{Error, InvalidInput};
use serde::Deserialize;
use serde_json::{Map, Value};
use tracing::{Span, info};

use crate::ports::Events;
use crate::runtime::Handler;
use crate::watch_gates::unix_millis;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SteerEvent {
    pub steer: SteerRequest,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SteerRequest {
    pub state: Map<String, Value>,
    #[serde(default)]
    pub execution_arn: Option<String>,
}

/// What the wait's ResultSelector keeps of its end: the operator's output and which wait it ended, when entered.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ended {
    sent: Value,
    wait_state: WaitState,
    wait_entered_at: String,
}

/// The rollout's fields a control may clear: removed before the new rollout is merged in, so a pause that
/// ended or a skip that was used leaves no trace (the rollout leaves out what is empty).
const CONTROL_FIELDS: [&str; 6] = [
    "operations",
    "paused",
    "pausedTotalSeconds",
    "skip",
    "unrecordedControls",
    "steered",
];

#[derive(Debug, Clone, Default)]
pub struct Steer {
    events: Events,
}

impl Steer {
    /// Publishes a pause or a resume (best effort).
    pub fn with_events(events: Events) -> Self {
        Self { events }
    }

    /// Applies the control in `state` at `now_ms` (Unix milliseconds): the new state, and the event it is news
    /// for — a pause applied, or a pause's end.
    pub fn steer_at(
        &self,
        mut state: Map<String, Value>,
        execution_arn: Option<&str>,
        now_ms: u64,
    ) -> Result<(Value, Option<LifecycleEvent>), Error> {
        let ended: Ended = state
            .remove("control")
            .ok_or_else(|| InvalidInput::one("state.control", "is required: the wait's end"))
            .and_then(|c| {
                serde_json::from_value(c)
                    .map_err(|e| InvalidInput::one("state.control", e.to_string()))
            })?;
        let rollout: Rollout = serde_json::from_value(Value::Object(state.clone()))
            .map_err(|e| InvalidInput::one("state", format!("is not a rollout: {e}")))?;
        let entered_ms = unix_millis(&ended.wait_entered_at).ok_or_else(|| {
            InvalidInput::one(
                "state.control.waitEnteredAt",
                format!("`{}` is not a time", ended.wait_entered_at),
            )
        })?;
        // A control that does not read is carried as one naming no action: refused, recorded, and the rollout
        // goes back to its wait.
        let sent = serde_json::from_value::<Control>(ended.sent).unwrap_or_default();
        let extend_seconds = state
            .get("gates")
            .and_then(|g| g.get("extendSeconds"))
            .and_then(Value::as_u64);
        let (rollout, steered) = control::steer(
            &rollout,
            sent,
            ended.wait_state,
            entered_ms,
            extend_seconds,
            now_ms,
        );
        if rollout.unrecorded_controls > control::MAX_UNRECORDED {
            return Err(InvalidInput::one(
                "control",
                format!(
                    "more than {} controls were refused without a record (unreadable, for a step the rollout had left, or past the {} recorded): something is sending controls in a loop; rolling back keeps the execution's history bounded",
                    control::MAX_UNRECORDED,
                    control::MAX_OPERATIONS
                ),
            )
            .into());
        }
        let event = (steered.outcome == control::Outcome::Applied)
            .then(|| rollout.operations.last())
            .flatten()
            .and_then(|op| {
                LifecycleEvent::steered(
                    &rollout,
                    execution_arn,
                    op,
                    ended.wait_state == WaitState::Paused,
                )
            });
        info!(
            next = ?steered.next,
            outcome = ?steered.outcome,
            operation = %serde_json::to_string(&rollout.operations.last()).unwrap_or_default(),
            "steered: {}",
            steered.note
        );
        for field in CONTROL_FIELDS {
            state.remove(field);
        }
        let Value::Object(fields) =
            serde_json::to_value(&rollout).map_err(|e| Error::Internal(e.to_string()))?
        else {
            return Err(Error::Internal("a rollout is a JSON object".into()));
        };
        state.extend(fields);
        state.insert(
            "steered".into(),
            serde_json::to_value(&steered).map_err(|e| Error::Internal(e.to_string()))?,
        );
        Ok((Value::Object(state), event))
    }
}

impl Handler for Steer {
    type Event = SteerEvent;
    type Output = Value;
    const EXPECTED: &'static str =
        "{\"steer\": {\"state\": <the state, with its control>, \"executionArn\": …}}";

    fn span(event: &SteerEvent) -> Span {
        let field = |name: &str| {
            event
                .steer
                .state
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        tracing::info_span!(
            "steer",
            deployment_id = %field("deploymentId"),
            execution = %event.steer.execution_arn.as_deref().unwrap_or_default(),
        )
    }

    async fn handle(&self, event: SteerEvent) -> Result<Value, Error> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let SteerRequest {
            state,
            execution_arn,
        } = event.steer;
        let (state, news) = self.steer_at(state, execution_arn.as_deref(), now_ms)?;
        // A pause and its end are news; anything else Steer did shows in the execution.
        if let Some(e) = news {
            self.events.publish(e).await;
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A rollout at its first step (10%, baking 60 s), as the state machine holds it during an ExtendBake, with the
    /// gates' last look and the control that ended the wait.
    fn state(sent: Value, wait: &str) -> Map<String, Value> {
        let d = safeshift_core::Deployment::parse(
            r#"{"functionName":"orders","alias":"live","targetVersion":"7","strategy":"Linear10PercentEvery1Minute"}"#,
        )
        .unwrap();
        let r = Rollout::prepared(
            "d-1".into(),
            d,
            vec![(safeshift_core::names::Version::new(6).unwrap(), "r0".into())],
        )
        .advanced(0, vec!["r1".into()], 1_000);
        let mut s = serde_json::to_value(r).unwrap();
        s["gates"] = json!({"verdict": "pass", "step": 0, "baking": true, "extendSeconds": 30, "extensions": 1,
            "results": [{"gate": "analysis", "verdict": "pass", "evidence": {"alphaSpent": 0.001}}]});
        s["control"] =
            json!({"sent": sent, "waitState": wait, "waitEnteredAt": "2026-11-29T10:00:00.000Z"});
        let Value::Object(m) = s else { unreachable!() };
        m
    }

    /// The state Steer leaves, for an execution without an ARN.
    fn at(state: Map<String, Value>, now_ms: u64) -> Result<Value, Error> {
        Steer::default()
            .steer_at(state, None, now_ms)
            .map(|(s, _)| s)
    }

    const ENTERED_MS: u64 = 1_795_946_400_000;

    #[test]
    fn a_pause_keeps_the_gates_last_look_and_records_who_and_why() {
        let sent = json!({"action": "pause", "reason": "dashboards", "by": {"arn": "arn:aws:iam::1:user/alice"}, "id": "c-1"});
        let out = at(state(sent, "ExtendBake"), ENTERED_MS + 10_000).unwrap();
        // The look's report goes on counting alpha and extensions after a resume.
        assert_eq!(out["gates"]["extensions"], 1);
        assert_eq!(out["gates"]["results"][0]["evidence"]["alphaSpent"], 0.001);
        assert!(out.get("control").is_none());
        assert_eq!(out["steered"]["next"], "pause");
        assert_eq!(out["steered"]["id"], "c-1");
        assert_eq!(out["paused"]["remainingWaitSeconds"], 20);
        assert_eq!(
            out["operations"][0]["by"]["arn"],
            "arn:aws:iam::1:user/alice"
        );
        assert_eq!(out["operations"][0]["reason"], "dashboards");
        // Resumed: the pause leaves no trace but its record, and the wait is what was left.
        let mut resumed = match out {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        resumed.insert(
            "control".into(),
            json!({"sent": {"action": "resume"}, "waitState": "Paused", "waitEnteredAt": "2026-11-29T10:00:10.000Z"}),
        );
        let out = at(resumed, ENTERED_MS + 70_000).unwrap();
        assert!(out.get("paused").is_none(), "{out:#}");
        assert_eq!(
            (
                out["waitSeconds"].as_u64(),
                out["pausedTotalSeconds"].as_u64()
            ),
            (Some(20), Some(60))
        );
        assert_eq!(out["operations"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_control_that_does_not_read_is_refused_and_the_wait_goes_on() {
        let out = at(
            state(json!({"action": "explode"}), "Bake"),
            ENTERED_MS + 5_000,
        )
        .unwrap();
        assert_eq!(
            (
                out["steered"]["next"].as_str(),
                out["steered"]["outcome"].as_str()
            ),
            (Some("wait"), Some("refused"))
        );
        assert_eq!(out["waitSeconds"], 55);
        let mut bad = state(json!({}), "Bake");
        bad.remove("control");
        assert!(matches!(at(bad, ENTERED_MS), Err(Error::InvalidInput(_))));
    }

    #[test]
    fn controls_sent_in_a_loop_end_the_rollout() {
        let mut looping = state(json!({"nonsense": true}), "Bake");
        looping.insert("unrecordedControls".into(), json!(control::MAX_UNRECORDED));
        let err = at(looping, ENTERED_MS + 1_000).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        assert!(err.to_string().contains("in a loop"), "{err}");
    }

    #[test]
    fn a_pause_is_news_and_a_refused_control_is_not() {
        let sent = json!({"action": "pause", "reason": "dashboards"});
        let (_, news) = Steer::default()
            .steer_at(state(sent, "Bake"), Some("arn:x"), ENTERED_MS + 1_000)
            .unwrap();
        let news = news.expect("a pause is published");
        assert_eq!(news.detail_type.as_str(), "Deployment Paused");
        assert_eq!(news.detail["executionArn"], "arn:x");
        let (_, none) = Steer::default()
            .steer_at(
                state(json!({"action": "resume"}), "Bake"),
                Some("arn:x"),
                ENTERED_MS + 1_000,
            )
            .unwrap();
        assert!(none.is_none(), "a refused resume is not news");
    }
}
