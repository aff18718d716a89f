//! The AWS adapters over mocked SDK clients (aws-smithy-mocks): what only the SDK can show — retries and
//! throttling, typed error classification, pagination, and the requests' wire shape. The handlers' decisions
//! are tested over the in-memory fake in `tests/handlers/`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
use aws_sdk_cloudwatch::types::{
    AlarmType, CompositeAlarm, MetricAlarm, MetricDataQuery, MetricDataResult, StateValue,
    StatusCode as MetricStatus,
};
use aws_sdk_dynamodb::operation::delete_item::{DeleteItemError, DeleteItemOutput};
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemInput, PutItemOutput};
use aws_sdk_dynamodb::operation::scan::ScanOutput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
use aws_sdk_lambda::operation::get_alias::{GetAliasError, GetAliasOutput};
use aws_sdk_lambda::operation::get_function_configuration::{
    GetFunctionConfigurationError, GetFunctionConfigurationOutput,
};
use aws_sdk_lambda::operation::invoke::{InvokeError, InvokeOutput};
use aws_sdk_lambda::operation::update_alias::{UpdateAliasError, UpdateAliasOutput};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::error::{PreconditionFailedException, ResourceNotFoundException};
use aws_sdk_lambda::types::{
    AliasRoutingConfiguration, DeadLetterConfig, InvocationType, LastUpdateStatus, State,
};
use aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput;
use aws_sdk_sfn::operation::get_execution_history::GetExecutionHistoryOutput;
use aws_sdk_sfn::types::{
    ExecutionStatus, HistoryEvent, HistoryEventType, LambdaFunctionSucceededEventDetails,
    TaskSucceededEventDetails,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::timeout::TimeoutConfig;
use safeshift_core::gates::Verdict;
use safeshift_core::gates::alarms::FiredAlarm;
use safeshift_core::names::Version;
use safeshift_core::prepare::VersionConfig;
use safeshift_core::rollout::Rollout;
use safeshift_core::{Deployment, ErrorType};
use safeshift_engine::check_alarms::{CheckAlarms, CheckEvent};
use safeshift_engine::guard::{LONGEST_WRITE, Scope};
use safeshift_engine::ports::{
    AliasLock, Events, Interrupt, InvokeHook, InvokeMode, LockHolder, ReadAlias, ReadVersion,
    ReportTask, Watch, WatchAlarms, Watcher,
};
use safeshift_engine::rollback::{Outcome, Rollback, RollbackEvent, StatusChange, StatusDetail};
use safeshift_engine::run_hook::{HookRequest, HookVerdict, RunHook};
use safeshift_engine::runtime::Handler;
use safeshift_engine::shift_weight::{
    PrepareEvent, ReadyWait, ShiftEvent, ShiftWeight, ShiftWeightEvent, StepState,
};
use safeshift_engine::{
    CloudWatchAdapter, DynamoLockAdapter, LambdaAdapter, StepFunctionsAdapter, aws,
};
use serde_json::{Value, json};

const ROLE: &str = "arn:aws:iam::123456789012:role/orders";
const STATE_MACHINE: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:safeshift-rollout";
/// Execution d-1 of the engine's state machine: its name is the deployment id.
const EXECUTION: &str = "arn:aws:states:us-east-1:123456789012:execution:safeshift-rollout:d-1";
const OTHER_EXECUTION: &str =
    "arn:aws:states:us-east-1:123456789012:execution:safeshift-rollout:d-0";

fn scope() -> Scope {
    Scope::new(STATE_MACHINE)
}

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

/// CloudWatch where the deployment's alarm, `orders-errors`, is OK: what Prepare reads before traffic moves.
fn alarm_ok() -> CloudWatchAdapter {
    let ok = mock!(aws_sdk_cloudwatch::Client::describe_alarms).then_output(|| {
        DescribeAlarmsOutput::builder()
            .metric_alarms(metric_alarm("orders-errors", StateValue::Ok))
            .build()
    });
    cloudwatch(&[&ok])
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

fn locks(rules: &[&Rule]) -> DynamoLockAdapter {
    DynamoLockAdapter::new(
        mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, rules, |c| c
            .retry_config(fast_retries())),
        scope().lock_table(),
    )
}

/// GetItem of `orders:live`'s lock: d-1 holds it, its Prepare found stable version 6.
fn held_by_d1() -> Rule {
    mock!(aws_sdk_dynamodb::Client::get_item)
        .match_requests(|r| r.key().and_then(|k| k.get("aliasKey")) == Some(&s("orders:live")))
        .then_output(|| {
            GetItemOutput::builder()
                .item("aliasKey", s("orders:live"))
                .item("executionArn", s(EXECUTION))
                .item("deploymentId", s("d-1"))
                .item("acquiredAt", n(1_800_000_000))
                .item("stableVersion", s("6"))
                .item("expiresAt", n(1_800_270_000))
                .build()
        })
}

/// DescribeExecution of execution d-1 of the engine's state machine, started with the canary input; stopped long
/// ago unless running.
fn describe_execution(status: ExecutionStatus) -> Rule {
    describe_execution_of(status, input(json!("Canary10Percent5Minutes")))
}

/// DescribeExecution of execution d-1 of the engine's state machine, started with `input`.
fn describe_execution_of(status: ExecutionStatus, input: Value) -> Rule {
    mock!(aws_sdk_sfn::Client::describe_execution)
        .match_requests(|r| r.execution_arn() == Some(EXECUTION))
        .then_output(move || {
            let mut b = DescribeExecutionOutput::builder()
                .execution_arn(EXECUTION)
                .name("d-1")
                .state_machine_arn(STATE_MACHINE)
                .status(status.clone())
                .start_date(aws_smithy_types::DateTime::from_secs(0))
                .input(input.to_string());
            if status != ExecutionStatus::Running {
                b = b.stop_date(aws_smithy_types::DateTime::from_secs(1_000));
            }
            b.build().unwrap()
        })
}

/// Execution d-1 runs: what the guard reads back before a handler acts.
fn running() -> Rule {
    describe_execution(ExecutionStatus::Running)
}

fn shift_weight(
    lambda_rules: &[&Rule],
    sfn_rules: &[&Rule],
) -> ShiftWeight<LambdaAdapter, StepFunctionsAdapter, DynamoLockAdapter, CloudWatchAdapter> {
    ShiftWeight::new(
        lambda(lambda_rules),
        sfn(sfn_rules),
        locks(&[&held_by_d1()]),
        alarm_ok(),
        scope(),
        no_wait(),
    )
}

fn rollback(
    lambda_rules: &[&Rule],
    sfn_rules: &[&Rule],
    lock_rules: &[&Rule],
) -> Rollback<LambdaAdapter, StepFunctionsAdapter, DynamoLockAdapter> {
    Rollback::new(
        lambda(lambda_rules),
        sfn(sfn_rules),
        locks(lock_rules),
        scope(),
        LONGEST_WRITE,
    )
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

/// Any UpdateAlias; answers with what was asked and a new revision.
fn update_alias() -> Rule {
    mock!(aws_sdk_lambda::Client::update_alias).then_compute_output(|req| {
        UpdateAliasOutput::builder()
            .function_version(req.function_version().unwrap_or_default())
            .set_routing_config(req.routing_config().cloned())
            .revision_id("r-new")
            .build()
    })
}

/// The weights an UpdateAlias request sets; `None` when it omits the routing config (which would keep the old).
fn requested_weights(
    r: &aws_sdk_lambda::operation::update_alias::UpdateAliasInput,
) -> Option<Vec<(String, f64)>> {
    let mut w: Vec<(String, f64)> = r
        .routing_config()?
        .additional_version_weights()?
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    w.sort_by(|a, b| a.0.cmp(&b.0));
    Some(w)
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

/// What AWS answers a call the role may not make: an HTTP 403, which the SDK models for no Lambda operation.
fn access_denied_response(action: &str, resource: &str) -> HttpResponse {
    let body = json!({
        "Message": format!(
            "User: arn:aws:sts::123456789012:assumed-role/safeshift/engine is not authorized to perform: {action} \
             on resource: {resource} because no identity-based policy allows the {action} action"
        )
    });
    let mut r = HttpResponse::new(
        StatusCode::try_from(403).unwrap(),
        SdkBody::from(body.to_string()),
    );
    r.headers_mut()
        .insert("x-amzn-errortype", "AccessDeniedException");
    r
}

fn prepare_event(input: Value) -> ShiftWeightEvent {
    ShiftWeightEvent::Prepare(PrepareEvent {
        deployment_id: "d-1".into(),
        execution_arn: Some(EXECUTION.into()),
        input,
    })
}

fn shift(rollout: Rollout) -> ShiftWeightEvent {
    ShiftWeightEvent::Shift(Box::new(ShiftEvent {
        state: StepState {
            rollout,
            gates: None,
        },
        execution_arn: Some(EXECUTION.into()),
    }))
}

/// A canary prepared through the SDK for running execution d-1: GetAlias answers version 6 at revision r0, and
/// the lock is free.
async fn prepared() -> Rollout {
    let (alias, versions, running, lock) = (
        get_alias("6", &[], "r0"),
        versions(),
        running(),
        mock!(aws_sdk_dynamodb::Client::put_item).then_output(|| PutItemOutput::builder().build()),
    );
    let rollout = ShiftWeight::new(
        lambda(&[&alias, &versions]),
        sfn(&[&running]),
        locks(&[&lock]),
        alarm_ok(),
        scope(),
        no_wait(),
    )
    .handle(prepare_event(input(json!("Canary10Percent5Minutes"))))
    .await
    .unwrap();
    assert_eq!((running.num_calls(), lock.num_calls()), (1, 1));
    assert_eq!(
        (
            rollout.aliases[0].stable_version.to_string(),
            rollout.aliases[0].revision_id.as_str()
        ),
        ("6".to_owned(), "r0")
    );
    rollout
}

// ---- Lambda: aliases and versions --------------------------------------------------------------------------

#[tokio::test]
async fn every_update_carries_the_revision_just_read() {
    let rollout = prepared().await;
    let alias = get_alias("6", &[], "r0");
    let update = mock!(aws_sdk_lambda::Client::update_alias)
        .match_requests(|r| {
            r.function_name() == Some("orders")
                && r.name() == Some("live")
                && r.revision_id() == Some("r0")
                && r.function_version() == Some("6")
                && requested_weights(r) == Some(vec![("7".into(), 0.1)])
        })
        .then_compute_output(|req| {
            UpdateAliasOutput::builder()
                .function_version(req.function_version().unwrap_or_default())
                .set_routing_config(req.routing_config().cloned())
                .revision_id("r1")
                .build()
        });
    let shifted = shift_weight(&[&alias, &update], &[&running()])
        .handle(shift(rollout))
        .await
        .unwrap();
    assert_eq!(update.num_calls(), 1);
    assert_eq!((shifted.step, shifted.percent), (Some(0), 10.0));
    assert_eq!(shifted.aliases[0].revision_id, "r1");
    assert_eq!(shifted.bake_seconds, 300);
}

/// A release of `orders:live` and `billing:live`, both from 6 to 7, prepared at revisions o0 and b0.
fn release_of_two() -> (Value, Rollout) {
    let input = json!({
        "release": "checkout-1",
        "targets": [
            {"functionName": "orders", "alias": "live", "targetVersion": "7"},
            {"functionName": "billing", "alias": "live", "targetVersion": "7"}
        ],
        "strategy": "Canary10Percent5Minutes"
    });
    let rollout = Rollout::prepared(
        "d-1".into(),
        Deployment::from_value(input.clone()).unwrap(),
        vec![
            (Version::new(6).unwrap(), "o0".into()),
            (Version::new(6).unwrap(), "b0".into()),
        ],
    );
    (input, rollout)
}

/// GetItem of any alias's lock: d-1 holds it, its Prepare found stable version 6.
fn held_by_d1_any() -> Rule {
    mock!(aws_sdk_dynamodb::Client::get_item).then_compute_output(|r| {
        let key = r.key().and_then(|k| k.get("aliasKey")).cloned().unwrap();
        GetItemOutput::builder()
            .item("aliasKey", key)
            .item("executionArn", s(EXECUTION))
            .item("deploymentId", s("d-1"))
            .item("acquiredAt", n(1_800_000_000))
            .item("stableVersion", s("6"))
            .item("expiresAt", n(1_800_270_000))
            .build()
    })
}

#[tokio::test]
async fn a_release_write_failing_on_the_second_target_after_the_first_landed_is_rolled_back_on_both()
 {
    let (input, rollout) = release_of_two();
    let (running, held) = (
        describe_execution_of(ExecutionStatus::Running, input),
        held_by_d1_any(),
    );
    let (orders_at_6, billing_at_6) = (
        mock!(aws_sdk_lambda::Client::get_alias)
            .match_requests(|r| r.function_name() == Some("orders"))
            .then_output(|| alias_output("6", &[], "o0")),
        mock!(aws_sdk_lambda::Client::get_alias)
            .match_requests(|r| r.function_name() == Some("billing"))
            .then_output(|| alias_output("6", &[], "b0")),
    );
    let orders_write = mock!(aws_sdk_lambda::Client::update_alias)
        .match_requests(|r| r.function_name() == Some("orders") && r.revision_id() == Some("o0"))
        .then_compute_output(|req| {
            UpdateAliasOutput::builder()
                .function_version(req.function_version().unwrap_or_default())
                .set_routing_config(req.routing_config().cloned())
                .revision_id("o1")
                .build()
        });
    let billing_denied = mock!(aws_sdk_lambda::Client::update_alias)
        .match_requests(|r| r.function_name() == Some("billing"))
        .then_http_response(|| {
            access_denied_response(
                "lambda:UpdateAlias",
                "arn:aws:lambda:us-east-1:123456789012:function:billing:live",
            )
        });
    let shifting = ShiftWeight::new(
        lambda(&[&orders_at_6, &billing_at_6, &orders_write, &billing_denied]),
        sfn(&[&running]),
        locks(&[&held]),
        alarm_ok(),
        scope(),
        no_wait(),
    );
    let err = shifting.handle(shift(rollout.clone())).await.unwrap_err();
    assert_eq!(err.error_type(), ErrorType::AccessDenied, "{err}");
    // Both writes were tried (none cancelled by the other's failure); the first landed.
    assert_eq!(
        (orders_write.num_calls(), billing_denied.num_calls()),
        (1, 1)
    );

    // The Catch hands the rollback the state before the step: orders shows the step's split at a revision the
    // release never read; billing is still on 6.
    let (orders_split, billing_stable) = (
        mock!(aws_sdk_lambda::Client::get_alias)
            .match_requests(|r| r.function_name() == Some("orders"))
            .then_output(|| alias_output("6", &[("7", 0.1)], "o1")),
        mock!(aws_sdk_lambda::Client::get_alias)
            .match_requests(|r| r.function_name() == Some("billing"))
            .then_output(|| alias_output("6", &[], "b0")),
    );
    let revert = mock!(aws_sdk_lambda::Client::update_alias)
        .match_requests(|r| {
            r.function_name() == Some("orders")
                && r.revision_id() == Some("o1")
                && r.function_version() == Some("6")
                && requested_weights(r) == Some(vec![])
        })
        .then_output(|| {
            UpdateAliasOutput::builder()
                .function_version("6")
                .revision_id("o2")
                .build()
        });
    let any_other_write = mock!(aws_sdk_lambda::Client::update_alias)
        .then_output(|| UpdateAliasOutput::builder().revision_id("x").build());
    let releases = mock!(aws_sdk_dynamodb::Client::delete_item)
        .then_output(|| DeleteItemOutput::builder().build());
    let (input, _) = release_of_two();
    let running = describe_execution_of(ExecutionStatus::Running, input);
    let out = rollback(
        &[&orders_split, &billing_stable, &revert, &any_other_write],
        &[&running],
        &[&held_by_d1_any(), &releases],
    )
    .handle(RollbackEvent::Catch {
        rollback: serde_json::to_value(&rollout).unwrap(),
        execution_arn: Some(EXECUTION.into()),
    })
    .await
    .unwrap();
    assert_eq!(out.outcome, Outcome::Reverted);
    assert_eq!((revert.num_calls(), any_other_write.num_calls()), (1, 0));
    assert_eq!(
        out.targets.iter().map(|t| t.outcome).collect::<Vec<_>>(),
        [Outcome::Reverted, Outcome::AlreadyStable]
    );
    // Both aliases' locks released.
    assert_eq!(releases.num_calls(), 2);
}

#[tokio::test]
async fn promotion_points_the_alias_at_the_target_and_clears_routing() {
    let mut rollout = prepared().await;
    rollout = rollout.advanced(0, vec!["r0".into()], 1_000);
    let split = get_alias("6", &[("7", 0.1)], "r0");
    // An empty map clears the routing; omitting it would leave the 10% split in place.
    let promote = mock!(aws_sdk_lambda::Client::update_alias)
        .match_requests(|r| {
            r.revision_id() == Some("r0")
                && r.function_version() == Some("7")
                && requested_weights(r) == Some(vec![])
        })
        .then_output(|| {
            UpdateAliasOutput::builder()
                .function_version("7")
                .revision_id("r2")
                .build()
        });
    let done = shift_weight(&[&split, &promote], &[&running()])
        .handle(shift(rollout))
        .await
        .unwrap();
    assert_eq!(promote.num_calls(), 1);
    assert!(done.promoted);
    assert_eq!(done.percent, 100.0);
    assert_eq!(done.aliases[0].revision_id, "r2");
}

#[tokio::test]
async fn throttled_twice_then_ok_succeeds_on_the_third_call() {
    let rollout = prepared().await;
    let alias = get_alias("6", &[], "r0");
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
    let shifted = shift_weight(&[&alias, &throttled], &[&running()])
        .handle(shift(rollout))
        .await
        .unwrap();
    assert_eq!(throttled.num_calls(), 3);
    assert_eq!(shifted.aliases[0].revision_id, "r1");
}

#[tokio::test]
async fn persistent_throttling_is_throttled() {
    let rollout = prepared().await;
    let alias = get_alias("6", &[], "r0");
    let throttled = mock!(aws_sdk_lambda::Client::update_alias)
        .sequence()
        .http_response(throttle_response)
        .repeatedly()
        .build();
    let err = shift_weight(&[&alias, &throttled], &[&running()])
        .handle(shift(rollout))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::Throttled);
    assert_eq!(err.to_string(), "UpdateAlias is being throttled by AWS");
    assert_eq!(throttled.num_calls(), 3);
}

#[tokio::test]
async fn a_revision_mismatch_on_write_is_an_alias_conflict() {
    let rollout = prepared().await;
    let alias = get_alias("6", &[], "r0");
    let conflict = mock!(aws_sdk_lambda::Client::update_alias).then_error(|| {
        UpdateAliasError::PreconditionFailedException(
            PreconditionFailedException::builder().build(),
        )
    });
    let err = shift_weight(&[&alias, &conflict], &[&running()])
        .handle(shift(rollout))
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
async fn a_denied_alias_write_is_access_denied_after_one_call() {
    let rollout = prepared().await;
    let alias = get_alias("6", &[], "r0");
    // Denied every time: were a 403 retried, the mock would count the retries.
    let denied = mock!(aws_sdk_lambda::Client::update_alias)
        .sequence()
        .http_response(|| {
            access_denied_response(
                "lambda:UpdateAlias",
                "arn:aws:lambda:us-east-1:123456789012:function:orders:live",
            )
        })
        .repeatedly()
        .build();
    let err = shift_weight(&[&alias, &denied], &[&running()])
        .handle(shift(rollout))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::AccessDenied);
    let message = err.to_string();
    assert!(message.starts_with("UpdateAlias was denied: "), "{message}");
    assert!(
        message.contains("is not authorized to perform: lambda:UpdateAlias"),
        "{message}"
    );
    assert_eq!(denied.num_calls(), 1, "access denied is not retried");
}

#[tokio::test]
async fn version_configuration_is_read_as_lambda_reports_it() {
    let configs =
        mock!(aws_sdk_lambda::Client::get_function_configuration).then_compute_output(|req| {
            match req.qualifier() {
                Some("7") => GetFunctionConfigurationOutput::builder()
                    .version("7")
                    .state(State::Active)
                    .last_update_status(LastUpdateStatus::Failed)
                    .state_reason("image pull failed")
                    .role(ROLE)
                    .dead_letter_config(
                        DeadLetterConfig::builder()
                            .target_arn("arn:aws:sqs:us-east-1:123456789012:dlq")
                            .build(),
                    )
                    .build(),
                // A function created before Lambda had states reports none: usable.
                _ => GetFunctionConfigurationOutput::builder()
                    .version("6")
                    .build(),
            }
        });
    let lambda = lambda(&[&configs]);
    assert_eq!(
        lambda.get_version("orders", "7").await.unwrap(),
        VersionConfig {
            version: "7".into(),
            state: "Active".into(),
            last_update_status: Some("Failed".into()),
            state_reason: Some("image pull failed".into()),
            role: Some(ROLE.into()),
            dead_letter_target: Some("arn:aws:sqs:us-east-1:123456789012:dlq".into()),
        }
    );
    let old = lambda.get_version("orders", "6").await.unwrap();
    assert_eq!(
        (old.state.as_str(), old.last_update_status),
        ("Active", None)
    );
    // Pending reaches prepare as Pending.
    let pending = mock!(aws_sdk_lambda::Client::get_function_configuration)
        .then_output(|| version("7", State::Pending, ROLE));
    let config = self::lambda(&[&pending])
        .get_version("orders", "7")
        .await
        .unwrap();
    assert_eq!(config.state, "Pending");
}

#[tokio::test]
async fn resource_not_found_names_the_alias_the_version_or_the_hook() {
    let not_found = || ResourceNotFoundException::builder().build();
    let alias = mock!(aws_sdk_lambda::Client::get_alias)
        .then_error(move || GetAliasError::ResourceNotFoundException(not_found()));
    let version = mock!(aws_sdk_lambda::Client::get_function_configuration)
        .then_error(move || GetFunctionConfigurationError::ResourceNotFoundException(not_found()));
    let invoke = mock!(aws_sdk_lambda::Client::invoke)
        .then_error(move || InvokeError::ResourceNotFoundException(not_found()));
    let lambda = lambda(&[&alias, &version, &invoke]);

    let err = lambda.get_alias("orders", "live").await.unwrap_err();
    assert_eq!(err.error_type(), ErrorType::ResourceNotFound);
    assert_eq!(err.to_string(), "alias `orders:live` does not exist");

    let err = lambda.get_version("orders", "7").await.unwrap_err();
    assert_eq!(err.error_type(), ErrorType::ResourceNotFound);
    assert_eq!(err.to_string(), "version `orders:7` does not exist");

    let err = lambda
        .invoke("orders-smoke", b"{}".to_vec(), InvokeMode::Sync)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::ResourceNotFound);
    assert_eq!(err.to_string(), "hook `orders-smoke` does not exist");

    assert_eq!(
        (alias.num_calls(), version.num_calls(), invoke.num_calls()),
        (1, 1, 1),
        "not found is not retried"
    );
}

// ---- Lambda: hooks -----------------------------------------------------------------------------------------

fn hook_request(rollout: Rollout, task_token: Option<&str>) -> HookRequest {
    HookRequest {
        phase: safeshift_core::hooks::Phase::PreTraffic,
        rollout,
        task_token: task_token.map(str::to_owned),
        entered_at: None,
        execution_arn: Some(EXECUTION.into()),
        error: None,
    }
}

fn hooked_input() -> Value {
    hooked_with(json!("orders-smoke"))
}

fn hooked_with(pre_traffic: Value) -> Value {
    let mut i = input(json!("Canary10Percent5Minutes"));
    i["hooks"] = json!({ "preTraffic": pre_traffic });
    i
}

/// run-hook for execution d-1 running `input`, with mocked Lambda and Step Functions calls beyond its
/// DescribeExecution.
fn run_hook_on(
    input: Value,
    lambda_rules: &[&Rule],
    sfn_rules: &[&Rule],
) -> RunHook<LambdaAdapter, StepFunctionsAdapter, DynamoLockAdapter> {
    let described = describe_execution_of(ExecutionStatus::Running, input);
    let mut rules: Vec<&Rule> = vec![&described];
    rules.extend_from_slice(sfn_rules);
    // The hook's wait is registered with the alarms, as a bake's is.
    let registered = mock!(aws_sdk_dynamodb::Client::update_item)
        .match_requests(|r| r.key().and_then(|k| k.get("aliasKey")) == Some(&s("orders:live")))
        .then_output(|| UpdateItemOutput::builder().build());
    RunHook::new(
        lambda(lambda_rules),
        sfn(&rules),
        locks(&[&held_by_d1(), &registered]),
        scope(),
    )
}

/// run-hook with a mocked Lambda, for execution d-1 running the hooked input and holding the alias.
fn run_hook(
    lambda_rules: &[&Rule],
) -> RunHook<LambdaAdapter, StepFunctionsAdapter, DynamoLockAdapter> {
    RunHook::new(
        lambda(lambda_rules),
        sfn(&[&describe_execution_of(
            ExecutionStatus::Running,
            hooked_input(),
        )]),
        locks(&[&held_by_d1()]),
        scope(),
    )
}

fn rollout_with_hooks() -> Rollout {
    Rollout::prepared(
        "d-1".into(),
        Deployment::from_value(hooked_input()).unwrap(),
        vec![(Version::new(6).unwrap(), "r0".into())],
    )
}

#[tokio::test]
async fn a_hook_that_raises_fails_with_its_own_message() {
    let invoke = mock!(aws_sdk_lambda::Client::invoke)
        .match_requests(|r| {
            let event: Value = serde_json::from_slice(r.payload().unwrap().as_ref()).unwrap();
            r.function_name() == Some("orders-smoke")
                && r.invocation_type() == Some(&InvocationType::RequestResponse)
                && event["phase"] == "preTraffic"
                && event["stableVersion"] == "6"
                && event["targetVersion"] == "7"
                && event.get("taskToken").is_none()
        })
        .then_output(|| {
            InvokeOutput::builder()
                .function_error("Unhandled")
                .payload(Blob::new(
                    r#"{"errorType":"Error","errorMessage":"checkout returned 500"}"#,
                ))
                .build()
        });
    let err = run_hook(&[&invoke])
        .handle(hook_request(rollout_with_hooks(), None))
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
async fn a_callback_hook_is_started_asynchronously_with_the_token_and_answers_itself() {
    let callback = json!({"function": "orders-smoke", "mode": "callback", "timeoutSeconds": 600});
    let invoke = mock!(aws_sdk_lambda::Client::invoke)
        .match_requests(|r| {
            let event: Value = serde_json::from_slice(r.payload().unwrap().as_ref()).unwrap();
            r.function_name() == Some("orders-smoke")
                && r.invocation_type() == Some(&InvocationType::Event)
                && event["taskToken"] == "tok-1"
        })
        .then_output(|| InvokeOutput::builder().status_code(202).build());
    let rollout = Rollout::prepared(
        "d-1".into(),
        Deployment::from_value(hooked_with(callback.clone())).unwrap(),
        vec![(Version::new(6).unwrap(), "r0".into())],
    );
    assert_eq!(rollout.hook_timeouts.pre_traffic, 600);
    // No SendTaskSuccess is mocked: run-hook must not answer for a callback hook.
    let out = run_hook_on(hooked_with(callback), &[&invoke], &[])
        .handle(hook_request(rollout, Some("tok-1")))
        .await
        .unwrap();
    assert_eq!(invoke.num_calls(), 1);
    assert_eq!(out.verdict, HookVerdict::Pending);
}

#[tokio::test]
async fn a_sync_hook_under_a_waiting_state_is_answered_by_run_hook_with_its_output() {
    let invoke = mock!(aws_sdk_lambda::Client::invoke)
        .match_requests(|r| {
            let event: Value = serde_json::from_slice(r.payload().unwrap().as_ref()).unwrap();
            r.invocation_type() == Some(&InvocationType::RequestResponse)
                && event.get("taskToken").is_none()
        })
        .then_output(|| {
            InvokeOutput::builder()
                .status_code(200)
                .payload(Blob::new(r#"{"status":"Succeeded","checked":12}"#))
                .build()
        });
    let answered = mock!(aws_sdk_sfn::Client::send_task_success)
        .match_requests(|r| {
            let out: Value = serde_json::from_str(r.output().unwrap()).unwrap();
            r.task_token() == Some("tok-1")
                && out["verdict"] == "pass"
                && out["output"]["checked"] == 12
        })
        .then_output(|| {
            aws_sdk_sfn::operation::send_task_success::SendTaskSuccessOutput::builder().build()
        });
    let out = run_hook_on(hooked_input(), &[&invoke], &[&answered])
        .handle(hook_request(rollout_with_hooks(), Some("tok-1")))
        .await
        .unwrap();
    assert_eq!((invoke.num_calls(), answered.num_calls()), (1, 1));
    assert_eq!(out.verdict, HookVerdict::Pass);
}

#[tokio::test]
async fn a_hook_outside_the_allowed_prefix_is_access_denied_after_one_call() {
    // The role may invoke only SafeshiftHook_*: Lambda refuses `orders-smoke` with a 403.
    let denied = mock!(aws_sdk_lambda::Client::invoke)
        .sequence()
        .http_response(|| {
            access_denied_response(
                "lambda:InvokeFunction",
                "arn:aws:lambda:us-east-1:123456789012:function:orders-smoke",
            )
        })
        .repeatedly()
        .build();
    let err = run_hook(&[&denied])
        .handle(hook_request(rollout_with_hooks(), None))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::AccessDenied);
    assert!(err.to_string().starts_with("Invoke was denied: "), "{err}");
    assert_eq!(denied.num_calls(), 1, "access denied is not retried");
}

// ---- Timeouts ----------------------------------------------------------------------------------------------

/// Records the timeouts each call runs with, by operation: what the orchestrator will enforce.
#[derive(Debug, Clone, Default)]
struct SeenTimeouts(Arc<Mutex<Vec<(String, TimeoutConfig)>>>);

impl Intercept for SeenTimeouts {
    fn name(&self) -> &'static str {
        "SeenTimeouts"
    }

    // Not read_before_execution: a client's interceptor runs that before the operation's own configuration
    // (its name, a config override) is applied.
    fn read_before_serialization(
        &self,
        _: &BeforeSerializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg.load::<Metadata>().map(|m| m.name().to_owned());
        let timeouts = cfg.load::<TimeoutConfig>().cloned();
        self.0.lock().unwrap().push((
            operation.unwrap_or_default(),
            timeouts.unwrap_or_else(TimeoutConfig::disabled),
        ));
        Ok(())
    }
}

#[tokio::test]
async fn every_client_is_loaded_with_the_operation_and_attempt_timeouts() {
    // The region is set so that loading resolves nothing from the machine; the timeouts are load_config's own.
    let config = aws::config_loader()
        .region(aws_config::Region::from_static("us-east-1"))
        .load()
        .await;
    let t = config.timeout_config().unwrap();
    assert_eq!(t.operation_timeout(), Some(aws::OPERATION_TIMEOUT));
    assert_eq!(
        t.operation_attempt_timeout(),
        Some(aws::OPERATION_ATTEMPT_TIMEOUT)
    );
    assert!(
        t.connect_timeout().is_some(),
        "the SDK's connect timeout is kept"
    );
}

#[tokio::test]
async fn a_synchronous_hook_gets_its_own_timeout_and_every_other_call_the_engines() {
    let seen = SeenTimeouts::default();
    let connect = Duration::from_secs(1);
    let mut client_timeouts = aws::timeout_config();
    client_timeouts.take_defaults_from(&TimeoutConfig::builder().connect_timeout(connect).build());
    let alias = get_alias("6", &[], "r0");
    let invoke = mock!(aws_sdk_lambda::Client::invoke)
        .then_output(|| InvokeOutput::builder().status_code(200).build());
    let lambda = LambdaAdapter::new(mock_client!(
        aws_sdk_lambda,
        RuleMode::MatchAny,
        &[&alias, &invoke],
        |c| c
            .retry_config(fast_retries())
            .timeout_config(client_timeouts.clone())
            .interceptor(seen.clone())
    ));
    lambda.get_alias("orders", "live").await.unwrap();
    lambda
        .invoke("orders-smoke", b"{}".to_vec(), InvokeMode::Async)
        .await
        .unwrap();
    lambda
        .invoke("orders-smoke", b"{}".to_vec(), InvokeMode::Sync)
        .await
        .unwrap();
    let seen: Vec<_> = seen
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|(op, t)| {
            (
                op.clone(),
                t.operation_timeout(),
                t.operation_attempt_timeout(),
                t.connect_timeout(),
            )
        })
        .collect();
    let engine = (
        Some(aws::OPERATION_TIMEOUT),
        Some(aws::OPERATION_ATTEMPT_TIMEOUT),
        Some(connect),
    );
    // One attempt as long as the operation: a hook that ran out of time is not started again.
    let hook = (
        Some(aws::HOOK_INVOKE_TIMEOUT),
        Some(aws::HOOK_INVOKE_TIMEOUT),
        Some(connect),
    );
    let row = |op: &str, (o, a, c)| (op.to_owned(), o, a, c);
    assert_eq!(
        seen,
        [
            row("GetAlias", engine),
            row("Invoke", engine),
            row("Invoke", hook)
        ]
    );
}

// ---- CloudWatch: alarms ------------------------------------------------------------------------------------

fn metric_alarm(name: &str, state: StateValue) -> MetricAlarm {
    MetricAlarm::builder()
        .alarm_name(name)
        .state_value(state)
        .state_reason(format!("{name} threshold crossed"))
        .build()
}

/// A canary at its first step (10%), started at t = 1,000 s, with `alarms` and `analysis` from `input`.
fn at_step_one(alarms: Value, analysis: Option<Value>) -> CheckEvent {
    let mut i = input(json!("Canary10Percent5Minutes"));
    i["alarms"] = alarms;
    if let Some(a) = analysis {
        i["analysis"] = a;
    }
    let d = Deployment::from_value(i).unwrap();
    let rollout = Rollout::prepared(
        "d-1".into(),
        d,
        vec![(Version::new(6).unwrap(), "r0".into())],
    )
    .advanced(0, vec!["r1".into()], 1_000);
    CheckEvent {
        rollout,
        gates: None,
    }
}

fn analysed(analysis: Value) -> CheckEvent {
    at_step_one(json!([]), Some(analysis))
}

#[tokio::test]
async fn alarms_across_pages_and_kinds_are_all_read() {
    let pages = mock!(aws_sdk_cloudwatch::Client::describe_alarms)
        .match_requests(|r| {
            r.alarm_names() == ["errors", "latency", "health"]
                && r.alarm_types() == [AlarmType::MetricAlarm, AlarmType::CompositeAlarm]
        })
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
                        .state_updated_timestamp(aws_smithy_types::DateTime::from_secs(
                            1_790_000_000,
                        ))
                        .build(),
                )
                .build()
        })
        .build();
    let report = CheckAlarms::new(cloudwatch(&[&pages]))
        .check_at(
            at_step_one(json!(["errors", "latency", "health"]), None),
            1_300,
        )
        .await
        .unwrap();
    assert_eq!(pages.num_calls(), 2);
    assert_eq!(report.verdict, Verdict::Fail);
    assert_eq!(report.error, Some(ErrorType::AlarmFired));
    let alarms = serde_json::to_value(report.result("alarms").unwrap()).unwrap();
    assert_eq!(alarms["findings"], json!(["in ALARM: latency"]));
    let evidence = &alarms["evidence"]["alarms"];
    assert_eq!(evidence[1]["reason"], "latency threshold crossed");
    assert_eq!(evidence[1]["kind"], "metric");
    assert_eq!(
        evidence[2],
        json!({"name": "health", "kind": "composite", "state": "OK", "reason": "ok",
               "updatedAt": "2026-09-21T14:13:20Z"})
    );
}

// ---- CloudWatch: metrics -----------------------------------------------------------------------------------

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
    let read = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .match_requests(|r| {
            let queries = r.metric_data_queries();
            // The step's own traffic: from its shift at 1,000 to the metric delay before the last look at 1,360.
            queries.len() == 8
                && r.start_time().map(|t| t.secs()) == Some(1_000)
                && r.end_time().map(|t| t.secs()) == Some(1_300)
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
        .check_at(
            analysed(json!({"maxErrorRate": 0.05, "maxP99LatencyIncrease": 0.5})),
            1_360,
        )
        .await
        .unwrap();
    assert_eq!(read.num_calls(), 1);
    assert_eq!(describe.num_calls(), 0, "no alarms listed");
    assert_eq!(report.verdict, Verdict::Fail, "{report:#?}");
    assert_eq!(report.error, Some(ErrorType::AnalysisFailed));
    let a = serde_json::to_value(report.result("analysis").unwrap()).unwrap();
    let e = &a["evidence"];
    assert_eq!(e["target"]["errors"], 40);
    assert_eq!(e["stable"]["errors"], 5);
    assert_eq!(e["target"]["p99Ms"], 130.0);
    assert_eq!(e["targetErrorRate"], 0.04);
    assert_eq!(e["comparison"]["test"], "twoProportionZ");
    assert_eq!(e["comparison"]["significant"], true);
    assert!(e["comparison"]["pValue"].as_f64().unwrap() < 0.001);
    assert!((e["p99Increase"].as_f64().unwrap() - 0.3).abs() < 1e-9);
    assert_eq!(
        e["window"],
        json!({"start": 1000, "end": 1300, "periodSeconds": 300})
    );
    assert_eq!(e["thresholds"]["maxErrorRate"], 0.05);
    assert_eq!(e["thresholds"]["maxP99LatencyIncrease"], 0.5);
}

#[tokio::test]
async fn metric_pages_are_summed() {
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
        .check_at(
            analysed(json!({"maxErrorRate": 0.05, "minInvocations": 100})),
            1_300,
        )
        .await
        .unwrap();
    assert_eq!(pages.num_calls(), 2);
    let a = serde_json::to_value(report.result("analysis").unwrap()).unwrap();
    assert_eq!(a["evidence"]["target"]["invocations"], 120);
    assert_eq!(a["evidence"]["target"]["errors"], 2);
    assert_eq!(report.verdict, Verdict::Pass, "{report:#?}");
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
    let once = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .sequence()
        .http_response(cloudwatch_throttling)
        .output(|| metric_results(&[("v0_invocations", 100.0)]))
        .build();
    let report = CheckAlarms::new(cloudwatch(&[&once]))
        .check_at(analysed(json!({"maxErrorRate": 0.05})), 1_300)
        .await
        .unwrap();
    assert_eq!(once.num_calls(), 2);
    assert_eq!(report.verdict, Verdict::Pass);
    let always = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .sequence()
        .http_response(cloudwatch_throttling)
        .repeatedly()
        .build();
    let err = CheckAlarms::new(cloudwatch(&[&always]))
        .check_at(analysed(json!({"maxErrorRate": 0.05})), 1_300)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::Throttled);
    assert_eq!(err.to_string(), "GetMetricData is being throttled by AWS");
    assert_eq!(always.num_calls(), 3);
}

// ---- rollback and Step Functions ---------------------------------------------------------------------------

/// DeleteItem of d-1's lock, as the rollback releases it.
fn release() -> Rule {
    mock!(aws_sdk_dynamodb::Client::delete_item)
        .match_requests(|r| {
            r.key().and_then(|k| k.get("aliasKey")) == Some(&s("orders:live"))
                && r.expression_attribute_values().and_then(|v| v.get(":me")) == Some(&s(EXECUTION))
        })
        .then_output(|| DeleteItemOutput::builder().build())
}

/// PutItem of the mark that says the reconciler handled d-1, so a later delivery of its event is ignored.
fn mark_reconciled() -> Rule {
    mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(|r| {
            r.item().and_then(|i| i.get("aliasKey")) == Some(&s(&format!("reconciled:{EXECUTION}")))
        })
        .then_output(|| PutItemOutput::builder().build())
}

/// GetItem of the alias's lock: no one holds it.
fn no_holder() -> Rule {
    mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| GetItemOutput::builder().build())
}

#[tokio::test]
async fn rollback_reverts_a_split_alias_with_the_revision_just_read() {
    // The prepared rollout's first write landed but its answer was lost: the alias routes its first step.
    let rollout = prepared().await;
    let split = get_alias("6", &[("7", 0.1)], "r5");
    let revert = mock!(aws_sdk_lambda::Client::update_alias)
        .match_requests(|r| {
            r.revision_id() == Some("r5")
                && r.function_version() == Some("6")
                && requested_weights(r) == Some(vec![])
        })
        .then_output(|| {
            UpdateAliasOutput::builder()
                .function_version("6")
                .revision_id("r6")
                .build()
        });
    let (running, release) = (running(), release());
    let out = rollback(&[&split, &revert], &[&running], &[&held_by_d1(), &release])
        .handle(RollbackEvent::Catch {
            rollback: serde_json::to_value(rollout).unwrap(),
            execution_arn: Some(EXECUTION.into()),
        })
        .await
        .unwrap();
    assert_eq!(revert.num_calls(), 1);
    assert_eq!((running.num_calls(), release.num_calls()), (1, 1));
    assert_eq!(out.outcome, Outcome::Reverted);
    let alias = out.alias.unwrap();
    assert_eq!(
        (alias.function_version.as_str(), alias.revision_id.as_str()),
        ("6", "r6")
    );
}

#[tokio::test]
async fn rollback_rides_out_throttling() {
    let rollout = prepared().await;
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
    let out = rollback(
        &[&split, &revert],
        &[&running()],
        &[&held_by_d1(), &release()],
    )
    .handle(RollbackEvent::Catch {
        rollback: serde_json::to_value(rollout).unwrap(),
        execution_arn: Some(EXECUTION.into()),
    })
    .await
    .unwrap();
    assert_eq!(out.outcome, Outcome::Reverted);
    assert_eq!(revert.num_calls(), 3);
}

fn status_change(status: &str) -> RollbackEvent {
    RollbackEvent::StatusChange(StatusChange {
        detail_type: "Step Functions Execution Status Change".into(),
        detail: StatusDetail {
            execution_arn: EXECUTION.into(),
            status: status.into(),
        },
    })
}

fn task_succeeded(id: i64, output: &str) -> HistoryEvent {
    HistoryEvent::builder()
        .id(id)
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
}

#[tokio::test]
async fn the_reconciler_finds_the_stable_version_of_a_promoted_alias_in_the_history() {
    // The history, newest first, as asked: a newer unrelated task output, the promotion's rollout (at revision
    // r4, 6 -> 7), then Prepare's.
    let prepared = prepared().await;
    let promoted =
        prepared
            .advanced(0, vec!["r1".into()], 1_000)
            .advanced(1, vec!["r4".into()], 1_300);
    assert!(promoted.promoted);
    let (prepared, promoted) = (
        serde_json::to_string(&prepared).unwrap(),
        serde_json::to_string(&promoted).unwrap(),
    );
    let describe = describe_execution(ExecutionStatus::Failed);
    let history = mock!(aws_sdk_sfn::Client::get_execution_history)
        .match_requests(|r| r.execution_arn() == Some(EXECUTION) && r.reverse_order() == Some(true))
        .then_output(move || {
            GetExecutionHistoryOutput::builder()
                .events(task_succeeded(4, r#"{"verdict":"pass"}"#))
                .events(task_succeeded(3, &promoted))
                .events(task_succeeded(2, &prepared))
                .events(
                    HistoryEvent::builder()
                        .id(1)
                        .r#type(HistoryEventType::ExecutionStarted)
                        .timestamp(aws_smithy_types::DateTime::from_secs(0))
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap()
        });
    let (promoted, update) = (get_alias("7", &[], "r4"), update_alias());
    let (holder, release, mark) = (no_holder(), release(), mark_reconciled());
    let out = rollback(
        &[&promoted, &update],
        &[&describe, &history],
        &[&holder, &release, &mark],
    )
    .handle(status_change("FAILED"))
    .await
    .unwrap();
    assert_eq!(out.outcome, Outcome::Reverted, "{out:?}");
    assert_eq!(out.alias.unwrap().function_version, "6");
    assert_eq!(describe.num_calls(), 1);
    assert_eq!(history.num_calls(), 1);
    assert_eq!(update.num_calls(), 1);
    // Read twice: the reconciled mark (none yet), then the alias's lock; then released, and the execution marked.
    assert_eq!(
        (holder.num_calls(), release.num_calls(), mark.num_calls()),
        (2, 1, 1)
    );
}

#[tokio::test]
async fn the_history_is_read_across_pages_and_lambda_events() {
    // Prepare's rollout is on the second page, as a LambdaFunctionSucceeded event (a direct Lambda task).
    let rollout = serde_json::to_string(&prepared().await).unwrap();
    // Stopped just now: the write whose answer was lost may still be in play.
    let stopped_now = safeshift_engine::unix_now();
    let describe = mock!(aws_sdk_sfn::Client::describe_execution).then_output(move || {
        DescribeExecutionOutput::builder()
            .execution_arn(EXECUTION)
            .name("d-1")
            .state_machine_arn(STATE_MACHINE)
            .status(ExecutionStatus::Aborted)
            .start_date(aws_smithy_types::DateTime::from_secs(0))
            .stop_date(aws_smithy_types::DateTime::from_secs(stopped_now as i64))
            .input(input(json!("Canary10Percent5Minutes")).to_string())
            .build()
            .unwrap()
    });
    let history = mock!(aws_sdk_sfn::Client::get_execution_history)
        .sequence()
        .output(|| {
            GetExecutionHistoryOutput::builder()
                .events(task_succeeded(9, "{}"))
                .next_token("page-2")
                .build()
                .unwrap()
        })
        .output(move || {
            GetExecutionHistoryOutput::builder()
                .events(
                    HistoryEvent::builder()
                        .id(2)
                        .r#type(HistoryEventType::LambdaFunctionSucceeded)
                        .timestamp(aws_smithy_types::DateTime::from_secs(0))
                        .lambda_function_succeeded_event_details(
                            LambdaFunctionSucceededEventDetails::builder()
                                .output(&rollout)
                                .build(),
                        )
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap()
        })
        .build();
    // The first step's write landed, its answer lost.
    let split = get_alias("6", &[("7", 0.1)], "r3");
    let revert = mock!(aws_sdk_lambda::Client::update_alias)
        .match_requests(|r| r.revision_id() == Some("r3") && requested_weights(r) == Some(vec![]))
        .then_output(|| {
            UpdateAliasOutput::builder()
                .function_version("6")
                .revision_id("r4")
                .build()
        });
    // No wait for later writes here (that is the fake tests'): the read, the revert, the release.
    let (holder, release) = (no_holder(), release());
    let out = Rollback::new(
        lambda(&[&split, &revert]),
        sfn(&[&describe, &history]),
        locks(&[&holder, &release]),
        scope(),
        Duration::ZERO,
    )
    .handle(status_change("ABORTED"))
    .await
    .unwrap();
    assert_eq!(out.outcome, Outcome::Reverted, "{out:?}");
    assert_eq!(history.num_calls(), 2);
    assert_eq!(revert.num_calls(), 1);
    // Not marked reconciled yet: a write may still land, so the event EventBridge delivers must not be ignored.
    assert_eq!((holder.num_calls(), release.num_calls()), (2, 1));
}

#[tokio::test]
async fn a_missing_execution_is_resource_not_found_and_refused_by_the_guard() {
    let missing = mock!(aws_sdk_sfn::Client::describe_execution).then_error(|| {
        aws_sdk_sfn::operation::describe_execution::DescribeExecutionError::ExecutionDoesNotExist(
            aws_sdk_sfn::types::error::ExecutionDoesNotExist::builder().build(),
        )
    });
    let err = shift_weight(&[], &[&missing])
        .handle(shift(prepared().await))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::ExecutionMismatch);
    assert_eq!(
        err.to_string(),
        format!("refused: execution {EXECUTION} does not exist")
    );
    assert_eq!(missing.num_calls(), 1, "not found is not retried");
}

// ---- DynamoDB: the alias lock ------------------------------------------------------------------------------

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn holder() -> LockHolder {
    LockHolder {
        execution_arn: EXECUTION.into(),
        deployment_id: "d-1".into(),
        acquired_at: 1_800_000_000,
        stable_version: Some("6".into()),
        ..LockHolder::default()
    }
}

const ACQUIRE: &str = "attribute_not_exists(aliasKey) OR executionArn = :me OR expiresAt < :now";

/// A PutItem rule that keeps every request it sees, answering with `answer`.
fn put_item(
    seen: &std::sync::Arc<std::sync::Mutex<Vec<PutItemInput>>>,
    fail_condition: bool,
) -> Rule {
    let seen = seen.clone();
    let rule = mock!(aws_sdk_dynamodb::Client::put_item).match_requests(move |r| {
        seen.lock().unwrap().push(r.clone());
        true
    });
    if fail_condition {
        rule.then_error(|| {
            PutItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder().build(),
            )
        })
    } else {
        rule.then_output(|| PutItemOutput::builder().build())
    }
}

fn values(r: &PutItemInput) -> Vec<(String, AttributeValue)> {
    let mut v: Vec<_> = r
        .expression_attribute_values()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[tokio::test]
async fn acquire_is_one_conditional_put_and_a_failed_condition_means_someone_holds_the_lock() {
    let seen = Default::default();
    let put = put_item(&seen, true);
    let acquired = locks(&[&put])
        .acquire("orders:live", &holder(), 1_800_270_000, None)
        .await
        .unwrap();
    assert!(!acquired);
    assert_eq!(put.num_calls(), 1, "a held lock is an answer, not retried");
    let seen = seen.lock().unwrap();
    let r = &seen[0];
    assert_eq!(r.table_name(), Some("safeshift-locks"));
    assert_eq!(r.condition_expression(), Some(ACQUIRE));
    assert_eq!(
        values(r),
        [
            (":me".into(), s(EXECUTION)),
            (":now".into(), n(1_800_000_000))
        ]
    );
    let item = r.item().unwrap();
    assert_eq!(item.get("aliasKey"), Some(&s("orders:live")));
    assert_eq!(item.get("executionArn"), Some(&s(EXECUTION)));
    assert_eq!(item.get("deploymentId"), Some(&s("d-1")));
    assert_eq!(item.get("acquiredAt"), Some(&n(1_800_000_000)));
    assert_eq!(item.get("expiresAt"), Some(&n(1_800_270_000)));
}

#[tokio::test]
async fn acquire_takes_over_only_from_the_execution_found_ended() {
    let seen = Default::default();
    let put = put_item(&seen, false);
    let acquired = locks(&[&put])
        .acquire(
            "orders:live",
            &holder(),
            1_800_270_000,
            Some(OTHER_EXECUTION),
        )
        .await
        .unwrap();
    assert!(acquired);
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen[0].condition_expression(),
        Some(format!("{ACQUIRE} OR executionArn = :previous").as_str())
    );
    assert_eq!(
        values(&seen[0]),
        [
            (":me".into(), s(EXECUTION)),
            (":now".into(), n(1_800_000_000)),
            (":previous".into(), s(OTHER_EXECUTION)),
        ]
    );
}

#[tokio::test]
async fn release_deletes_only_this_executions_lock_and_someone_elses_is_no_error() {
    let delete = mock!(aws_sdk_dynamodb::Client::delete_item)
        .match_requests(|r| {
            r.table_name() == Some("safeshift-locks")
                && r.key().and_then(|k| k.get("aliasKey")) == Some(&s("orders:live"))
                && r.condition_expression() == Some("executionArn = :me")
                && r.expression_attribute_values().and_then(|v| v.get(":me")) == Some(&s(EXECUTION))
        })
        .then_error(|| {
            DeleteItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder().build(),
            )
        });
    locks(&[&delete])
        .release("orders:live", EXECUTION)
        .await
        .unwrap();
    assert_eq!(delete.num_calls(), 1);
}

fn dynamo_throttling() -> HttpResponse {
    HttpResponse::new(
        StatusCode::try_from(400).unwrap(),
        SdkBody::from(
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"Rate exceeded"}"#,
        ),
    )
}

#[tokio::test]
async fn a_throttled_lock_table_is_retried_then_throttled() {
    let put = mock!(aws_sdk_dynamodb::Client::put_item)
        .sequence()
        .http_response(dynamo_throttling)
        .repeatedly()
        .build();
    let err = locks(&[&put])
        .acquire("orders:live", &holder(), 1_800_270_000, None)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::Throttled);
    assert_eq!(err.to_string(), "PutItem is being throttled by AWS");
    assert_eq!(put.num_calls(), 3);
}

#[tokio::test]
async fn holder_reads_the_lock_back() {
    let get = mock!(aws_sdk_dynamodb::Client::get_item)
        .match_requests(|r| {
            r.table_name() == Some("safeshift-locks")
                && r.key().and_then(|k| k.get("aliasKey")) == Some(&s("orders:live"))
                && r.consistent_read() == Some(true)
        })
        .then_output(|| {
            GetItemOutput::builder()
                .item("aliasKey", s("orders:live"))
                .item("executionArn", s(EXECUTION))
                .item("deploymentId", s("d-1"))
                .item("acquiredAt", n(1_800_000_000))
                .item("stableVersion", s("6"))
                .item("expiresAt", n(1_800_270_000))
                .build()
        });
    assert_eq!(
        locks(&[&get]).holder("orders:live").await.unwrap(),
        Some((holder(), 1_800_270_000))
    );
    let free = no_holder();
    assert_eq!(locks(&[&free]).holder("orders:live").await.unwrap(), None);
    assert_eq!((get.num_calls(), free.num_calls()), (1, 1));
}

// ---- Watching the alarms: the hold's wait and fired alarm, and failing a wait --------------------------------

fn conditional_update_failed() -> aws_sdk_dynamodb::operation::update_item::UpdateItemError {
    aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(
        ConditionalCheckFailedException::builder().build(),
    )
}

const FIRED_JSON: &str =
    r#"{"alarm":"orders-errors","reason":"Threshold Crossed","changedAt":"2026-11-29T10:00:05Z"}"#;

fn fired() -> FiredAlarm {
    FiredAlarm::new("orders-errors", "Threshold Crossed", "2026-11-29T10:00:05Z")
}

#[tokio::test]
async fn a_wait_registers_only_on_its_own_hold_with_no_alarm_fired() {
    let update = mock!(aws_sdk_dynamodb::Client::update_item)
        .match_requests(|r| {
            r.key().and_then(|k| k.get("aliasKey")) == Some(&s("orders:live"))
                && r.update_expression() == Some("SET taskToken = :token, waitSince = :since")
                && r.condition_expression()
                    == Some("executionArn = :me AND attribute_not_exists(firedAlarm) AND (attribute_not_exists(waitSince) OR waitSince <= :since)")
                && r.expression_attribute_values()
                    .and_then(|v| v.get(":token"))
                    == Some(&s("tok"))
        })
        .then_output(|| UpdateItemOutput::builder().build());
    assert_eq!(
        locks(&[&update])
            .watch("orders:live", EXECUTION, "tok", 1_795_946_400_000)
            .await
            .unwrap(),
        Watch::Watching
    );
    // Refused: the hold says why, the alarm that fired.
    let refused =
        mock!(aws_sdk_dynamodb::Client::update_item).then_error(conditional_update_failed);
    let fired_hold = mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| {
        GetItemOutput::builder()
            .item("aliasKey", s("orders:live"))
            .item("executionArn", s(EXECUTION))
            .item("firedAlarm", s(FIRED_JSON))
            .build()
    });
    assert_eq!(
        locks(&[&refused, &fired_hold])
            .watch("orders:live", EXECUTION, "tok", 1_795_946_400_000)
            .await
            .unwrap(),
        Watch::Fired(fired())
    );
    let gone = no_holder();
    assert_eq!(
        locks(&[&refused, &gone])
            .watch("orders:live", EXECUTION, "tok", 1_795_946_400_000)
            .await
            .unwrap(),
        Watch::NotHeld
    );
    // Refused with the hold still ours and no alarm: a later wait is registered, and stays.
    let later = held_by_d1();
    assert_eq!(
        locks(&[&refused, &later])
            .watch("orders:live", EXECUTION, "tok", 1_795_946_400_000)
            .await
            .unwrap(),
        Watch::Superseded
    );
}

#[tokio::test]
async fn a_fired_alarm_is_recorded_once_and_returns_the_wait_to_fail() {
    let update = mock!(aws_sdk_dynamodb::Client::update_item)
        .match_requests(|r| {
            r.update_expression() == Some("SET firedAlarm = if_not_exists(firedAlarm, :fired)")
                && r.condition_expression()
                    == Some("executionArn = :me AND (attribute_not_exists(alarmsCheckedAt) OR alarmsCheckedAt <= :changed)")
                && r.expression_attribute_values().and_then(|v| v.get(":changed"))
                    == Some(&n(1_795_946_405))
                && r.return_values() == Some(&aws_sdk_dynamodb::types::ReturnValue::AllNew)
        })
        .then_output(|| {
            UpdateItemOutput::builder()
                .attributes("executionArn", s(EXECUTION))
                .attributes("firedAlarm", s(FIRED_JSON))
                .attributes("taskToken", s("tok"))
                .build()
        });
    let later = FiredAlarm::new("orders-errors", "a later crossing", "2026-11-29T10:09:00Z");
    assert_eq!(
        locks(&[&update])
            .record_fired("orders:live", EXECUTION, &later, 1_795_946_405)
            .await
            .unwrap(),
        Some(Interrupt {
            fired: fired(),
            task_token: Some("tok".into())
        }),
        "the first alarm recorded stays the reason"
    );
    let refused =
        mock!(aws_sdk_dynamodb::Client::update_item).then_error(conditional_update_failed);
    assert_eq!(
        locks(&[&refused])
            .record_fired("orders:live", EXECUTION, &fired(), 1_795_946_405)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn the_holds_that_list_an_alarm_are_read_across_every_page() {
    let scan = mock!(aws_sdk_dynamodb::Client::scan)
        .match_requests(|r| {
            r.filter_expression() == Some("contains(#alarms, :alarm)")
                && r.expression_attribute_names()
                    .and_then(|n| n.get("#alarms"))
                    .map(String::as_str)
                    == Some("alarms")
                && r.expression_attribute_values()
                    .and_then(|v| v.get(":alarm"))
                    == Some(&s("orders-errors"))
        })
        .sequence()
        .output(|| {
            ScanOutput::builder()
                .items(HashMap::from([
                    ("aliasKey".to_owned(), s("orders:live")),
                    ("executionArn".to_owned(), s(EXECUTION)),
                ]))
                .last_evaluated_key("aliasKey", s("orders:live"))
                .build()
        })
        .output(|| {
            ScanOutput::builder()
                .items(HashMap::from([
                    ("aliasKey".to_owned(), s("payments:live")),
                    ("executionArn".to_owned(), s("arn:other")),
                ]))
                .build()
        })
        .build();
    let found = locks(&[&scan]).watchers("orders-errors").await.unwrap();
    assert_eq!(
        found,
        [
            Watcher {
                key: "orders:live".into(),
                execution_arn: EXECUTION.into()
            },
            Watcher {
                key: "payments:live".into(),
                execution_arn: "arn:other".into()
            }
        ]
    );
    assert_eq!(scan.num_calls(), 2);
}

#[tokio::test]
async fn failing_a_wait_that_already_ended_is_not_an_error() {
    use aws_sdk_sfn::operation::send_task_failure::{SendTaskFailureError, SendTaskFailureOutput};
    use aws_sdk_sfn::types::error::{InvalidToken, TaskDoesNotExist, TaskTimedOut};
    let sent = mock!(aws_sdk_sfn::Client::send_task_failure)
        .match_requests(|r| {
            r.task_token() == Some("tok")
                && r.error() == Some("AlarmFired")
                && r.cause() == Some("why")
        })
        .then_output(|| SendTaskFailureOutput::builder().build());
    assert!(
        sfn(&[&sent])
            .fail_task("tok", "AlarmFired", "why")
            .await
            .unwrap()
    );
    let ended: [fn() -> SendTaskFailureError; 3] = [
        || SendTaskFailureError::TaskTimedOut(TaskTimedOut::builder().build()),
        || SendTaskFailureError::TaskDoesNotExist(TaskDoesNotExist::builder().build()),
        || SendTaskFailureError::InvalidToken(InvalidToken::builder().build()),
    ];
    for error in ended {
        let rule = mock!(aws_sdk_sfn::Client::send_task_failure).then_error(error);
        assert!(
            !sfn(&[&rule])
                .fail_task("tok", "AlarmFired", "why")
                .await
                .unwrap()
        );
    }
    let throttled = mock!(aws_sdk_sfn::Client::send_task_failure)
        .sequence()
        .http_response(|| {
            HttpResponse::new(
                StatusCode::try_from(400).unwrap(),
                SdkBody::from(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#),
            )
        })
        .repeatedly()
        .build();
    let err = sfn(&[&throttled])
        .fail_task("tok", "AlarmFired", "why")
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::Throttled);
}

/// The watcher over mocked clients, as EventBridge hands it an alarm: three holds list the alarm — one waiting
/// (interrupted), one whose wait already ended (recorded for its next step), one released since the scan (not
/// held) — and an event for an alarm nobody lists scans and writes nothing.
#[tokio::test]
async fn the_watcher_hands_an_alarm_to_every_deployment_that_lists_it_and_touches_nothing_else() {
    use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
    use aws_sdk_sfn::operation::send_task_failure::{SendTaskFailureError, SendTaskFailureOutput};
    use aws_sdk_sfn::types::error::TaskTimedOut;
    use safeshift_engine::watch_gates::WatchGates;
    let hold = |key: &str, arn: &str| {
        HashMap::from([
            ("aliasKey".to_owned(), s(key)),
            ("executionArn".to_owned(), s(arn)),
        ])
    };
    let (waiting, ended, gone) = ("arn:exec:waiting", "arn:exec:ended", "arn:exec:gone");
    let scan = mock!(aws_sdk_dynamodb::Client::scan)
        .match_requests(|r| {
            r.expression_attribute_values()
                .and_then(|v| v.get(":alarm"))
                == Some(&s("orders-errors"))
        })
        .then_output(move || {
            ScanOutput::builder()
                .items(hold("orders:live", waiting))
                .items(hold("payments:live", ended))
                .items(hold("search:live", gone))
                .build()
        });
    let token_of = |arn: &str| format!("token-of-{arn}");
    let record = |arn: &'static str| {
        mock!(aws_sdk_dynamodb::Client::update_item)
            .match_requests(move |r| {
                r.expression_attribute_values().and_then(|v| v.get(":me")) == Some(&s(arn))
            })
            .then_output(move || {
                UpdateItemOutput::builder()
                    .attributes("executionArn", s(arn))
                    .attributes("firedAlarm", s(FIRED_JSON))
                    .attributes("taskToken", s(&token_of(arn)))
                    .build()
            })
    };
    let (record_waiting, record_ended) = (record(waiting), record(ended));
    let record_gone = mock!(aws_sdk_dynamodb::Client::update_item)
        .match_requests(move |r| {
            r.expression_attribute_values().and_then(|v| v.get(":me")) == Some(&s(gone))
        })
        .then_error(|| {
            UpdateItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder().build(),
            )
        });
    let interrupted = mock!(aws_sdk_sfn::Client::send_task_failure)
        .match_requests(move |r| {
            r.task_token() == Some(token_of(waiting).as_str())
                && r.error() == Some("AlarmFired")
                && r.cause()
                    .is_some_and(|c| c.contains("orders-errors (went to ALARM at"))
        })
        .then_output(|| SendTaskFailureOutput::builder().build());
    let timed_out = mock!(aws_sdk_sfn::Client::send_task_failure)
        .match_requests(move |r| r.task_token() == Some(token_of(ended).as_str()))
        .then_error(|| SendTaskFailureError::TaskTimedOut(TaskTimedOut::builder().build()));
    // CloudWatch bears the events out: the alarms are in ALARM.
    let in_alarm = mock!(aws_sdk_cloudwatch::Client::describe_alarms).then_output(|| {
        DescribeAlarmsOutput::builder()
            .metric_alarms(metric_alarm("orders-errors", StateValue::Alarm))
            .metric_alarms(metric_alarm("payments-latency", StateValue::Alarm))
            .build()
    });
    let watcher = WatchGates::new(
        locks(&[&scan, &record_waiting, &record_ended, &record_gone]),
        sfn(&[]),
        sfn(&[&interrupted, &timed_out]),
        cloudwatch(&[&in_alarm]),
        scope(),
    );
    let event = |alarm: &str| {
        serde_json::from_value(json!({
            "detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch",
            "time": "2026-11-29T10:00:06Z",
            "detail": {"alarmName": alarm, "state": {"value": "ALARM", "reason": "Threshold Crossed",
                       "timestamp": "2026-11-29T10:00:05.000+0000"}}
        }))
        .unwrap()
    };
    let report =
        serde_json::to_value(watcher.handle(event("orders-errors")).await.unwrap()).unwrap();
    assert_eq!(
        report["deployments"],
        json!([
            {"executionArn": waiting, "outcome": "interrupted"},
            {"executionArn": ended, "outcome": "recorded"},
            {"executionArn": gone, "outcome": "notHeld"}
        ])
    );
    assert_eq!(
        (
            interrupted.num_calls(),
            timed_out.num_calls(),
            record_gone.num_calls()
        ),
        (1, 1, 1)
    );
    // An alarm no deployment lists: the scan finds nothing, nothing is written or failed.
    let nobody =
        mock!(aws_sdk_dynamodb::Client::scan).then_output(|| ScanOutput::builder().build());
    let untouched = mock!(aws_sdk_dynamodb::Client::update_item)
        .then_output(|| UpdateItemOutput::builder().build());
    let no_fail = mock!(aws_sdk_sfn::Client::send_task_failure)
        .then_output(|| SendTaskFailureOutput::builder().build());
    let watcher = WatchGates::new(
        locks(&[&nobody, &untouched]),
        sfn(&[]),
        sfn(&[&no_fail]),
        cloudwatch(&[&in_alarm]),
        scope(),
    );
    let report =
        serde_json::to_value(watcher.handle(event("payments-latency")).await.unwrap()).unwrap();
    assert_eq!(report["deployments"], json!([]));
    assert_eq!(
        (
            nobody.num_calls(),
            untouched.num_calls(),
            no_fail.num_calls()
        ),
        (1, 0, 0)
    );
}

fn eventbridge(rules: &[&Rule]) -> safeshift_engine::EventBridgeAdapter {
    safeshift_engine::EventBridgeAdapter::new(
        mock_client!(aws_sdk_eventbridge, RuleMode::MatchAny, rules, |c| c
            .retry_config(fast_retries())),
        "default",
    )
}

#[tokio::test]
async fn a_lifecycle_event_goes_to_the_bus_with_its_source_type_and_detail() {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&sent);
    let put = mock!(aws_sdk_eventbridge::Client::put_events)
        .match_requests(move |r| {
            seen.lock().unwrap().extend(r.entries().iter().map(|e| {
                (
                    e.source().unwrap_or_default().to_owned(),
                    e.detail_type().unwrap_or_default().to_owned(),
                    e.event_bus_name().unwrap_or_default().to_owned(),
                    serde_json::from_str::<Value>(e.detail().unwrap_or("null")).unwrap(),
                )
            }));
            true
        })
        .then_output(|| {
            aws_sdk_eventbridge::operation::put_events::PutEventsOutput::builder()
                .failed_entry_count(0)
                .build()
        });
    // A step with no gates passes, and says so.
    let report = CheckAlarms::new(cloudwatch(&[]))
        .with_events(Events(Arc::new(eventbridge(&[&put]))))
        .handle(at_step_one(json!([]), None))
        .await
        .unwrap();
    assert_eq!(report.verdict, Verdict::Pass);
    let sent = sent.lock().unwrap();
    let (source, detail_type, bus, detail) = sent.last().expect("published");
    assert_eq!(
        (source.as_str(), detail_type.as_str(), bus.as_str()),
        ("safeshift", "Gates Passed", "default")
    );
    assert_eq!(detail["step"], 1);
    assert!(detail["summary"].as_str().is_some(), "{detail:#}");
}

#[tokio::test]
async fn an_eventbridge_outage_never_fails_or_holds_up_a_step() {
    let down = mock!(aws_sdk_eventbridge::Client::put_events).then_http_response(|| {
        HttpResponse::new(
            StatusCode::try_from(500).unwrap(),
            SdkBody::from(r#"{"__type":"InternalException","message":"down"}"#),
        )
    });
    let report = CheckAlarms::new(cloudwatch(&[]))
        .with_events(Events(Arc::new(eventbridge(&[&down]))))
        .handle(at_step_one(json!([]), None))
        .await
        .unwrap();
    assert_eq!(report.verdict, Verdict::Pass);
    // Attempted, with the SDK's retries, then dropped: the step's verdict is untouched.
    assert_eq!(down.num_calls(), 3, "the event was attempted");
}

#[tokio::test]
async fn the_reconciler_never_takes_a_waits_answer_for_a_rollout() {
    // The newest task output is what someone answered a wait's token with (an operator's control, a callback
    // hook): here shaped like the prepared rollout, which would say nothing shifted. The engine's own newest
    // rollout, the promotion at r4, is what counts.
    let prepared = prepared().await;
    let promoted =
        prepared
            .advanced(0, vec!["r1".into()], 1_000)
            .advanced(1, vec!["r4".into()], 1_300);
    let (forged, promoted) = (
        serde_json::to_string(&prepared).unwrap(),
        serde_json::to_string(&promoted).unwrap(),
    );
    let describe = describe_execution(ExecutionStatus::Failed);
    let history = mock!(aws_sdk_sfn::Client::get_execution_history).then_output(move || {
        let answer = HistoryEvent::builder()
            .id(4)
            .r#type(HistoryEventType::TaskSucceeded)
            .timestamp(aws_smithy_types::DateTime::from_secs(0))
            .task_succeeded_event_details(
                TaskSucceededEventDetails::builder()
                    .resource_type("lambda")
                    .resource("invoke.waitForTaskToken")
                    .output(&forged)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        GetExecutionHistoryOutput::builder()
            .events(answer)
            .events(task_succeeded(3, &promoted))
            .build()
            .unwrap()
    });
    let (alias, update) = (get_alias("7", &[], "r4"), update_alias());
    let (holder, release, mark) = (no_holder(), release(), mark_reconciled());
    let out = rollback(
        &[&alias, &update],
        &[&describe, &history],
        &[&holder, &release, &mark],
    )
    .handle(status_change("FAILED"))
    .await
    .unwrap();
    assert_eq!(out.outcome, Outcome::Reverted, "{out:?}");
    assert_eq!(out.alias.unwrap().function_version, "6");
}

// ---- The CloudFormation provider's calls ---------------------------------------------------------------------

/// CreateAlias on an alias that exists is `AliasConflict` (never retried, never overwritten); DeleteAlias of one
/// that is gone is done; a missing alias is `None` only once the function itself is found.
#[tokio::test]
async fn provider_alias_calls_are_classified_by_the_sdks_typed_errors() {
    use aws_sdk_lambda::operation::create_alias::CreateAliasError;
    use aws_sdk_lambda::operation::delete_alias::DeleteAliasError;
    use aws_sdk_lambda::types::error::ResourceConflictException;
    use safeshift_engine::ports::ManageAlias;

    let exists = mock!(aws_sdk_lambda::Client::create_alias).then_error(|| {
        CreateAliasError::ResourceConflictException(ResourceConflictException::builder().build())
    });
    let gone = mock!(aws_sdk_lambda::Client::delete_alias).then_error(|| {
        DeleteAliasError::ResourceNotFoundException(ResourceNotFoundException::builder().build())
    });
    let no_alias = mock!(aws_sdk_lambda::Client::get_alias).then_error(|| {
        GetAliasError::ResourceNotFoundException(ResourceNotFoundException::builder().build())
    });
    let function_there = mock!(aws_sdk_lambda::Client::get_function_configuration)
        .then_output(|| version("$LATEST", State::Active, "role"));
    let lambda = lambda(&[&exists, &gone, &no_alias, &function_there]);

    let err = lambda
        .create_alias("orders", "live", "1", "mark")
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::AliasConflict);
    assert_eq!(exists.num_calls(), 1);
    lambda.delete_alias("orders", "live").await.unwrap();
    assert_eq!(lambda.find_alias("orders", "live").await.unwrap(), None);
    assert_eq!(
        (
            gone.num_calls(),
            no_alias.num_calls(),
            function_there.num_calls()
        ),
        (1, 1, 1)
    );
}

/// The owning stack is the `aws:cloudformation:stack-id` tag; tags withheld (no lambda:ListTags) is an error that
/// says so, never "no stack".
#[tokio::test]
async fn the_owning_stack_is_the_stack_id_tag_and_withheld_tags_are_access_denied() {
    use aws_sdk_lambda::operation::get_function::GetFunctionOutput;
    use aws_sdk_lambda::types::TagsError;
    use safeshift_engine::ports::ManageAlias;

    let tagged = mock!(aws_sdk_lambda::Client::get_function)
        .match_requests(|r| r.function_name() == Some("orders"))
        .then_output(|| {
            GetFunctionOutput::builder()
                .tags(
                    "aws:cloudformation:stack-id",
                    "arn:aws:cloudformation:us-east-1:1:stack/app/1",
                )
                .tags("team", "orders")
                .build()
        });
    let withheld = mock!(aws_sdk_lambda::Client::get_function)
        .match_requests(|r| r.function_name() == Some("billing"))
        .then_output(|| {
            GetFunctionOutput::builder()
                .tags_error(
                    TagsError::builder()
                        .error_code("AccessDeniedException")
                        .message("not authorized to perform: lambda:ListTags")
                        .build()
                        .unwrap(),
                )
                .build()
        });
    let lambda = lambda(&[&tagged, &withheld]);
    assert_eq!(
        lambda.owning_stack("orders").await.unwrap().as_deref(),
        Some("arn:aws:cloudformation:us-east-1:1:stack/app/1")
    );
    let err = lambda.owning_stack("billing").await.unwrap_err();
    assert_eq!(err.error_type(), ErrorType::AccessDenied);
    assert!(err.to_string().contains("lambda:ListTags"), "{err}");
}

/// An owed answer is one item under `answer#<execution ARN>` with its expiry; the sweep's Scan reads every page
/// of them and nothing else.
#[tokio::test]
async fn owed_answers_are_items_of_their_own_in_the_lock_table() {
    use safeshift_engine::ports::{PendingAnswer, PendingAnswers};

    let execution = "arn:aws:states:us-east-1:123456789012:execution:safeshift-rollout:cfn-A-r1";
    let put = mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(move |r| {
            r.item().and_then(|i| i.get("aliasKey"))
                == Some(&AttributeValue::S(format!("answer#{execution}")))
                && r.item().and_then(|i| i.get("expiresAt"))
                    == Some(&AttributeValue::N("99".into()))
                && r.condition_expression().is_none()
        })
        .then_output(|| PutItemOutput::builder().build());
    let page = |key: &str, last: Option<&str>| {
        let mut out = ScanOutput::builder().items(HashMap::from([
            ("aliasKey".to_owned(), AttributeValue::S(key.into())),
            ("expiresAt".to_owned(), AttributeValue::N("99".into())),
        ]));
        if let Some(k) = last {
            out = out.last_evaluated_key("aliasKey", AttributeValue::S(k.into()));
        }
        out.build()
    };
    let first = page("answer#e1", Some("answer#e1"));
    let second = page("answer#e2", None);
    let scan = mock!(aws_sdk_dynamodb::Client::scan)
        .match_requests(|r| {
            r.filter_expression() == Some("begins_with(#key, :answer)")
                && r.expression_attribute_values()
                    .and_then(|v| v.get(":answer"))
                    == Some(&AttributeValue::S("answer#".into()))
        })
        .sequence()
        .output(move || first.clone())
        .output(move || second.clone())
        .build();
    let locks = locks(&[&put, &scan]);
    let owed = PendingAnswer {
        response_url: "https://x.s3.amazonaws.com/r".into(),
        stack_id: "s".into(),
        request_id: "r1".into(),
        logical_resource_id: "A".into(),
        physical_resource_id: "arn".into(),
        function_version: "2".into(),
    };
    locks.hold_answer(execution, &owed, 99).await.unwrap();
    assert_eq!(put.num_calls(), 1);
    assert_eq!(
        locks.held_answers().await.unwrap(),
        [("e1".to_owned(), 99), ("e2".to_owned(), 99)]
    );
    assert_eq!(scan.num_calls(), 2, "every page");
}
