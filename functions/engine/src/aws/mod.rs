//! The ports implemented with the AWS SDK, one file per service (`lambda.rs`, `cloudwatch.rs`, `sfn.rs`). Errors
//! are classified with the SDK's typed predicates (never by matching message text) into the core taxonomy: the
//! operation's modeled errors first, then throttling and everything unclassified here.

mod cloudwatch;
mod dynamodb;
mod events;
mod lambda;
mod response_url;
mod sfn;

pub use cloudwatch::CloudWatchAdapter;
pub use dynamodb::DynamoLockAdapter;
pub use events::{EventBridgeAdapter, PUBLISH_TIMEOUT};
pub use lambda::LambdaAdapter;
pub use response_url::ResponseUrlAdapter;
pub use sfn::StepFunctionsAdapter;

use std::time::Duration;

use aws_runtime::retries::classifiers::THROTTLING_ERRORS;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use safeshift_core::Error;

/// The SDK's standard retry mode: three attempts with exponential backoff and jitter for throttling and
/// transient errors. What outlasts it becomes `Throttled`/`AwsError`, which the state machine retries with its
/// own longer backoff.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(200))
}

/// The longest one SDK call may take, all its attempts and backoffs included. The bounds nest, so that a write
/// can never land after its state has given up on it (and the rollback has read the alias):
///
///   this < every function's `Timeout` (`template.yaml`) < the `TimeoutSeconds` of every state invoking it.
///
/// `tests/template_check.py` mirrors these constants, checks the mirror against this file, and fails if the
/// order breaks. Three attempts of [`OPERATION_ATTEMPT_TIMEOUT`] and their backoffs fit inside it.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest one attempt of an SDK call may take. The engine's calls are small control-plane requests that
/// answer in well under a second; an attempt that hangs is cut short and retried within [`OPERATION_TIMEOUT`].
pub const OPERATION_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// The one exception to [`OPERATION_TIMEOUT`]: a synchronous hook invocation lasts as long as the team's hook
/// runs, so it gets nearly all of `run-hook`'s `Timeout` (880 s), leaving 10 s to judge the answer and return.
/// One attempt: a hook that ran out of time is not started again.
pub const HOOK_INVOKE_TIMEOUT: Duration = Duration::from_secs(870);

/// The operation and attempt timeouts every client gets (the connect timeout stays the SDK's default).
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .operation_timeout(OPERATION_TIMEOUT)
        .operation_attempt_timeout(OPERATION_ATTEMPT_TIMEOUT)
        .build()
}

/// Loads the shared AWS configuration once, at cold start: region and credentials from the Lambda environment,
/// endpoints from `AWS_ENDPOINT_URL*` (which is how the local stack and the tests point the real clients at a
/// local AWS), the retry policy and the timeouts above.
pub async fn load_config() -> aws_config::SdkConfig {
    config_loader().load().await
}

/// What [`load_config`] loads, before it resolves anything from the environment (a test sets the region here).
pub fn config_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(retry_config())
        .timeout_config(timeout_config())
}

/// Whether the functions open their AWS connections during init (`SAFESHIFT_WARM_UP`; on unless `0`, `false` or
/// `off`). Off saves one read-only call per cold start; the benchmark measures both.
pub fn warm_up_enabled() -> bool {
    !matches!(
        std::env::var("SAFESHIFT_WARM_UP").as_deref(),
        Ok("0" | "false" | "off")
    )
}

/// Makes one cheap read during init so that the first invocation does not pay for building the HTTP connector,
/// loading the root certificates and the TCP and TLS handshakes: the connection stays pooled for the invocation.
/// Any answer, even an error, has opened the connection; a failure is only logged, never a failed cold start.
pub(crate) async fn warm_up<T, E: std::error::Error>(
    service: &str,
    call: impl Future<Output = Result<T, E>>,
) {
    if !warm_up_enabled() {
        return;
    }
    let started = std::time::Instant::now();
    let outcome = call.await;
    tracing::debug!(
        service,
        ok = outcome.is_ok(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "connection opened during init"
    );
}

/// A failed SDK call in the core taxonomy. `classify` maps the operation's modeled errors; access denied,
/// throttling and everything unclassified are handled here. Access denied is an HTTP 403 (an IAM policy, a hook
/// outside the allowed prefix, an SCP): no retry can grant it, so it is `AccessDenied`, which the state machine
/// does not retry. Throttling is an HTTP 429 (Lambda) or an unmodeled error whose code is one the SDK's own retry
/// classifier treats as throttling (CloudWatch's `Throttling` answers with a 400).
pub(crate) fn classify<E>(
    operation: &str,
    err: SdkError<E, HttpResponse>,
    classify: impl FnOnce(&E) -> Option<Error>,
) -> Error
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    if let Some(e) = err.as_service_error().and_then(classify) {
        return e;
    }
    if err
        .raw_response()
        .is_some_and(|r| r.status().as_u16() == 403)
    {
        return Error::AccessDenied {
            operation: operation.to_owned(),
            message: DisplayErrorContext(&err).to_string(),
        };
    }
    let throttling_code = err
        .as_service_error()
        .and_then(ProvideErrorMetadata::code)
        .is_some_and(|code| THROTTLING_ERRORS.contains(&code));
    if throttling_code
        || err
            .raw_response()
            .is_some_and(|r| r.status().as_u16() == 429)
    {
        return throttled(operation);
    }
    Error::AwsError {
        operation: operation.to_owned(),
        message: DisplayErrorContext(&err).to_string(),
    }
}

pub(crate) fn throttled(operation: &str) -> Error {
    Error::Throttled {
        operation: operation.to_owned(),
    }
}
