//! Hooks: the event a team's hook function receives, and the hook contract its answer is judged by.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    PreTraffic,
    PostTraffic,
    /// The manual approval gate: nothing is invoked; the state waits for `safeshift approve` / `reject`.
    Approval,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::PreTraffic => "preTraffic",
            Phase::PostTraffic => "postTraffic",
            Phase::Approval => "approval",
        })
    }
}

/// The event a hook function receives. The hook contract: return normally to pass; raise an error, or return
/// `{"status": "Failed", "message": "..."}`, to fail. With `taskToken`, report later with SendTaskSuccess or
/// SendTaskFailure instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookEvent {
    pub deployment_id: String,
    pub function_name: String,
    pub alias: String,
    pub stable_version: String,
    pub target_version: String,
    pub phase: Phase,
    /// Traffic on the target version when the hook runs, in percent.
    pub percent: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_token: Option<String>,
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
