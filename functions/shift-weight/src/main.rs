//! The `shift-weight` Lambda function: see `safeshift_engine::shift_weight` for its input, output and errors.
// The handler nests the Lambda, Step Functions and DynamoDB SDK futures deeper than rustc's default layout query
// depth.
#![recursion_limit = "256"]

use std::sync::Arc;

use safeshift_engine::EventBridgeAdapter;
use safeshift_engine::guard::Scope;
use safeshift_engine::ports::Events;
use safeshift_engine::shift_weight::{ReadyWait, ShiftWeight};
use safeshift_engine::steer::Steer;
use safeshift_engine::{
    CloudWatchAdapter, DynamoLockAdapter, LambdaAdapter, StepFunctionsAdapter, aws, runtime,
};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Clients are built once per cold start and reused by every invocation.
    runtime::init_logging();
    let scope = Scope::from_env()?;
    let config = aws::load_config().await;
    let locks = DynamoLockAdapter::new(aws_sdk_dynamodb::Client::new(&config), scope.lock_table());
    let executions = StepFunctionsAdapter::new(aws_sdk_sfn::Client::new(&config));
    // Prepare reads the deployment's alarms once, before any traffic moves.
    let alarms = CloudWatchAdapter::new(aws_sdk_cloudwatch::Client::new(&config));
    let lambda = LambdaAdapter::connect(&config).await;
    let handler = ShiftWeight::new(
        lambda,
        executions,
        locks,
        alarms,
        scope,
        ReadyWait::default(),
    );
    // Steering out of a wait (an operator's control) needs no AWS access: it only reads and records the state.
    let events = Events(Arc::new(EventBridgeAdapter::from_env(&config)));
    let handler = handler.with_events(events.clone());
    runtime::serve_routed(handler, "steer", Steer::with_events(events)).await
}
