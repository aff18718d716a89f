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
use safeshift_core::rollout::Rollout;
use safeshift_core::{Error, InvalidInput};
use serde::Deserialize;
use serde_json::{Map, Value};
use tracing::{Span, info};

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
const CONTROL_FIELDS: [&str; 5] = [
    "operations",
    "paused",
    "pausedTotalSeconds",
    "skip",
    "steered",
];

#[derive(Debug, Clone, Copy, Default)]
pub struct Steer;

impl Steer {
    /// Applies the control in `state` at `now_ms` (Unix milliseconds).
    pub fn steer_at(&self, mut state: Map<String, Value>, now_ms: u64) -> Result<Value, Error> {
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
        Ok(Value::Object(state))
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
        self.steer_at(event.steer.state, now_ms)
    }
}
