//! The `run-hook` Lambda function: see `safeshift_engine::run_hook` for its input, output, errors and the hook
//! contract.

use std::sync::Arc;

use safeshift_engine::run_hook::RunHook;
use safeshift_engine::{LambdaAdapter, aws, runtime};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runtime::init_logging();
    let config = aws::load_config().await;
    let lambda = LambdaAdapter::new(aws_sdk_lambda::Client::new(&config));
    lambda.warm_up().await;
    let handler = Arc::new(RunHook::new(lambda));
    runtime::serve(move |event| {
        let handler = Arc::clone(&handler);
        async move { handler.handle(event).await }
    })
    .await
}
