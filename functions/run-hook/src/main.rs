//! The `run-hook` Lambda function: see `safeshift_engine::run_hook` for its input, output, errors and the hook
//! contract.

use safeshift_engine::run_hook::RunHook;
use safeshift_engine::{LambdaAdapter, aws, runtime};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runtime::init_logging();
    let config = aws::load_config().await;
    runtime::serve(RunHook::new(LambdaAdapter::connect(&config).await)).await
}
