//! The ports implemented with the AWS SDK. Errors are classified with the SDK's typed predicates (never by
//! matching message text) into the core taxonomy.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_cloudwatch::types::AlarmType;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{AliasRoutingConfiguration, InvocationType};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::date_time::Format;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::retry::RetryConfig;
use safeshift_core::Error;
use safeshift_core::error::Resource;
use safeshift_core::rollout::{
    AlarmEvidence, AliasState, AliasUpdate, HookResponse, VersionConfig,
};

use crate::ports::{
    ExecutionRecord, InvokeHook, InvokeMode, ReadAlarms, ReadAlias, ReadExecution, ReadVersion,
    WriteAlias,
};

/// The SDK's standard retry mode: three attempts with exponential backoff and jitter for throttling and
/// transient errors. What outlasts it becomes `Throttled`/`AwsError`, which the state machine retries with its
/// own longer backoff.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(200))
}

/// Loads the shared AWS configuration once, at cold start: region and credentials from the Lambda environment,
/// endpoints from `AWS_ENDPOINT_URL*` (which is how the local stack and the tests point the real clients at a
/// local AWS).
pub async fn load_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(retry_config())
        .load()
        .await
}

/// A failed SDK call in the core taxonomy. `classify` maps the operation's modeled errors; throttling and
/// everything unclassified are handled here.
fn classify<E>(
    operation: &str,
    err: SdkError<E, HttpResponse>,
    classify: impl FnOnce(&E) -> Option<Error>,
) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    if let Some(e) = err.as_service_error().and_then(classify) {
        return e;
    }
    if err
        .raw_response()
        .is_some_and(|r| r.status().as_u16() == 429)
    {
        return throttled(operation);
    }
    Error::Aws {
        operation: operation.to_owned(),
        message: DisplayErrorContext(&err).to_string(),
    }
}

fn throttled(operation: &str) -> Error {
    Error::Throttled {
        operation: operation.to_owned(),
    }
}

fn not_found(resource: Resource, name: String) -> Error {
    Error::ResourceNotFound { resource, name }
}

/// Lambda: aliases, versions, hook invocations.
#[derive(Debug, Clone)]
pub struct LambdaAdapter {
    client: aws_sdk_lambda::Client,
}

impl LambdaAdapter {
    pub fn new(client: aws_sdk_lambda::Client) -> Self {
        Self { client }
    }
}

fn alias_state(
    function_version: Option<&str>,
    routing: Option<&AliasRoutingConfiguration>,
    revision_id: Option<&str>,
) -> AliasState {
    AliasState {
        function_version: function_version.unwrap_or_default().to_owned(),
        weights: routing
            .and_then(|r| r.additional_version_weights())
            .map(|w| w.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default(),
        revision_id: revision_id.unwrap_or_default().to_owned(),
    }
}

impl ReadAlias for LambdaAdapter {
    async fn get_alias(&self, function: &str, alias: &str) -> Result<AliasState, Error> {
        let out = self
            .client
            .get_alias()
            .function_name(function)
            .name(alias)
            .send()
            .await
            .map_err(|e| {
                classify("GetAlias", e, |e| {
                    if e.is_resource_not_found_exception() {
                        Some(not_found(Resource::Alias, format!("{function}:{alias}")))
                    } else if e.is_too_many_requests_exception() {
                        Some(throttled("GetAlias"))
                    } else {
                        None
                    }
                })
            })?;
        Ok(alias_state(
            out.function_version(),
            out.routing_config(),
            out.revision_id(),
        ))
    }
}

impl WriteAlias for LambdaAdapter {
    async fn update_alias(
        &self,
        function: &str,
        alias: &str,
        update: &AliasUpdate,
        revision_id: &str,
    ) -> Result<AliasState, Error> {
        // An empty map clears the routing; omitting the routing config would leave it as it was.
        let weights: HashMap<String, f64> = update
            .weights
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let out = self
            .client
            .update_alias()
            .function_name(function)
            .name(alias)
            .function_version(&update.function_version)
            .routing_config(AliasRoutingConfiguration::builder().set_additional_version_weights(Some(weights)).build())
            .revision_id(revision_id)
            .send()
            .await
            .map_err(|e| {
                classify("UpdateAlias", e, |e| {
                    if e.is_precondition_failed_exception() {
                        Some(Error::AliasConflict {
                            alias: alias.to_owned(),
                            reason: format!(
                                "its revision is no longer {revision_id}: someone else updated it; leaving it as it is"
                            ),
                        })
                    } else if e.is_resource_not_found_exception() {
                        Some(not_found(Resource::Alias, format!("{function}:{alias}")))
                    } else if e.is_too_many_requests_exception() {
                        Some(throttled("UpdateAlias"))
                    } else {
                        None
                    }
                })
            })?;
        Ok(alias_state(
            out.function_version(),
            out.routing_config(),
            out.revision_id(),
        ))
    }
}

impl ReadVersion for LambdaAdapter {
    async fn get_version(&self, function: &str, version: &str) -> Result<VersionConfig, Error> {
        let out = self
            .client
            .get_function_configuration()
            .function_name(function)
            .qualifier(version)
            .send()
            .await
            .map_err(|e| {
                classify("GetFunctionConfiguration", e, |e| {
                    if e.is_resource_not_found_exception() {
                        Some(not_found(
                            Resource::Version,
                            format!("{function}:{version}"),
                        ))
                    } else if e.is_too_many_requests_exception() {
                        Some(throttled("GetFunctionConfiguration"))
                    } else {
                        None
                    }
                })
            })?;
        Ok(VersionConfig {
            version: out.version().unwrap_or(version).to_owned(),
            // Lambda omits State for functions created before states existed; those are usable.
            state: out.state().map_or("Active", |s| s.as_str()).to_owned(),
            last_update_status: out.last_update_status().map(|s| s.as_str().to_owned()),
            state_reason: out.state_reason().map(str::to_owned),
            role: out.role().map(str::to_owned),
            dead_letter_target: out
                .dead_letter_config()
                .and_then(|d| d.target_arn())
                .map(str::to_owned),
        })
    }
}

impl InvokeHook for LambdaAdapter {
    async fn invoke(
        &self,
        function: &str,
        payload: Vec<u8>,
        mode: InvokeMode,
    ) -> Result<HookResponse, Error> {
        let invocation_type = match mode {
            InvokeMode::Sync => InvocationType::RequestResponse,
            InvokeMode::Async => InvocationType::Event,
        };
        let out = self
            .client
            .invoke()
            .function_name(function)
            .invocation_type(invocation_type)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|e| {
                classify("Invoke", e, |e| {
                    if e.is_resource_not_found_exception() {
                        Some(not_found(Resource::Hook, function.to_owned()))
                    } else if e.is_too_many_requests_exception() {
                        Some(throttled("Invoke"))
                    } else {
                        None
                    }
                })
            })?;
        Ok(HookResponse {
            function_error: out.function_error().map(str::to_owned),
            payload: out
                .payload()
                .map(|p| p.as_ref().to_vec())
                .unwrap_or_default(),
        })
    }
}

/// CloudWatch: alarm states.
#[derive(Debug, Clone)]
pub struct CloudWatchAdapter {
    client: aws_sdk_cloudwatch::Client,
}

impl CloudWatchAdapter {
    pub fn new(client: aws_sdk_cloudwatch::Client) -> Self {
        Self { client }
    }
}

fn timestamp(t: Option<&aws_smithy_types::DateTime>) -> Option<String> {
    t.and_then(|t| t.fmt(Format::DateTime).ok())
}

impl ReadAlarms for CloudWatchAdapter {
    async fn describe_alarms(&self, names: &[String]) -> Result<Vec<AlarmEvidence>, Error> {
        let mut found = Vec::new();
        let mut next_token = None;
        loop {
            let out = self
                .client
                .describe_alarms()
                .set_alarm_names(Some(names.to_vec()))
                .alarm_types(AlarmType::MetricAlarm)
                .alarm_types(AlarmType::CompositeAlarm)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| classify("DescribeAlarms", e, |_| None))?;
            for a in out.metric_alarms() {
                found.push(AlarmEvidence {
                    name: a.alarm_name().unwrap_or_default().to_owned(),
                    kind: "metric".into(),
                    state: a
                        .state_value()
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                    reason: a.state_reason().unwrap_or_default().to_owned(),
                    updated_at: timestamp(a.state_updated_timestamp()),
                });
            }
            for a in out.composite_alarms() {
                found.push(AlarmEvidence {
                    name: a.alarm_name().unwrap_or_default().to_owned(),
                    kind: "composite".into(),
                    state: a
                        .state_value()
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                    reason: a.state_reason().unwrap_or_default().to_owned(),
                    updated_at: timestamp(a.state_updated_timestamp()),
                });
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => next_token = Some(t.to_owned()),
                _ => return Ok(found),
            }
        }
    }
}

/// Step Functions: what the reconciler reads of a finished execution.
#[derive(Debug, Clone)]
pub struct StepFunctionsAdapter {
    client: aws_sdk_sfn::Client,
}

impl StepFunctionsAdapter {
    pub fn new(client: aws_sdk_sfn::Client) -> Self {
        Self { client }
    }
}

/// How far back the reconciler looks for the rollout state: a rollout's history is bounded (see the state
/// machine's worst case), and the newest task outputs come first.
const HISTORY_PAGES: usize = 20;

impl ReadExecution for StepFunctionsAdapter {
    async fn describe_execution(&self, arn: &str) -> Result<ExecutionRecord, Error> {
        let out = self
            .client
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .map_err(|e| {
                classify("DescribeExecution", e, |e| {
                    e.is_execution_does_not_exist().then(|| Error::Aws {
                        operation: "DescribeExecution".into(),
                        message: format!("execution {arn} does not exist"),
                    })
                })
            })?;
        Ok(ExecutionRecord {
            status: out.status().as_str().to_owned(),
            input: out.input().map(str::to_owned),
        })
    }

    async fn task_outputs(&self, arn: &str) -> Result<Vec<String>, Error> {
        let mut outputs = Vec::new();
        let mut next_token = None;
        for _ in 0..HISTORY_PAGES {
            let out = self
                .client
                .get_execution_history()
                .execution_arn(arn)
                .reverse_order(true)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| classify("GetExecutionHistory", e, |_| None))?;
            for event in out.events() {
                let output = event
                    .task_succeeded_event_details()
                    .and_then(|d| d.output())
                    .or_else(|| {
                        event
                            .lambda_function_succeeded_event_details()
                            .and_then(|d| d.output())
                    });
                if let Some(o) = output {
                    outputs.push(o.to_owned());
                }
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => next_token = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(outputs)
    }
}
