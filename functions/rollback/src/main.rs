//! The `rollback` Lambda function, also the reconciler for stopped and timed-out executions: see
//! `safeshift_engine::rollback` for its input, output and errors.
// The handler nests the Lambda and Step Functions SDK futures deeper than rustc's default layout query depth.
#![recursion_limit = "256"]

use safeshift_engine::rollback::Rollback;
use safeshift_engine::{LambdaAdapter, StepFunctionsAdapter, aws, runtime};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runtime::init_logging();
    let config = aws::load_config().await;
    // Step Functions is read only by the reconciler, after an execution ended: not worth a call at every init.
    let executions = StepFunctionsAdapter::new(aws_sdk_sfn::Client::new(&config));
    runtime::serve(Rollback::new(
        LambdaAdapter::connect(&config).await,
        executions,
    ))
    .await
}
