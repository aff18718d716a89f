//! Hooks: the event a team's hook function receives, and the hook contract its answer is judged by.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

use crate::error::{Error, FieldError};
use crate::names::{FunctionRef, Qualifier};
use crate::rollout::GateRecord;

/// How long the state waiting for a synchronous hook holds: run-hook's own timeout (880 s, in which it invokes the
/// hook for up to 870 s and reports) plus Lambda's init. Not configurable: a longer hook is a callback hook.
pub const SYNC_HOOK_SECONDS: u64 = 900;
/// A callback hook's default time to answer, and the longest it may be given.
pub const DEFAULT_CALLBACK_SECONDS: u64 = 3_600;
pub const MAX_CALLBACK_SECONDS: u64 = 86_400;

/// Which hook point (or the approval gate, which runs through the same function).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    PreTraffic,
    /// Before each step's shift from the second on: confirms the traffic increase it is about to make.
    BeforeStep,
    /// After each traffic step's bake, before its gates' last word (they judge again once it passed).
    AfterStep,
    PostTraffic,
    /// After a rollback, whatever caused it; its own failure never blocks the rollback.
    OnRollback,
    /// The manual approval gate: nothing is invoked; the state waits for `safeshift approve` / `reject`.
    Approval,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::PreTraffic => "preTraffic",
            Phase::BeforeStep => "beforeStep",
            Phase::AfterStep => "afterStep",
            Phase::PostTraffic => "postTraffic",
            Phase::OnRollback => "onRollback",
            Phase::Approval => "approval",
        })
    }
}

/// How a hook answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HookMode {
    /// Invoked and waited for (up to 870 s); its return value is its answer.
    Sync,
    /// Started with the task token in its event; it answers later, up to `timeoutSeconds`, with SendTaskSuccess
    /// (pass) or SendTaskFailure (fail).
    Callback,
}

/// A hook as written: a function name or ARN, or `{"function", "mode", "timeoutSeconds"}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum HookInput {
    Function(String),
    Spec(HookSpec),
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HookSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<HookMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
}

/// A validated hook.
#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    pub function: FunctionRef,
    pub mode: HookMode,
    /// How long its state waits for the answer.
    pub timeout_seconds: u64,
}

impl Hook {
    pub fn validate(input: &HookInput, field: &str) -> Result<Self, Vec<FieldError>> {
        let spec = match input {
            HookInput::Function(name) => HookSpec {
                function: Some(name.clone()),
                ..HookSpec::default()
            },
            HookInput::Spec(spec) => spec.clone(),
        };
        let mut problems = Vec::new();
        let function = match spec.function.as_deref() {
            None => {
                problems.push(FieldError::new(format!("{field}.function"), "is required"));
                None
            }
            Some(name) => FunctionRef::parse(name, Qualifier::Allowed)
                .map_err(|reason| {
                    let at = match input {
                        HookInput::Function(_) => field.to_owned(),
                        HookInput::Spec(_) => format!("{field}.function"),
                    };
                    problems.push(FieldError::new(at, reason))
                })
                .ok(),
        };
        let mode = spec.mode.unwrap_or(HookMode::Sync);
        let timeout_seconds = match (mode, spec.timeout_seconds) {
            (HookMode::Sync, None) => SYNC_HOOK_SECONDS,
            (HookMode::Sync, Some(_)) => {
                problems.push(FieldError::new(
                    format!("{field}.timeoutSeconds"),
                    "applies to callback hooks; a sync hook is waited for up to 870 s (use \"mode\": \"callback\" for longer work)",
                ));
                SYNC_HOOK_SECONDS
            }
            (HookMode::Callback, None) => DEFAULT_CALLBACK_SECONDS,
            (HookMode::Callback, Some(t)) if (1..=MAX_CALLBACK_SECONDS as i64).contains(&t) => {
                t as u64
            }
            (HookMode::Callback, Some(t)) => {
                problems.push(FieldError::new(
                    format!("{field}.timeoutSeconds"),
                    format!("must be from 1 to {MAX_CALLBACK_SECONDS} seconds (24 h), got {t}"),
                ));
                DEFAULT_CALLBACK_SECONDS
            }
        };
        match function {
            Some(function) if problems.is_empty() => Ok(Self {
                function,
                mode,
                timeout_seconds,
            }),
            _ => Err(problems),
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mode {
            HookMode::Sync => write!(f, "{}", self.function),
            HookMode::Callback => write!(
                f,
                "{} (callback, {} s)",
                self.function, self.timeout_seconds
            ),
        }
    }
}

/// Back to the input that validates to it: the plain name for a sync hook.
impl Serialize for Hook {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.mode {
            HookMode::Sync => s.serialize_str(self.function.as_str()),
            HookMode::Callback => HookSpec {
                function: Some(self.function.as_str().to_owned()),
                mode: Some(HookMode::Callback),
                timeout_seconds: Some(self.timeout_seconds as i64),
            }
            .serialize(s),
        }
    }
}

/// The event a hook function receives. The hook contract: return normally to pass; raise an error, or return
/// `{"status": "Failed", "message": "..."}`, to fail. With `taskToken`, report later with SendTaskSuccess or
/// SendTaskFailure instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookEvent {
    pub deployment_id: String,
    /// A release's name; `functionName`, `alias` and the versions are then its first target's, and `targets`
    /// lists them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Every alias the deployment moves, with its versions (one for a single deployment).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<HookTarget>,
    pub function_name: String,
    pub alias: String,
    pub stable_version: String,
    pub target_version: String,
    pub phase: Phase,
    /// Traffic on the target version when the hook runs, in percent.
    pub percent: f64,
    /// The step (1-based) the rollout is at, and how many there are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    pub step_count: usize,
    /// For `beforeStep`: the weight the next shift is about to set, in percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_percent: Option<f64>,
    /// The gates' verdict on every step passed so far.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passed_gates: Vec<GateRecord>,
    /// For `onRollback`: what caused the rollback (`{"Error", "Cause"}`, the cause cut to 4 KB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
    /// With a callback hook: answer with SendTaskSuccess (pass) or SendTaskFailure (fail) and this token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_token: Option<String>,
}

/// One alias of the deployment, as a hook (and a lifecycle event) sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookTarget {
    pub function_name: String,
    pub alias: String,
    pub stable_version: String,
    pub target_version: String,
}

impl From<&crate::alias::AliasTarget> for HookTarget {
    fn from(a: &crate::alias::AliasTarget) -> Self {
        Self {
            function_name: a.function_name.clone(),
            alias: a.name.clone(),
            stable_version: a.stable_version.to_string(),
            target_version: a.target_version.to_string(),
        }
    }
}

/// What a synchronous hook invocation returned.
#[derive(Debug, Clone, PartialEq)]
pub struct HookResponse {
    /// Lambda's `FunctionError` (`Unhandled`, `Handled`) when the hook raised.
    pub function_error: Option<String>,
    pub payload: Vec<u8>,
}

/// Judges a hook's response by the hook contract; the error carries the hook's own message.
pub fn judge_hook(phase: Phase, hook: &str, response: &HookResponse) -> Result<(), Error> {
    let body: Option<serde_json::Value> = serde_json::from_slice(&response.payload).ok();
    let text = |key: &str| {
        body.as_ref()
            .and_then(|b| b.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let failed = |message: String| Error::HookFailed {
        phase: phase.to_string(),
        hook: hook.to_owned(),
        message,
    };
    if let Some(kind) = &response.function_error {
        let message = text("errorMessage")
            .unwrap_or_else(|| String::from_utf8_lossy(&response.payload).into_owned());
        let error_type = text("errorType")
            .map(|t| format!("{t}: "))
            .unwrap_or_default();
        return Err(failed(format!("{error_type}{message} ({kind} error)")));
    }
    if text("status").is_some_and(|s| s.eq_ignore_ascii_case("failed")) {
        let message = text("message")
            .or_else(|| text("reason"))
            .unwrap_or_else(|| "the hook reported Failed".into());
        return Err(failed(message));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_pass_unless_they_raise_or_say_failed() {
        let resp = |err: Option<&str>, body: &str| HookResponse {
            function_error: err.map(Into::into),
            payload: body.as_bytes().to_vec(),
        };
        assert!(
            judge_hook(
                Phase::PreTraffic,
                "smoke",
                &resp(None, r#"{"status":"Succeeded"}"#)
            )
            .is_ok()
        );
        assert!(judge_hook(Phase::PreTraffic, "smoke", &resp(None, "null")).is_ok());
        let err = judge_hook(
            Phase::PreTraffic,
            "smoke",
            &resp(None, r#"{"status":"Failed","message":"checkout 500"}"#),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "preTraffic hook `smoke` failed: checkout 500"
        );
        let err = judge_hook(
            Phase::PostTraffic,
            "e2e",
            &resp(
                Some("Unhandled"),
                r#"{"errorType":"AssertionError","errorMessage":"cart empty"}"#,
            ),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "postTraffic hook `e2e` failed: AssertionError: cart empty (Unhandled error)"
        );
    }
}
