//! The `rollback` Lambda function, also the reconciler for stopped and timed-out executions: see
//! `safeshift_engine::rollback` for its input, output and errors.
// The handler nests the Lambda, Step Functions and DynamoDB SDK futures deeper than rustc's default layout query
// depth.
#![recursion_limit = "256"]

use std::sync::Arc;

use safeshift_engine::EventBridgeAdapter;
use safeshift_engine::guard::{LONGEST_WRITE, Scope};
use safeshift_engine::ports::Events;
use safeshift_engine::rollback::Rollback;
use safeshift_engine::{DynamoLockAdapter, LambdaAdapter, StepFunctionsAdapter, aws, runtime};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runtime::init_logging();
    let scope = Scope::from_env()?;
    let config = aws::load_config().await;
    let locks = DynamoLockAdapter::new(aws_sdk_dynamodb::Client::new(&config), scope.lock_table());
    let executions = StepFunctionsAdapter::new(aws_sdk_sfn::Client::new(&config));
    let lambda = LambdaAdapter::connect(&config).await;
    let events = Events(Arc::new(EventBridgeAdapter::from_env(&config)));
    let handler =
        Rollback::new(lambda, executions, locks, scope, LONGEST_WRITE).with_events(events);
    runtime::serve(handler).await
}
