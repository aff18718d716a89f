//! The error taxonomy. Every engine error has a stable [`ErrorType`] name: the Lambda functions report it as
//! `errorType`, and the state machine's `Retry`/`Catch` clauses match on it, so these names are a public contract.

use std::fmt;

use serde::Serialize;

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One problem with one field of the deployment input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field's path as the user wrote it, e.g. `strategy.steps[1].percent`.
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.field, self.reason)
    }
}

/// Every problem found in one deployment input, so a user fixes them all in one go.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
pub struct InvalidInput {
    pub problems: Vec<FieldError>,
}

impl InvalidInput {
    pub fn one(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            problems: vec![FieldError::new(field, reason)],
        }
    }
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [only] => write!(f, "invalid deployment input: {only}"),
            problems => {
                write!(f, "invalid deployment input ({} problems):", problems.len())?;
                for p in problems {
                    write!(f, "\n  - {p}")?;
                }
                Ok(())
            }
        }
    }
}

/// What a missing resource is, for [`Error::ResourceNotFound`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::Display)]
#[strum(serialize_all = "lowercase")]
pub enum Resource {
    Function,
    Alias,
    Version,
    Alarm,
    Hook,
    Execution,
}

/// An engine error. The Lambda functions turn it into a failed invocation whose `errorType` is
/// [`Error::error_type`] and whose `errorMessage` is its `Display`.
///
/// Each variant's name is its taxonomy name: [`ErrorType`] is derived from this enum, so an error and its name
/// cannot drift apart. Those names cross to Step Functions, whose `Retry`/`Catch` clauses match on them, so they
/// are a public contract: renaming a variant breaks deployed state machines.
#[derive(Debug, thiserror::Error, strum::EnumDiscriminants)]
#[strum_discriminants(name(ErrorType))]
#[strum_discriminants(derive(
    Hash,
    Serialize,
    serde::Deserialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray
))]
pub enum Error {
    /// The deployment input is malformed or inconsistent; nothing was written.
    #[error(transparent)]
    InvalidInput(#[from] InvalidInput),
    /// The function, alias, version, alarm or hook named by the input does not exist.
    #[error("{resource} `{name}` does not exist")]
    ResourceNotFound { resource: Resource, name: String },
    /// The target version stayed Pending, or its last update failed.
    #[error("target version {version} is not ready: {reason}")]
    TargetNotReady { version: String, reason: String },
    /// Stable and target versions differ where a weighted alias requires them to match (role, dead-letter config).
    #[error(
        "stable version {stable} and target version {target} cannot share a weighted alias: {reason}"
    )]
    IncompatibleVersions {
        stable: String,
        target: String,
        reason: String,
    },
    /// The alias is split by another deployment, or was changed by someone else mid-rollout.
    #[error("alias `{alias}`: {reason}")]
    AliasConflict { alias: String, reason: String },
    /// A CloudWatch alarm gating the deployment is in ALARM.
    #[error("alarm{} in ALARM: {}", if .alarms.len() == 1 { "" } else { "s" }, .alarms.join(", "))]
    AlarmFired { alarms: Vec<String> },
    /// A listed alarm was already in ALARM when the deployment started: it would roll back at its first step, so
    /// nothing moves until it is resolved.
    #[error("alarm{} already in ALARM at start: {}; resolve {} before deploying", if .alarms.len() == 1 { "" } else { "s" }, .alarms.join(", "), if .alarms.len() == 1 { "it" } else { "them" })]
    AlarmFiringAtStart { alarms: Vec<String> },
    /// The target version's own metrics failed the analysis: error rate, comparison with stable, p99, throttles.
    #[error("the target version's metrics failed the analysis: {}", .findings.join("; "))]
    AnalysisFailed { findings: Vec<String> },
    /// The target version saw too little traffic for a verdict, through every bake extension.
    #[error("the target version's metrics stayed inconclusive: {}", .findings.join("; "))]
    AnalysisInconclusive { findings: Vec<String> },
    /// A pre- or post-traffic hook reported failure, errored or timed out.
    #[error("{phase} hook `{hook}` failed: {message}")]
    HookFailed {
        phase: String,
        hook: String,
        message: String,
    },
    /// Someone rejected the deployment at its manual approval gate.
    #[error("the deployment was rejected at its approval gate: {reason}")]
    ApprovalRejected { reason: String },
    /// An operator paused the deployment and nobody resumed it within its pause limit (`maxPauseSeconds`).
    #[error("paused and not resumed within the pause limit: {reason}")]
    PauseTimedOut { reason: String },
    /// An engine function was asked to act for something other than a running execution of this engine's state
    /// machine — a direct invocation, or a rollout that is not its execution's own. Nothing was written.
    #[error("refused: {reason}")]
    ExecutionMismatch { reason: String },
    /// AWS refused the call (HTTP 403): the engine's role may not do it, e.g. invoke a hook outside the allowed
    /// prefix or update an alias of a function it was not granted. Not retried: only a policy change fixes it.
    #[error("{operation} was denied: {message}")]
    AccessDenied { operation: String, message: String },
    /// AWS kept throttling the engine after its own retries; the state machine retries with backoff.
    #[error("{operation} is being throttled by AWS")]
    Throttled { operation: String },
    /// An AWS call failed for a reason the engine does not classify further.
    #[error("{operation} failed: {message}")]
    AwsError { operation: String, message: String },
    /// A bug in the engine (including a handler panic).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn error_type(&self) -> ErrorType {
        self.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::VariantArray;

    #[test]
    fn error_type_names_round_trip_and_are_unique() {
        let names: std::collections::HashSet<&str> =
            ErrorType::VARIANTS.iter().map(|t| t.as_str()).collect();
        assert_eq!(names.len(), ErrorType::VARIANTS.len());
        for t in ErrorType::VARIANTS {
            assert_eq!(t.as_str().parse::<ErrorType>().unwrap(), *t);
        }
    }

    #[test]
    fn error_types_are_the_names_the_state_machine_matches() {
        // These strings are matched by deployed state machines: changing one is a breaking change.
        let expected = [
            "InvalidInput",
            "ResourceNotFound",
            "TargetNotReady",
            "IncompatibleVersions",
            "AliasConflict",
            "AlarmFired",
            "AlarmFiringAtStart",
            "AnalysisFailed",
            "AnalysisInconclusive",
            "HookFailed",
            "ApprovalRejected",
            "PauseTimedOut",
            "ExecutionMismatch",
            "AccessDenied",
            "Throttled",
            "AwsError",
            "Internal",
        ];
        let actual: Vec<&str> = ErrorType::VARIANTS.iter().map(|t| t.as_str()).collect();
        assert_eq!(actual, expected);
    }

    #[test]
    fn each_error_maps_to_its_type_and_says_what_happened() {
        let cases = [
            (
                Error::from(InvalidInput::one("alias", "must not be empty")),
                ErrorType::InvalidInput,
                "invalid deployment input: `alias`: must not be empty",
            ),
            (
                Error::ResourceNotFound {
                    resource: Resource::Alarm,
                    name: "orders-errors".into(),
                },
                ErrorType::ResourceNotFound,
                "alarm `orders-errors` does not exist",
            ),
            (
                Error::AlarmFired {
                    alarms: vec!["a".into(), "b".into()],
                },
                ErrorType::AlarmFired,
                "alarms in ALARM: a, b",
            ),
            (
                Error::AliasConflict {
                    alias: "live".into(),
                    reason: "deployment in progress".into(),
                },
                ErrorType::AliasConflict,
                "alias `live`: deployment in progress",
            ),
            (
                Error::AccessDenied {
                    operation: "Invoke".into(),
                    message: "not authorized to perform lambda:InvokeFunction".into(),
                },
                ErrorType::AccessDenied,
                "Invoke was denied: not authorized to perform lambda:InvokeFunction",
            ),
        ];
        for (error, ty, message) in cases {
            assert_eq!(error.error_type(), ty);
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    fn several_problems_are_listed_one_per_line() {
        let e = InvalidInput {
            problems: vec![
                FieldError::new("alias", "must not be empty"),
                FieldError::new("targetVersion", "is required"),
            ],
        };
        assert_eq!(
            e.to_string(),
            "invalid deployment input (2 problems):\n  - `alias`: must not be empty\n  - `targetVersion`: is required"
        );
    }
}
