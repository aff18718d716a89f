//! Runs a handler under the Lambda runtime: a typed event in and a typed output out, JSON logs in the
//! event's span, errors that leave with the core taxonomy's name as `errorType`, and panics turned into
//! `Internal` errors instead of a dead process.

use std::future::Future;
use std::sync::Arc;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use safeshift_core::{Error, InvalidInput};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::{Instrument, Span};

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

/// The span of one invocation about a rollout: the deployment id, function and alias every log line carries,
/// then whatever else the handler adds (`step = …, weight = …`).
#[macro_export]
macro_rules! rollout_span {
    ($name:literal, $rollout:expr $(, $($field:tt)+)?) => {
        tracing::info_span!(
            $name,
            deployment_id = %$rollout.deployment_id,
            function = %$rollout.aliases[0].function_name,
            alias = %$rollout.aliases[0].name,
            targets = $rollout.aliases.len()
            $(, $($field)+)?
        )
    };
}

/// A Lambda handler with a typed boundary: the event it takes and the output it returns. [`invoke`] owns
/// everything around it — decoding (an event that does not decode is `InvalidInput`, before any AWS call),
/// the tracing span, encoding, and turning a panic into `Internal` — so a handler is only its decision.
pub trait Handler: Send + Sync + 'static {
    type Event: DeserializeOwned + Send + 'static;
    type Output: Serialize + Send + 'static;
    /// What the event should look like, for the message of an event that does not decode.
    const EXPECTED: &'static str;

    /// The span this event's logs carry: deployment id, function, alias, step, weight.
    fn span(event: &Self::Event) -> Span;

    fn handle(
        &self,
        event: Self::Event,
    ) -> impl Future<Output = Result<Self::Output, Error>> + Send;
}

/// Runs one invocation of `handler` on its own task, so that a panic surfaces as a `JoinError` and becomes an
/// `Internal` error that the state machine's Catch rolls back from, rather than an opaque runtime failure.
pub async fn invoke<H: Handler>(handler: Arc<H>, event: Value) -> Result<Value, Diagnostic> {
    match tokio::spawn(async move { handle_json(&*handler, event).await }).await {
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

/// One event through `handler`, JSON in and JSON out, in the event's span: what [`invoke`] runs on its task, and
/// what a test or the local stack calls to drive a handler with the state machine's own JSON.
pub async fn handle_json<H: Handler>(handler: &H, event: Value) -> Result<Value, Error> {
    let event: H::Event = serde_json::from_value(event)
        .map_err(|e| InvalidInput::one("event", format!("expected {}: {e}", H::EXPECTED)))?;
    let span = H::span(&event);
    let output = handler.handle(event).instrument(span).await?;
    serde_json::to_value(output).map_err(|e| Error::Internal(e.to_string()))
}

/// Serves `handler` until the Lambda environment ends the process: what every function's `main` ends with,
/// after building its clients once.
pub async fn serve<H: Handler>(handler: H) -> Result<(), lambda_runtime::Error> {
    init_logging();
    let handler = Arc::new(handler);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        invoke(Arc::clone(&handler), event.payload)
    }))
    .await
}

/// Two handlers behind one function: an event whose top-level object has `key` goes to `second`, any other to
/// `first` (whose decoding then names what it expected).
pub async fn invoke_routed<A: Handler, B: Handler>(
    first: Arc<A>,
    key: &str,
    second: Arc<B>,
    event: Value,
) -> Result<Value, Diagnostic> {
    if event.get(key).is_some() {
        invoke(second, event).await
    } else {
        invoke(first, event).await
    }
}

/// [`serve`] for two handlers behind one function, routed as [`invoke_routed`] does.
pub async fn serve_routed<A: Handler, B: Handler>(
    first: A,
    key: &'static str,
    second: B,
) -> Result<(), lambda_runtime::Error> {
    init_logging();
    let (first, second) = (Arc::new(first), Arc::new(second));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        invoke_routed(Arc::clone(&first), key, Arc::clone(&second), event.payload)
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handler that answers the element of a list its event names: enough to exercise the boundary.
    struct Pick;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct PickEvent {
        index: usize,
    }

    impl Handler for Pick {
        type Event = PickEvent;
        type Output = u32;
        const EXPECTED: &'static str = "{\"index\": <number>}";

        fn span(event: &PickEvent) -> Span {
            tracing::info_span!("pick", index = event.index)
        }

        async fn handle(&self, event: PickEvent) -> Result<u32, Error> {
            let steps: Vec<u32> = vec![10, 20];
            if event.index == 7 {
                return Err(InvalidInput::one("alias", "must not be empty").into());
            }
            Ok(steps[event.index])
        }
    }

    async fn call(event: Value) -> Result<Value, Diagnostic> {
        invoke(Arc::new(Pick), event).await
    }

    #[tokio::test]
    async fn errors_leave_with_their_taxonomy_name() {
        let err = call(serde_json::json!({"index": 7})).await.unwrap_err();
        assert_eq!(err.error_type, "InvalidInput");
        assert_eq!(
            err.error_message,
            "invalid deployment input: `alias`: must not be empty"
        );
    }

    #[tokio::test]
    async fn an_event_that_does_not_decode_is_invalid_input_naming_the_shape() {
        let err = call(serde_json::json!({"idx": 1})).await.unwrap_err();
        assert_eq!(err.error_type, "InvalidInput");
        assert!(
            err.error_message
                .starts_with("invalid deployment input: `event`: expected {\"index\": <number>}: unknown field `idx`"),
            "{}",
            err.error_message
        );
    }

    #[tokio::test]
    async fn a_panic_becomes_an_internal_error() {
        let err = call(serde_json::json!({"index": 3})).await.unwrap_err();
        assert_eq!(err.error_type, "Internal");
        assert!(
            err.error_message
                .starts_with("internal error: the handler panicked: index out of bounds"),
            "{}",
            err.error_message
        );
    }

    #[tokio::test]
    async fn success_encodes_the_output() {
        assert_eq!(
            call(serde_json::json!({"index": 1})).await.unwrap(),
            Value::from(20)
        );
    }
}
