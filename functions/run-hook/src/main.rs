//! The `run-hook` Lambda function: see `safeshift_engine::run_hook` for its input, output, errors and the hook
//! contract.

use std::sync::Arc;

use safeshift_engine::EventBridgeAdapter;
use safeshift_engine::guard::Scope;
use safeshift_engine::ports::Events;
use safeshift_engine::run_hook::RunHook;
use safeshift_engine::{DynamoLockAdapter, LambdaAdapter, StepFunctionsAdapter, aws, runtime};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runtime::init_logging();
    let scope = Scope::from_env()?;
    let config = aws::load_config().await;
    let executions = StepFunctionsAdapter::new(aws_sdk_sfn::Client::new(&config));
    let locks = DynamoLockAdapter::new(aws_sdk_dynamodb::Client::new(&config), scope.lock_table());
    let handler = RunHook::new(
        LambdaAdapter::connect(&config).await,
        executions,
        locks,
        scope,
    );
    let handler = handler.with_events(Events(Arc::new(EventBridgeAdapter::from_env(&config))));
    runtime::serve(handler).await
}
