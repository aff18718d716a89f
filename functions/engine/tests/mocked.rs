//! The handlers over the real SDK adapters with mocked HTTP (aws-smithy-mocks): retries and throttling, typed
//! error classification, and — the point of most tests — which calls were made, and that no write happened
//! where none may.

use std::time::Duration;

use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
use aws_sdk_cloudwatch::types::{
    CompositeAlarm, MetricAlarm, MetricDataQuery, MetricDataResult, StateValue,
    StatusCode as MetricStatus,
};
use aws_sdk_lambda::operation::get_alias::{GetAliasError, GetAliasOutput};
use aws_sdk_lambda::operation::get_function_configuration::{
    GetFunctionConfigurationError, GetFunctionConfigurationOutput,
};
use aws_sdk_lambda::operation::invoke::InvokeOutput;
use aws_sdk_lambda::operation::update_alias::{UpdateAliasError, UpdateAliasOutput};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::error::{PreconditionFailedException, ResourceNotFoundException};
use aws_sdk_lambda::types::{AliasRoutingConfiguration, InvocationType, LastUpdateStatus, State};
use aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput;
use aws_sdk_sfn::operation::get_execution_history::GetExecutionHistoryOutput;
use aws_sdk_sfn::types::{
    ExecutionStatus, HistoryEvent, HistoryEventType, TaskSucceededEventDetails,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use safeshift_core::names::Version;
use safeshift_core::rollout::Rollout;
use safeshift_core::{Deployment, ErrorType};
use safeshift_engine::check_alarms::CheckAlarms;
use safeshift_engine::rollback::Rollback;
use safeshift_engine::run_hook::RunHook;
use safeshift_engine::shift_weight::{ReadyWait, ShiftWeight};
use safeshift_engine::{CloudWatchAdapter, LambdaAdapter, StepFunctionsAdapter, aws};
use serde_json::{Value, json};

const ROLE: &str = "arn:aws:iam::123456789012:role/orders";

fn fast_retries() -> aws_smithy_types::retry::RetryConfig {
    aws::retry_config().with_initial_backoff(Duration::from_millis(1))
}

fn lambda(rules: &[&Rule]) -> LambdaAdapter {
    LambdaAdapter::new(mock_client!(
        aws_sdk_lambda,
        RuleMode::MatchAny,
        rules,
        |c| c.retry_config(fast_retries())
    ))
}

fn cloudwatch(rules: &[&Rule]) -> CloudWatchAdapter {
    CloudWatchAdapter::new(mock_client!(
        aws_sdk_cloudwatch,
        RuleMode::MatchAny,
        rules,
        |c| c.retry_config(fast_retries())
    ))
}

fn sfn(rules: &[&Rule]) -> StepFunctionsAdapter {
    StepFunctionsAdapter::new(mock_client!(aws_sdk_sfn, RuleMode::MatchAny, rules, |c| c
        .retry_config(fast_retries())))
}

fn no_wait() -> ReadyWait {
    ReadyWait {
        timeout: Duration::from_millis(50),
        interval: Duration::from_millis(10),
    }
}

fn input(strategy: Value) -> Value {
    json!({"functionName": "orders", "alias": "live", "targetVersion": "7", "strategy": strategy, "alarms": ["orders-errors"]})
}

fn prepare_event(input: Value) -> Value {
    json!({"prepare": {"deploymentId": "d-1", "input": input}})
}

fn alias_output(version: &str, weights: &[(&str, f64)], revision: &str) -> GetAliasOutput {
    let mut b = GetAliasOutput::builder()
        .function_version(version)
        .revision_id(revision)
        .name("live");
    if !weights.is_empty() {
        b = b.routing_config(
            AliasRoutingConfiguration::builder()
                .set_additional_version_weights(Some(
                    weights.iter().map(|(v, w)| (v.to_string(), *w)).collect(),
                ))
                .build(),
        );
    }
    b.build()
}

fn get_alias(
    version: &'static str,
    weights: &'static [(&'static str, f64)],
    revision: &'static str,
) -> Rule {
    mock!(aws_sdk_lambda::Client::get_alias)
        .then_output(move || alias_output(version, weights, revision))
}

fn version(v: &str, state: State, role: &str) -> GetFunctionConfigurationOutput {
    GetFunctionConfigurationOutput::builder()
        .version(v)
        .state(state)
        .last_update_status(LastUpdateStatus::Successful)
        .role(role)
        .build()
}

/// Versions 6 and 7 (and $LATEST), Active, same role.
fn versions() -> Rule {
    mock!(aws_sdk_lambda::Client::get_function_configuration).then_compute_output(|req| {
        version(req.qualifier().unwrap_or("$LATEST"), State::Active, ROLE)
    })
}

/// Any UpdateAlias, recorded; answers with what was asked and a new revision.
fn update_alias() -> Rule {
    mock!(aws_sdk_lambda::Client::update_alias).then_compute_output(|req| {
        UpdateAliasOutput::builder()
            .function_version(req.function_version().unwrap_or_default())
            .set_routing_config(req.routing_config().cloned())
            .revision_id("r-new")
            .build()
    })
}

fn throttle_response() -> HttpResponse {
    let mut r = HttpResponse::new(
        StatusCode::try_from(429).unwrap(),
        SdkBody::from(r#"{"message":"Rate exceeded","Reason":"CallerRateLimitExceeded"}"#),
    );
    r.headers_mut()
        .insert("x-amzn-errortype", "TooManyRequestsException");
    r
}

async fn prepared(lambda: LambdaAdapter) -> Value {
    ShiftWeight::new(lambda, no_wait())
        .handle(prepare_event(input(json!("Canary10Percent5Minutes"))))
        .await
        .unwrap()
}

// ---- shift-weight: prepare -------------------------------------------------------------------------------

#[tokio::test]
async fn prepare_records_stable_version_and_revision_and_writes_nothing() {
    let (alias, versions, update) = (get_alias("6", &[], "r0"), versions(), update_alias());
    let rollout = prepared(lambda(&[&alias, &versions, &update])).await;
    assert_eq!(rollout["stableVersion"], "6");
    assert_eq!(rollout["revisionId"], "r0");
    assert_eq!(rollout["step"], Value::Null);
    assert_eq!(rollout["stepCount"], 2);
    assert_eq!(update.num_calls(), 0);
}

#[tokio::test]
async fn bad_input_is_rejected_before_any_call() {
    let (alias, versions, update) = (get_alias("6", &[], "r0"), versions(), update_alias());
    let handler = ShiftWeight::new(lambda(&[&alias, &versions, &update]), no_wait());
    let mut bad = input(json!("Canary10Percent5Minutes"));
    bad["targetVersion"] = json!("$LATEST");
    let err = handler.handle(prepare_event(bad)).await.unwrap_err();
    assert_eq!(err.error_type(), ErrorType::InvalidInput);
    assert!(err.to_string().contains("`targetVersion`"), "{err}");
    assert_eq!(
        alias.num_calls() + versions.num_calls() + update.num_calls(),
        0
    );
}

#[tokio::test]
async fn an_event_of_neither_shape_is_invalid_input() {
    let update = update_alias();
    let err = ShiftWeight::new(lambda(&[&update]), no_wait())
        .handle(json!({"functionName": "orders"}))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::InvalidInput);
    assert_eq!(update.num_calls(), 0);
}

#[tokio::test]
async fn missing_alias_and_missing_function_are_named() {
    let not_found =
        || GetAliasError::ResourceNotFoundException(ResourceNotFoundException::builder().build());
    // The function exists ($LATEST answers): the alias is what is missing.
    let (alias, versions, update) = (
        mock!(aws_sdk_lambda::Client::get_alias).then_error(not_found),
        versions(),
        update_alias(),
    );
    let err = ShiftWeight::new(lambda(&[&alias, &versions, &update]), no_wait())
        .handle(prepare_event(input(json!("AllAtOnce"))))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "alias `orders:live` does not exist");

    let no_function = mock!(aws_sdk_lambda::Client::get_function_configuration).then_error(|| {
        GetFunctionConfigurationError::ResourceNotFoundException(
            ResourceNotFoundException::builder().build(),
        )
    });
    let alias = mock!(aws_sdk_lambda::Client::get_alias).then_error(not_found);
    let err = ShiftWeight::new(lambda(&[&alias, &no_function, &update]), no_wait())
        .handle(prepare_event(input(json!("AllAtOnce"))))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::ResourceNotFound);
    assert_eq!(err.to_string(), "function `orders` does not exist");
    assert_eq!(update.num_calls(), 0);
}

#[tokio::test]
async fn missing_target_version_is_named() {
    let alias = get_alias("6", &[], "r0");
    let versions = mock!(aws_sdk_lambda::Client::get_function_configuration)
        .match_requests(|r| r.qualifier() == Some("7"))
        .then_error(|| {
            GetFunctionConfigurationError::ResourceNotFoundException(
                ResourceNotFoundException::builder().build(),
            )
        });
    let update = update_alias();
    let err = ShiftWeight::new(lambda(&[&alias, &versions, &update]), no_wait())
        .handle(prepare_event(input(json!("AllAtOnce"))))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "version `orders:7` does not exist");
    assert_eq!(update.num_calls(), 0);
}

#[tokio::test]
async fn a_split_alias_is_a_deployment_in_progress() {
    let (alias, versions, update) = (
        get_alias("5", &[("6", 0.1)], "r0"),
        versions(),
        update_alias(),
    );
    let err = ShiftWeight::new(lambda(&[&alias, &versions, &update]), no_wait())
        .handle(prepare_event(input(json!("AllAtOnce"))))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::AliasConflict);
    assert!(err.to_string().contains("deployment in progress"), "{err}");
    assert_eq!(update.num_calls(), 0);
}

#[tokio::test]
async fn target_equal_to_stable_is_rejected() {
    let (alias, versions, update) = (get_alias("7", &[], "r0"), versions(), update_alias());
    let err = ShiftWeight::new(lambda(&[&alias, &versions, &update]), no_wait())
        .handle(prepare_event(input(json!("AllAtOnce"))))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::InvalidInput);
    assert!(err.to_string().contains("nothing to deploy"), "{err}");
    assert_eq!(update.num_calls(), 0);
}

#[tokio::test]
async fn versions_with_different_roles_are_rejected_up_front() {
    let alias = get_alias("6", &[], "r0");
    let versions =
        mock!(aws_sdk_lambda::Client::get_function_configuration).then_compute_output(|req| {
            let v = req.qualifier().unwrap_or("$LATEST");
            version(
                v,
                State::Active,
                if v == "7" {
                    "arn:aws:iam::123456789012:role/other"
                } else {
                    ROLE
                },
            )
        });
    let update = update_alias();
    let err = ShiftWeight::new(lambda(&[&alias, &versions, &update]), no_wait())
        .handle(prepare_event(input(json!("AllAtOnce"))))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::IncompatibleVersions);
    assert!(err.to_string().contains("execution roles differ"), "{err}");
    assert_eq!(update.num_calls(), 0);
}

#[tokio::test]
async fn a_pending_target_is_waited_for_then_used() {
    let alias = get_alias("6", &[], "r0");
    let target = mock!(aws_sdk_lambda::Client::get_function_configuration)
        .match_requests(|r| r.qualifier() == Some("7"))
        .sequence()
        .output(|| version("7", State::Pending, ROLE))
        .times(2)
        .output(|| version("7", State::Active, ROLE))
        .build();
    let stable = versions();
    let rollout = prepared(lambda(&[&alias, &target, &stable])).await;
    assert_eq!(rollout["stableVersion"], "6");
    assert_eq!(target.num_calls(), 3);
}

#[tokio::test]
async fn a_target_pending_too_long_fails_without_shifting() {
    let alias = get_alias("6", &[], "r0");
    let target =
        mock!(aws_sdk_lambda::Client::get_function_configuration).then_compute_output(|req| {
            version(req.qualifier().unwrap_or_default(), State::Pending, ROLE)
        });
    let update = update_alias();
    let err = ShiftWeight::new(lambda(&[&alias, &target, &update]), no_wait())
        .handle(prepare_event(input(json!("AllAtOnce"))))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::TargetNotReady);
    assert_eq!(update.num_calls(), 0);
    // Bounded: a 50 ms budget polled every 10 ms is a handful of reads, not an endless loop.
    assert!(
        (2..=7).contains(&target.num_calls()),
        "{} reads",
        target.num_calls()
    );
}

#[tokio::test]
async fn a_target_whose_last_update_failed_is_not_ready() {
    let alias = get_alias("6", &[], "r0");
    let target =
        mock!(aws_sdk_lambda::Client::get_function_configuration).then_compute_output(|req| {
            let mut v = version(req.qualifier().unwrap_or_default(), State::Active, ROLE);
            if req.qualifier() == Some("7") {
                v = GetFunctionConfigurationOutput::builder()
                    .version("7")
                    .state(State::Active)
                    .last_update_status(LastUpdateStatus::Failed)
                    .state_reason("image pull failed")
                    .role(ROLE)
                    .build();
            }
            v
        });
    let err = ShiftWeight::new(lambda(&[&alias, &target]), no_wait())
        .handle(prepare_event(input(json!("AllAtOnce"))))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "target version 7 is not ready: its last update failed: image pull failed"
    );
}

// ---- shift-weight: shift ---------------------------------------------------------------------------------

#[tokio::test]
async fn every_update_carries_the_revision_just_read() {
    let alias = get_alias("6", &[], "r0");
    let update = mock!(aws_sdk_lambda::Client::update_alias)
        .match_requests(|r| r.revision_id() == Some("r0"))
        .then_compute_output(|req| {
            UpdateAliasOutput::builder()
                .function_version(req.function_version().unwrap_or_default())
                .set_routing_config(req.routing_config().cloned())
                .revision_id("r1")
                .build()
        });
    let (versions,) = (versions(),);
    let rollout = prepared(lambda(&[&alias, &versions, &update])).await;
    let shifted = ShiftWeight::new(lambda(&[&alias, &update]), no_wait())
        .handle(json!({ "shift": rollout }))
        .await
        .unwrap();
    assert_eq!(update.num_calls(), 1);
    assert_eq!(
        (shifted["step"].clone(), shifted["percent"].clone()),
        (json!(0), json!(10.0))
    );
    assert_eq!(shifted["revisionId"], "r1");
    assert_eq!(shifted["bakeSeconds"], 300);
}

#[tokio::test]
async fn promotion_points_the_alias_at_the_target_and_clears_routing() {
    let (alias, versions, update) = (get_alias("6", &[], "r0"), versions(), update_alias());
    let mut rollout = prepared(lambda(&[&alias, &versions, &update])).await;
    rollout["step"] = json!(0);
    rollout["percent"] = json!(10.0);
    let split = get_alias("6", &[("7", 0.1)], "r0");
    let promote = mock!(aws_sdk_lambda::Client::update_alias)
        .match_requests(|r| {
            r.function_version() == Some("7")
                && r.routing_config()
                    .and_then(|c| c.additional_version_weights())
                    .is_some_and(|w| w.is_empty())
        })
        .then_output(|| {
            UpdateAliasOutput::builder()
                .function_version("7")
                .revision_id("r2")
                .build()
        });
    let done = ShiftWeight::new(lambda(&[&split, &promote]), no_wait())
        .handle(json!({ "shift": rollout }))
        .await
        .unwrap();
    assert_eq!(promote.num_calls(), 1);
    assert_eq!(done["promoted"], true);
    assert_eq!(done["percent"], 100.0);
}

#[tokio::test]
async fn throttled_twice_then_ok_succeeds_on_the_third_call() {
    let (alias, versions, update) = (get_alias("6", &[], "r0"), versions(), update_alias());
    let rollout = prepared(lambda(&[&alias, &versions, &update])).await;
    let throttled = mock!(aws_sdk_lambda::Client::update_alias)
        .sequence()
        .http_response(throttle_response)
        .times(2)
        .output(|| {
            UpdateAliasOutput::builder()
                .function_version("6")
                .revision_id("r1")
                .build()
        })
        .build();
    let shifted = ShiftWeight::new(lambda(&[&alias, &throttled]), no_wait())
        .handle(json!({ "shift": rollout }))
        .await
        .unwrap();
    assert_eq!(throttled.num_calls(), 3);
    assert_eq!(shifted["revisionId"], "r1");
}

#[tokio::test]
async fn persistent_throttling_is_throttled() {
    let (alias, versions, update) = (get_alias("6", &[], "r0"), versions(), update_alias());
    let rollout = prepared(lambda(&[&alias, &versions, &update])).await;
    let throttled = mock!(aws_sdk_lambda::Client::update_alias)
        .sequence()
        .http_response(throttle_response)
        .repeatedly()
        .build();
    let err = ShiftWeight::new(lambda(&[&alias, &throttled]), no_wait())
        .handle(json!({ "shift": rollout }))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::Throttled);
    assert_eq!(err.to_string(), "UpdateAlias is being throttled by AWS");
    assert_eq!(throttled.num_calls(), 3);
}

#[tokio::test]
async fn a_revision_mismatch_on_write_is_an_alias_conflict() {
    let (alias, versions, update) = (get_alias("6", &[], "r0"), versions(), update_alias());
    let rollout = prepared(lambda(&[&alias, &versions, &update])).await;
    let conflict = mock!(aws_sdk_lambda::Client::update_alias).then_error(|| {
        UpdateAliasError::PreconditionFailedException(
            PreconditionFailedException::builder().build(),
        )
    });
    let err = ShiftWeight::new(lambda(&[&alias, &conflict]), no_wait())
        .handle(json!({ "shift": rollout }))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::AliasConflict);
    assert!(
        err.to_string().contains("its revision is no longer r0"),
        "{err}"
    );
    assert_eq!(conflict.num_calls(), 1, "a conflict is not retried");
}

#[tokio::test]
async fn an_alias_changed_by_someone_else_is_not_overwritten() {
    let (alias, versions, update) = (get_alias("6", &[], "r0"), versions(), update_alias());
    let rollout = prepared(lambda(&[&alias, &versions, &update])).await;
    let theirs = get_alias("8", &[], "r9");
    let err = ShiftWeight::new(lambda(&[&theirs, &update]), no_wait())
        .handle(json!({ "shift": rollout }))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::AliasConflict);
    assert_eq!(update.num_calls(), 0);
}

#[tokio::test]
async fn running_a_step_twice_writes_once_and_succeeds_twice() {
    let (alias, versions, update) = (get_alias("6", &[], "r0"), versions(), update_alias());
    let rollout = prepared(lambda(&[&alias, &versions, &update])).await;
    let first = ShiftWeight::new(lambda(&[&alias, &update]), no_wait())
        .handle(json!({ "shift": rollout.clone() }))
        .await
        .unwrap();
    // The retry sees the alias as the first run left it.
    let split = get_alias("6", &[("7", 0.1)], "r-new");
    let second = ShiftWeight::new(lambda(&[&split, &update]), no_wait())
        .handle(json!({ "shift": rollout }))
        .await
        .unwrap();
    assert_eq!(update.num_calls(), 1);
    // The same rollout, but for when the step was last confirmed: the retry stamps its own time, never earlier.
    assert!(second["stepStartedAt"].as_u64() >= first["stepStartedAt"].as_u64());
    assert_eq!(without_step_start(first), without_step_start(second));
}

fn without_step_start(mut rollout: Value) -> Value {
    let started = rollout
        .as_object_mut()
        .and_then(|r| r.remove("stepStartedAt"));
    assert!(
        started.is_some_and(|s| s.is_u64()),
        "a shifted rollout records its step's start"
    );
    rollout
}

// ---- check-alarms ----------------------------------------------------------------------------------------

fn metric_alarm(name: &str, state: StateValue) -> MetricAlarm {
    MetricAlarm::builder()
        .alarm_name(name)
        .state_value(state)
        .state_reason(format!("{name} threshold crossed"))
        .build()
}

async fn rollout_with_alarms(alarms: &[&str]) -> Value {
    let (alias, versions) = (get_alias("6", &[], "r0"), versions());
    let mut i = input(json!("Canary10Percent5Minutes"));
    i["alarms"] = json!(alarms);
    ShiftWeight::new(lambda(&[&alias, &versions]), no_wait())
        .handle(prepare_event(i))
        .await
        .unwrap()
}

#[tokio::test]
async fn alarms_across_pages_and_kinds_are_all_read() {
    let rollout = rollout_with_alarms(&["errors", "latency", "health"]).await;
    let pages = mock!(aws_sdk_cloudwatch::Client::describe_alarms)
        .sequence()
        .output(|| {
            DescribeAlarmsOutput::builder()
                .metric_alarms(metric_alarm("errors", StateValue::Ok))
                .next_token("page-2")
                .build()
        })
        .output(|| {
            DescribeAlarmsOutput::builder()
                .metric_alarms(metric_alarm("latency", StateValue::Alarm))
                .composite_alarms(
                    CompositeAlarm::builder()
                        .alarm_name("health")
                        .state_value(StateValue::Ok)
                        .state_reason("ok")
                        .build(),
                )
                .build()
        })
        .build();
    let verdict = CheckAlarms::new(cloudwatch(&[&pages]))
        .handle(rollout)
        .await
        .unwrap();
    assert_eq!(pages.num_calls(), 2);
    assert_eq!(verdict["verdict"], "fail");
    assert_eq!(verdict["failing"], json!(["latency"]));
    assert_eq!(verdict["alarms"][1]["reason"], "latency threshold crossed");
    assert_eq!(verdict["alarms"][2]["kind"], "composite");
}

#[tokio::test]
async fn a_missing_alarm_fails_closed() {
    let rollout = rollout_with_alarms(&["errors", "typo-alarm"]).await;
    let one = mock!(aws_sdk_cloudwatch::Client::describe_alarms).then_output(|| {
        DescribeAlarmsOutput::builder()
            .metric_alarms(metric_alarm("errors", StateValue::Ok))
            .build()
    });
    let err = CheckAlarms::new(cloudwatch(&[&one]))
        .handle(rollout)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::ResourceNotFound);
    assert_eq!(err.to_string(), "alarm `typo-alarm` does not exist");
}

#[tokio::test]
async fn no_alarms_configured_passes_without_a_call() {
    let rollout = rollout_with_alarms(&[]).await;
    let describe = mock!(aws_sdk_cloudwatch::Client::describe_alarms)
        .then_output(|| DescribeAlarmsOutput::builder().build());
    let verdict = CheckAlarms::new(cloudwatch(&[&describe]))
        .handle(rollout)
        .await
        .unwrap();
    assert_eq!(verdict["verdict"], "pass");
    assert_eq!(describe.num_calls(), 0);
}

// ---- check-alarms: metric analysis ------------------------------------------------------------------------

/// A rollout at its first step (10%), started at t = 1,000 s, gated by `analysis` alone.
fn analysed_rollout(analysis: Value) -> Value {
    let mut i = input(json!("Canary10Percent5Minutes"));
    i["alarms"] = json!([]);
    i["analysis"] = analysis;
    let d = Deployment::from_value(i).unwrap();
    let r = Rollout::prepared("d-1".into(), d, Version::new(6).unwrap(), "r0".into()).advanced(
        0,
        "r1".into(),
        1_000,
    );
    serde_json::to_value(r).unwrap()
}

fn metric_results(values: &[(&str, f64)]) -> GetMetricDataOutput {
    values
        .iter()
        .fold(GetMetricDataOutput::builder(), |b, (id, v)| {
            b.metric_data_results(
                MetricDataResult::builder()
                    .id(*id)
                    .values(*v)
                    .status_code(MetricStatus::Complete)
                    .build(),
            )
        })
        .build()
}

/// The query's dimensions as (name, value) pairs.
fn dimensions(q: &MetricDataQuery) -> Vec<(String, String)> {
    q.metric_stat()
        .and_then(|s| s.metric())
        .map(|m| m.dimensions())
        .unwrap_or_default()
        .iter()
        .map(|d| {
            (
                d.name().unwrap_or_default().to_owned(),
                d.value().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn analysis_reads_both_versions_in_one_call_and_fails_a_worse_target() {
    let rollout = analysed_rollout(json!({"maxErrorRate": 0.05, "maxP99LatencyIncrease": 0.5}));
    let read = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .match_requests(|r| {
            let queries = r.metric_data_queries();
            queries.len() == 8
                && r.start_time().map(|t| t.secs()) == Some(940)
                && r.end_time().map(|t| t.secs()) == Some(1_240)
                && queries.iter().all(|q| {
                    let id = q.id().unwrap_or_default();
                    let version = if id.starts_with("v0_") { "7" } else { "6" };
                    let stat = q.metric_stat().unwrap();
                    stat.period() == Some(300)
                        && stat.stat() == Some(if id.ends_with("p99") { "p99" } else { "Sum" })
                        && stat.metric().unwrap().namespace() == Some("AWS/Lambda")
                        && dimensions(q)
                            == [
                                ("FunctionName".into(), "orders".into()),
                                ("Resource".into(), "orders:live".into()),
                                ("ExecutedVersion".into(), version.into()),
                            ]
                })
        })
        .then_output(|| {
            metric_results(&[
                ("v0_invocations", 1000.0),
                ("v0_errors", 40.0),
                ("v0_throttles", 0.0),
                ("v0_p99", 130.0),
                ("v1_invocations", 1000.0),
                ("v1_errors", 5.0),
                ("v1_throttles", 0.0),
                ("v1_p99", 100.0),
            ])
        });
    let describe = mock!(aws_sdk_cloudwatch::Client::describe_alarms)
        .then_output(|| DescribeAlarmsOutput::builder().build());
    let report = CheckAlarms::new(cloudwatch(&[&read, &describe]))
        .handle_at(rollout, 1_300)
        .await
        .unwrap();
    assert_eq!(read.num_calls(), 1);
    assert_eq!(describe.num_calls(), 0, "no alarms listed");
    assert_eq!(report["verdict"], "fail", "{report:#}");
    assert_eq!(report["error"], "AnalysisFailed");
    let a = &report["analysis"];
    assert_eq!(a["target"]["errors"], 40);
    assert_eq!(a["stable"]["errors"], 5);
    assert_eq!(a["targetErrorRate"], 0.04);
    assert_eq!(a["comparison"]["test"], "twoProportionZ");
    assert_eq!(a["comparison"]["significant"], true);
    assert!(a["comparison"]["pValue"].as_f64().unwrap() < 0.001);
    assert!((a["p99Increase"].as_f64().unwrap() - 0.3).abs() < 1e-9);
    assert_eq!(
        a["window"],
        json!({"start": 940, "end": 1240, "periodSeconds": 300})
    );
    assert_eq!(a["thresholds"]["maxErrorRate"], 0.05);
    assert_eq!(a["thresholds"]["maxP99LatencyIncrease"], 0.5);
}

#[tokio::test]
async fn a_silent_target_is_extended_then_fails_inconclusive() {
    let rollout = analysed_rollout(json!({"maxErrorRate": 0.01, "maxExtensions": 1}));
    let silent = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .then_output(|| metric_results(&[("v1_invocations", 500.0)]));
    let gates = CheckAlarms::new(cloudwatch(&[&silent]));
    let first = gates.handle_at(rollout.clone(), 1_300).await.unwrap();
    assert_eq!(first["verdict"], "inconclusive", "{first:#}");
    assert_eq!(first["extendSeconds"], 300);
    assert_eq!(first["analysis"]["target"]["invocations"], 0);
    // The state machine extends the bake and sends the state back with this report as `gates`.
    let mut again = rollout;
    again["gates"] = first;
    let second = gates.handle_at(again, 1_600).await.unwrap();
    assert_eq!(second["verdict"], "fail", "{second:#}");
    assert_eq!(second["error"], "AnalysisInconclusive");
    assert_eq!(second["extensions"], 1);
    assert_eq!(
        second["analysis"]["window"]["end"], 1_540,
        "the window grew with the extension"
    );
    assert_eq!(silent.num_calls(), 2);
}

#[tokio::test]
async fn a_promotion_with_no_bake_is_not_analysed_but_a_baked_one_is() {
    let read = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .then_output(|| metric_results(&[("v0_invocations", 100.0)]));
    let gates = CheckAlarms::new(cloudwatch(&[&read]));
    let mut promoted = analysed_rollout(json!({"maxErrorRate": 0.05}));
    promoted["step"] = json!(1);
    promoted["promoted"] = json!(true);
    promoted["percent"] = json!(100.0);
    promoted["bakeSeconds"] = json!(0);
    let report = gates.handle_at(promoted.clone(), 1_300).await.unwrap();
    assert_eq!(report["verdict"], "pass");
    assert!(report.get("analysis").is_none(), "{report:#}");
    assert_eq!(read.num_calls(), 0);
    promoted["deployment"]["bakeSeconds"] = json!(120);
    promoted["bakeSeconds"] = json!(120);
    let report = gates.handle_at(promoted, 1_300).await.unwrap();
    assert_eq!(report["analysis"]["target"]["invocations"], 100);
    assert_eq!(read.num_calls(), 1);
}

#[tokio::test]
async fn the_rollout_keeps_each_passed_steps_verdict() {
    let (alias, update) = (get_alias("6", &[("7", 0.1)], "r1"), update_alias());
    let mut state = analysed_rollout(json!({"maxErrorRate": 0.05}));
    state["revisionId"] = json!("r1");
    state["gates"] =
        json!({"verdict": "pass", "step": 0, "extensions": 0, "failing": [], "alarms": []});
    let next = ShiftWeight::new(lambda(&[&alias, &update]), no_wait())
        .handle(json!({ "shift": state }))
        .await
        .unwrap();
    assert_eq!(next["promoted"], true);
    assert_eq!(
        next["passedGates"],
        json!([{"step": 1, "percent": 10.0, "verdict": "pass", "summary": "pass"}])
    );
}

#[tokio::test]
async fn metric_pages_are_summed() {
    let rollout = analysed_rollout(json!({"maxErrorRate": 0.05, "minInvocations": 100}));
    let pages = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .sequence()
        .output(|| {
            let mut out = metric_results(&[("v0_invocations", 60.0), ("v0_errors", 1.0)]);
            out.next_token = Some("page-2".into());
            out
        })
        .output(|| metric_results(&[("v0_invocations", 60.0), ("v0_errors", 1.0)]))
        .build();
    let report = CheckAlarms::new(cloudwatch(&[&pages]))
        .handle_at(rollout, 1_300)
        .await
        .unwrap();
    assert_eq!(pages.num_calls(), 2);
    assert_eq!(report["analysis"]["target"]["invocations"], 120);
    assert_eq!(report["verdict"], "pass", "{report:#}");
}

fn cloudwatch_throttling() -> HttpResponse {
    HttpResponse::new(
        StatusCode::try_from(400).unwrap(),
        SdkBody::from(
            r#"<ErrorResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>r</RequestId></ErrorResponse>"#,
        ),
    )
}

#[tokio::test]
async fn throttled_metric_reads_are_retried_then_named() {
    let rollout = analysed_rollout(json!({"maxErrorRate": 0.05}));
    let once = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .sequence()
        .http_response(cloudwatch_throttling)
        .output(|| metric_results(&[("v0_invocations", 100.0)]))
        .build();
    let report = CheckAlarms::new(cloudwatch(&[&once]))
        .handle_at(rollout.clone(), 1_300)
        .await
        .unwrap();
    assert_eq!(once.num_calls(), 2);
    assert_eq!(report["verdict"], "pass");
    let always = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .sequence()
        .http_response(cloudwatch_throttling)
        .repeatedly()
        .build();
    let err = CheckAlarms::new(cloudwatch(&[&always]))
        .handle_at(rollout, 1_300)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::Throttled);
}

#[tokio::test]
async fn an_alarm_in_alarm_fails_the_step_without_reading_metrics() {
    let mut rollout = analysed_rollout(json!({"maxErrorRate": 0.05}));
    rollout["deployment"]["alarms"] = json!(["errors"]);
    let describe = mock!(aws_sdk_cloudwatch::Client::describe_alarms).then_output(|| {
        DescribeAlarmsOutput::builder()
            .metric_alarms(metric_alarm("errors", StateValue::Alarm))
            .build()
    });
    let read =
        mock!(aws_sdk_cloudwatch::Client::get_metric_data).then_output(|| metric_results(&[]));
    let report = CheckAlarms::new(cloudwatch(&[&describe, &read]))
        .handle_at(rollout, 1_300)
        .await
        .unwrap();
    assert_eq!(
        (report["verdict"].as_str(), report["error"].as_str()),
        (Some("fail"), Some("AlarmFired"))
    );
    assert_eq!(read.num_calls(), 0);
}

// ---- run-hook ----------------------------------------------------------------------------------------------

async fn rollout_with_hooks() -> Value {
    let (alias, versions) = (get_alias("6", &[], "r0"), versions());
    let mut i = input(json!("Canary10Percent5Minutes"));
    i["hooks"] = json!({"preTraffic": "orders-smoke"});
    ShiftWeight::new(lambda(&[&alias, &versions]), no_wait())
        .handle(prepare_event(i))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_hook_that_raises_fails_with_its_own_message() {
    let rollout = rollout_with_hooks().await;
    let invoke = mock!(aws_sdk_lambda::Client::invoke)
        .match_requests(|r| {
            let event: Value = serde_json::from_slice(r.payload().unwrap().as_ref()).unwrap();
            r.function_name() == Some("orders-smoke")
                && r.invocation_type() == Some(&InvocationType::RequestResponse)
                && event["phase"] == "preTraffic"
                && event["stableVersion"] == "6"
                && event["targetVersion"] == "7"
        })
        .then_output(|| {
            InvokeOutput::builder()
                .function_error("Unhandled")
                .payload(Blob::new(
                    r#"{"errorType":"Error","errorMessage":"checkout returned 500"}"#,
                ))
                .build()
        });
    let err = RunHook::new(lambda(&[&invoke]))
        .handle(json!({"phase": "preTraffic", "rollout": rollout}))
        .await
        .unwrap_err();
    assert_eq!(invoke.num_calls(), 1);
    assert_eq!(err.error_type(), ErrorType::HookFailed);
    assert_eq!(
        err.to_string(),
        "preTraffic hook `orders-smoke` failed: Error: checkout returned 500 (Unhandled error)"
    );
}

#[tokio::test]
async fn a_hook_that_succeeds_passes_and_an_unconfigured_one_is_skipped() {
    let rollout = rollout_with_hooks().await;
    let invoke = mock!(aws_sdk_lambda::Client::invoke).then_output(|| {
        InvokeOutput::builder()
            .status_code(200)
            .payload(Blob::new(r#"{"status":"Succeeded"}"#))
            .build()
    });
    let hooks = RunHook::new(lambda(&[&invoke]));
    let pre = hooks
        .handle(json!({"phase": "preTraffic", "rollout": rollout.clone()}))
        .await
        .unwrap();
    assert_eq!(pre["verdict"], "pass");
    let post = hooks
        .handle(json!({"phase": "postTraffic", "rollout": rollout}))
        .await
        .unwrap();
    assert_eq!(post["verdict"], "skipped");
    assert_eq!(invoke.num_calls(), 1);
}

#[tokio::test]
async fn a_hook_with_a_task_token_is_started_asynchronously_with_the_token() {
    let rollout = rollout_with_hooks().await;
    let invoke = mock!(aws_sdk_lambda::Client::invoke)
        .match_requests(|r| {
            let event: Value = serde_json::from_slice(r.payload().unwrap().as_ref()).unwrap();
            r.invocation_type() == Some(&InvocationType::Event) && event["taskToken"] == "tok-1"
        })
        .then_output(|| InvokeOutput::builder().status_code(202).build());
    let out = RunHook::new(lambda(&[&invoke]))
        .handle(json!({"phase": "preTraffic", "rollout": rollout, "taskToken": "tok-1"}))
        .await
        .unwrap();
    assert_eq!(invoke.num_calls(), 1);
    assert_eq!(out["verdict"], "pending");
}

#[tokio::test]
async fn a_hook_that_does_not_exist_is_named() {
    let rollout = rollout_with_hooks().await;
    let invoke = mock!(aws_sdk_lambda::Client::invoke).then_error(|| {
        aws_sdk_lambda::operation::invoke::InvokeError::ResourceNotFoundException(
            ResourceNotFoundException::builder().build(),
        )
    });
    let err = RunHook::new(lambda(&[&invoke]))
        .handle(json!({"phase": "preTraffic", "rollout": rollout}))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::ResourceNotFound);
    assert_eq!(err.to_string(), "hook `orders-smoke` does not exist");
}

// ---- rollback ----------------------------------------------------------------------------------------------

fn no_sfn() -> StepFunctionsAdapter {
    sfn(&[])
}

#[tokio::test]
async fn rollback_when_already_stable_writes_nothing() {
    let (alias, versions, update) = (get_alias("6", &[], "r0"), versions(), update_alias());
    let rollout = prepared(lambda(&[&alias, &versions, &update])).await;
    let rollback = Rollback::new(lambda(&[&alias, &update]), no_sfn());
    for _ in 0..2 {
        let out = rollback
            .handle(json!({"rollback": rollout.clone()}))
            .await
            .unwrap();
        assert_eq!(out["outcome"], "alreadyStable");
    }
    assert_eq!(update.num_calls(), 0);
}

#[tokio::test]
async fn rollback_reverts_a_split_alias_with_the_revision_just_read() {
    let (alias, versions, update) = (get_alias("6", &[], "r0"), versions(), update_alias());
    let mut rollout = prepared(lambda(&[&alias, &versions, &update])).await;
    rollout["error"] = json!({"Error": "AlarmFired", "Cause": "..."});
    let split = get_alias("6", &[("7", 0.1)], "r5");
    let revert = mock!(aws_sdk_lambda::Client::update_alias)
        .match_requests(|r| {
            r.revision_id() == Some("r5")
                && r.function_version() == Some("6")
                && r.routing_config()
                    .and_then(|c| c.additional_version_weights())
                    .is_some_and(|w| w.is_empty())
        })
        .then_output(|| {
            UpdateAliasOutput::builder()
                .function_version("6")
                .revision_id("r6")
                .build()
        });
    let out = Rollback::new(lambda(&[&split, &revert]), no_sfn())
        .handle(json!({"rollback": rollout}))
        .await
        .unwrap();
    assert_eq!(revert.num_calls(), 1);
    assert_eq!(out["outcome"], "reverted");
    assert_eq!(out["alias"]["functionVersion"], "6");
}

#[tokio::test]
async fn rollback_after_a_failed_prepare_touches_nothing() {
    let (alias, update) = (get_alias("5", &[("6", 0.2)], "r0"), update_alias());
    let state = json!({"functionName": "orders", "alias": "live", "targetVersion": "7", "strategy": "AllAtOnce",
                       "error": {"Error": "AliasConflict"}});
    let out = Rollback::new(lambda(&[&alias, &update]), no_sfn())
        .handle(json!({"rollback": state}))
        .await
        .unwrap();
    assert_eq!(out["outcome"], "nothingShifted");
    assert_eq!(alias.num_calls() + update.num_calls(), 0);
}

fn status_change(status: &str) -> Value {
    json!({
        "version": "0", "id": "e-1", "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states", "account": "123456789012", "time": "2026-11-28T12:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:states:us-east-1:123456789012:execution:safeshift:d-1"],
        "detail": {"executionArn": "arn:aws:states:us-east-1:123456789012:execution:safeshift:d-1",
                   "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:safeshift",
                   "name": "d-1", "status": status}
    })
}

fn describe_execution(status: ExecutionStatus) -> Rule {
    mock!(aws_sdk_sfn::Client::describe_execution).then_output(move || {
        DescribeExecutionOutput::builder()
            .execution_arn("arn:aws:states:us-east-1:123456789012:execution:safeshift:d-1")
            .state_machine_arn("arn:aws:states:us-east-1:123456789012:stateMachine:safeshift")
            .status(status.clone())
            .start_date(aws_smithy_types::DateTime::from_secs(0))
            .input(input(json!("Canary10Percent5Minutes")).to_string())
            .build()
            .unwrap()
    })
}

/// The execution's history as Step Functions keeps it: the given task outputs, as TaskSucceeded events.
fn history(outputs: Vec<String>) -> Rule {
    mock!(aws_sdk_sfn::Client::get_execution_history).then_output(move || {
        let events = outputs.iter().enumerate().map(|(i, output)| {
            HistoryEvent::builder()
                .id(i as i64 + 1)
                .r#type(HistoryEventType::TaskSucceeded)
                .timestamp(aws_smithy_types::DateTime::from_secs(0))
                .task_succeeded_event_details(
                    TaskSucceededEventDetails::builder()
                        .resource_type("lambda")
                        .resource("invoke")
                        .output(output)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap()
        });
        GetExecutionHistoryOutput::builder()
            .set_events(Some(events.collect()))
            .build()
            .unwrap()
    })
}

/// The history of an execution whose Prepare recorded a rollout from version 6 to 7.
async fn prepared_history() -> Rule {
    let (alias, versions) = (get_alias("6", &[], "r0"), versions());
    history(vec![
        prepared(lambda(&[&alias, &versions])).await.to_string(),
    ])
}

#[tokio::test]
async fn the_reconciler_reverts_a_split_left_by_an_aborted_execution() {
    let (describe, history) = (
        describe_execution(ExecutionStatus::Aborted),
        prepared_history().await,
    );
    let (split, update) = (get_alias("6", &[("7", 0.1)], "r3"), update_alias());
    let out = Rollback::new(lambda(&[&split, &update]), sfn(&[&describe, &history]))
        .handle(status_change("ABORTED"))
        .await
        .unwrap();
    assert_eq!(out["outcome"], "reverted");
    assert_eq!(update.num_calls(), 1);
    assert_eq!(out["alias"]["functionVersion"], "6");
}

#[tokio::test]
async fn the_reconciler_never_touches_an_alias_another_deployment_owns() {
    let (describe, history) = (
        describe_execution(ExecutionStatus::TimedOut),
        prepared_history().await,
    );
    let (theirs, update) = (get_alias("6", &[("8", 0.3)], "r3"), update_alias());
    let out = Rollback::new(lambda(&[&theirs, &update]), sfn(&[&describe, &history]))
        .handle(status_change("TIMED_OUT"))
        .await
        .unwrap();
    assert_eq!(out["outcome"], "leftAlone");
    assert_eq!(update.num_calls(), 0);
}

#[tokio::test]
async fn an_execution_that_never_prepared_cannot_revert_another_attempts_split() {
    // A second attempt at the same target failed in Prepare (the alias was busy): the split toward its target
    // belongs to the first attempt, still running.
    let (describe, history) = (
        describe_execution(ExecutionStatus::Failed),
        history(vec!["{}".into()]),
    );
    let (split, update) = (get_alias("6", &[("7", 0.1)], "r3"), update_alias());
    let out = Rollback::new(lambda(&[&split, &update]), sfn(&[&describe, &history]))
        .handle(status_change("FAILED"))
        .await
        .unwrap();
    assert_eq!(out["outcome"], "nothingShifted", "{out}");
    assert_eq!(split.num_calls() + update.num_calls(), 0);
}

#[tokio::test]
async fn the_reconciler_finds_the_stable_version_of_a_promoted_alias_in_the_history() {
    let (describe, history) = (
        describe_execution(ExecutionStatus::Failed),
        prepared_history().await,
    );
    let (promoted, update) = (get_alias("7", &[], "r4"), update_alias());
    let out = Rollback::new(lambda(&[&promoted, &update]), sfn(&[&describe, &history]))
        .handle(status_change("FAILED"))
        .await
        .unwrap();
    assert_eq!(out["outcome"], "reverted", "{out}");
    assert_eq!(out["alias"]["functionVersion"], "6");
    assert_eq!(history.num_calls(), 1);
}

#[tokio::test]
async fn the_reconciler_ignores_executions_that_succeeded() {
    let (describe, update) = (
        describe_execution(ExecutionStatus::Succeeded),
        update_alias(),
    );
    let out = Rollback::new(lambda(&[&update]), sfn(&[&describe]))
        .handle(status_change("SUCCEEDED"))
        .await
        .unwrap();
    assert_eq!(out["outcome"], "ignored");
    assert_eq!(describe.num_calls() + update.num_calls(), 0);
}

// ---- the example hook in examples/hooks keeps the documented contract ---------------------------------------

#[test]
fn the_example_hook_passes_and_fails_by_the_contract() {
    use safeshift_core::rollout::{HookEvent, HookResponse, Phase, judge_hook};
    use std::io::Write;
    use std::process::{Command, Stdio};

    let event = HookEvent {
        deployment_id: "d-1".into(),
        function_name: "orders".into(),
        alias: "live".into(),
        stable_version: "6".into(),
        target_version: "7".into(),
        phase: Phase::PreTraffic,
        percent: 0.0,
        task_token: None,
    };
    let run = |event: Value| {
        let hook = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/hooks/smoke_hook.py"
        );
        let mut child = Command::new("python3")
            .arg(hook)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(event.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        HookResponse {
            function_error: None,
            payload: out.stdout,
        }
    };
    let healthy = serde_json::to_value(&event).unwrap();
    assert!(judge_hook(Phase::PreTraffic, "smoke", &run(healthy.clone())).is_ok());
    let mut failing = healthy;
    failing["simulateFailure"] = json!(true);
    let err = judge_hook(Phase::PreTraffic, "smoke", &run(failing)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "preTraffic hook `smoke` failed: orders:7 health check returned 500"
    );
}

// ---- scenario 9: rollback retries through throttling too ---------------------------------------------------

#[tokio::test]
async fn rollback_rides_out_throttling() {
    let (alias, versions, update) = (get_alias("6", &[], "r0"), versions(), update_alias());
    let rollout = prepared(lambda(&[&alias, &versions, &update])).await;
    let split = get_alias("6", &[("7", 0.1)], "r1");
    let revert = mock!(aws_sdk_lambda::Client::update_alias)
        .sequence()
        .http_response(throttle_response)
        .times(2)
        .output(|| {
            UpdateAliasOutput::builder()
                .function_version("6")
                .revision_id("r2")
                .build()
        })
        .build();
    let out = Rollback::new(lambda(&[&split, &revert]), no_sfn())
        .handle(json!({"rollback": rollout}))
        .await
        .unwrap();
    assert_eq!(out["outcome"], "reverted");
    assert_eq!(revert.num_calls(), 3);
}
