//! Runs a handler under the Lambda runtime: JSON logs, errors that leave with the core taxonomy's name as
//! `errorType`, and panics turned into `Internal` errors instead of a dead process.

use std::future::Future;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use safeshift_core::Error;
use serde_json::Value;

/// Structured JSON logs on stderr, which Lambda ships to CloudWatch Logs; `RUST_LOG` sets the level.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The error as Lambda reports it; Step Functions sees `errorType` as the error name its Catch/Retry match.
pub fn diagnostic(error: &Error) -> Diagnostic {
    Diagnostic {
        error_type: error.error_type().as_str().to_owned(),
        error_message: error.to_string(),
    }
}

/// Runs one invocation on its own task so that a panic surfaces as a `JoinError` and becomes an `Internal`
/// error that the state machine's Catch rolls back from, rather than an opaque runtime failure.
pub async fn invoke<F>(invocation: F) -> Result<Value, Diagnostic>
where
    F: Future<Output = Result<Value, Error>> + Send + 'static,
{
    match tokio::spawn(invocation).await {
        Ok(result) => result.map_err(|e| {
            tracing::error!(error_type = e.error_type().as_str(), error = %e, "invocation failed");
            diagnostic(&e)
        }),
        Err(join) => {
            let message = match join.try_into_panic() {
                Ok(payload) => payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into()),
                Err(join) => join.to_string(),
            };
            let error = Error::Internal(format!("the handler panicked: {message}"));
            tracing::error!(error = %error, "invocation panicked");
            Err(diagnostic(&error))
        }
    }
}

/// Serves `handler` until the Lambda environment ends the process.
pub async fn serve<H, F>(handler: H) -> Result<(), lambda_runtime::Error>
where
    H: Fn(Value) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Value, Error>> + Send + 'static,
{
    init_logging();
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        invoke(handler(event.payload))
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use safeshift_core::InvalidInput;

    #[tokio::test]
    async fn errors_leave_with_their_taxonomy_name() {
        let err = invoke(async { Err(InvalidInput::one("alias", "must not be empty").into()) })
            .await
            .unwrap_err();
        assert_eq!(err.error_type, "InvalidInput");
        assert_eq!(
            err.error_message,
            "invalid deployment input: `alias`: must not be empty"
        );
    }

    #[tokio::test]
    async fn a_panic_becomes_an_internal_error() {
        let err = invoke(async {
            let steps: Vec<u32> = Vec::new();
            Ok(Value::from(steps[3]))
        })
        .await
        .unwrap_err();
        assert_eq!(err.error_type, "Internal");
        assert!(
            err.error_message
                .starts_with("internal error: the handler panicked: index out of bounds"),
            "{}",
            err.error_message
        );
    }

    #[tokio::test]
    async fn success_passes_the_value_through() {
        assert_eq!(
            invoke(async { Ok(Value::from(7)) }).await.unwrap(),
            Value::from(7)
        );
    }
}
