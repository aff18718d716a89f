//! The ports implemented with the AWS SDK. Errors are classified with the SDK's typed predicates (never by
//! matching message text) into the core taxonomy.

use std::collections::HashMap;
use std::time::Duration;

use aws_runtime::retries::classifiers::THROTTLING_ERRORS;
use aws_sdk_cloudwatch::types::AlarmType;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{AliasRoutingConfiguration, InvocationType};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::date_time::Format;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use safeshift_core::Error;
use safeshift_core::analysis::VersionMetrics;
use safeshift_core::error::Resource;
use safeshift_core::rollout::{
    AlarmEvidence, AliasState, AliasUpdate, HookResponse, VersionConfig,
};

use crate::ports::{
    ExecutionRecord, InvokeHook, InvokeMode, MetricsQuery, ReadAlarms, ReadAlias, ReadExecution,
    ReadMetrics, ReadVersion, WriteAlias,
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
async fn warm_up<T, E: std::error::Error>(service: &str, call: impl Future<Output = Result<T, E>>) {
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

/// A failed SDK call in the core taxonomy. `classify` maps the operation's modeled errors; throttling and
/// everything unclassified are handled here. Throttling is an HTTP 429 (Lambda) or an unmodeled error whose code
/// is one the SDK's own retry classifier treats as throttling (CloudWatch's `Throttling` answers with a 400).
fn classify<E>(
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

    /// Opens the connection to Lambda during init, with GetAccountSettings (read-only, on no resource).
    pub async fn warm_up(&self) {
        warm_up("lambda", self.client.get_account_settings().send()).await;
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

/// CloudWatch: alarm states and the versions' metrics.
#[derive(Debug, Clone)]
pub struct CloudWatchAdapter {
    client: aws_sdk_cloudwatch::Client,
}

impl CloudWatchAdapter {
    pub fn new(client: aws_sdk_cloudwatch::Client) -> Self {
        Self { client }
    }

    /// Opens the connection to CloudWatch during init, with a one-record DescribeAlarms (already granted).
    pub async fn warm_up(&self) {
        warm_up(
            "cloudwatch",
            self.client.describe_alarms().max_records(1).send(),
        )
        .await;
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

/// Lambda's per-version metrics, as the analysis reads them: (metric, statistic, query id suffix).
const VERSION_METRICS: [(&str, &str, &str); 3] = [
    ("Invocations", "Sum", "invocations"),
    ("Errors", "Sum", "errors"),
    ("Throttles", "Sum", "throttles"),
];
const LATENCY_METRIC: (&str, &str, &str) = ("Duration", "p99", "p99");

impl ReadMetrics for CloudWatchAdapter {
    async fn version_metrics(&self, q: &MetricsQuery<'_>) -> Result<[VersionMetrics; 2], Error> {
        use aws_sdk_cloudwatch::types::{
            Dimension, Metric, MetricDataQuery, MetricStat, StatusCode,
        };
        let resource = format!("{}:{}", q.function_name, q.alias);
        let dimension =
            |name: &str, value: &str| Dimension::builder().name(name).value(value).build();
        let metrics = VERSION_METRICS
            .iter()
            .chain(q.latency.then_some(&LATENCY_METRIC));
        let mut queries = Vec::new();
        for (i, version) in q.versions.iter().enumerate() {
            for (metric, stat, id) in metrics.clone() {
                queries.push(
                    MetricDataQuery::builder()
                        .id(format!("v{i}_{id}"))
                        .metric_stat(
                            MetricStat::builder()
                                .metric(
                                    Metric::builder()
                                        .namespace("AWS/Lambda")
                                        .metric_name(*metric)
                                        .dimensions(dimension("FunctionName", q.function_name))
                                        .dimensions(dimension("Resource", &resource))
                                        .dimensions(dimension("ExecutedVersion", version))
                                        .build(),
                                )
                                .period(i32::try_from(q.window.period_seconds).unwrap_or(i32::MAX))
                                .stat(*stat)
                                .build(),
                        )
                        .return_data(true)
                        .build(),
                );
            }
        }
        let mut values: HashMap<String, Vec<f64>> = HashMap::new();
        let mut next_token = None;
        loop {
            let out = self
                .client
                .get_metric_data()
                .set_metric_data_queries(Some(queries.clone()))
                .start_time(aws_smithy_types::DateTime::from_secs(q.window.start as i64))
                .end_time(aws_smithy_types::DateTime::from_secs(q.window.end as i64))
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| classify("GetMetricData", e, |_| None))?;
            for r in out.metric_data_results() {
                if matches!(
                    r.status_code(),
                    Some(StatusCode::InternalError | StatusCode::Forbidden)
                ) {
                    return Err(Error::Aws {
                        operation: "GetMetricData".into(),
                        message: format!(
                            "query {} answered {:?}",
                            r.id().unwrap_or_default(),
                            r.status_code()
                        ),
                    });
                }
                values
                    .entry(r.id().unwrap_or_default().to_owned())
                    .or_default()
                    .extend_from_slice(r.values());
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => next_token = Some(t.to_owned()),
                _ => break,
            }
        }
        let sum = |i: usize, id: &str| -> u64 {
            let total: f64 = values
                .get(&format!("v{i}_{id}"))
                .into_iter()
                .flatten()
                .sum();
            total.max(0.0).round() as u64
        };
        let version = |i: usize| VersionMetrics {
            version: q.versions[i].to_owned(),
            invocations: sum(i, "invocations"),
            errors: sum(i, "errors"),
            throttles: sum(i, "throttles"),
            // One period spans the window, so there is one value; should a service split it, the worst counts.
            p99_ms: values
                .get(&format!("v{i}_p99"))
                .and_then(|v| v.iter().copied().reduce(f64::max)),
        };
        Ok([version(0), version(1)])
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
