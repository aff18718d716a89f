//! The `cloudformation` Lambda function: the `Safeshift` macro, the `Custom::SafeshiftAlias` provider, and the
//! answer to CloudFormation when a rollout it started ends. See `safeshift_engine::cloudformation`.
// The handler nests the Lambda, Step Functions and DynamoDB SDK futures deeper than rustc's default layout query
// depth.
#![recursion_limit = "256"]

use safeshift_engine::cloudformation::CloudFormation;
use safeshift_engine::guard::Scope;
use safeshift_engine::{
    DynamoLockAdapter, LambdaAdapter, ResponseUrlAdapter, StepFunctionsAdapter, aws, runtime,
};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runtime::init_logging();
    let scope = Scope::from_env()?;
    let config = aws::load_config().await;
    let answers =
        DynamoLockAdapter::new(aws_sdk_dynamodb::Client::new(&config), scope.lock_table());
    let executions = StepFunctionsAdapter::new(aws_sdk_sfn::Client::new(&config));
    let lambda = LambdaAdapter::connect(&config).await;
    let handler = CloudFormation::new(
        lambda,
        executions,
        answers,
        ResponseUrlAdapter::new()?,
        scope,
    );
    runtime::serve(handler).await
}
