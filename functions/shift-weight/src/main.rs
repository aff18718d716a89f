//! The `shift-weight` Lambda function: see `safeshift_engine::shift_weight` for its input, output and errors.

use safeshift_engine::shift_weight::{ReadyWait, ShiftWeight};
use safeshift_engine::{LambdaAdapter, aws, runtime};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Clients are built once per cold start and reused by every invocation.
    runtime::init_logging();
    let config = aws::load_config().await;
    let lambda = LambdaAdapter::connect(&config).await;
    runtime::serve(ShiftWeight::new(lambda, ReadyWait::default())).await
}
