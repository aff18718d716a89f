//! The `check-alarms` Lambda function: see `safeshift_engine::check_alarms` for its input, output and errors.
// The gates nest the alarm and metric SDK futures deeper than rustc's default layout query depth.
#![recursion_limit = "256"]

use std::sync::Arc;

use safeshift_engine::check_alarms::CheckAlarms;
use safeshift_engine::{CloudWatchAdapter, aws, runtime};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runtime::init_logging();
    let config = aws::load_config().await;
    let cloudwatch = CloudWatchAdapter::new(aws_sdk_cloudwatch::Client::new(&config));
    cloudwatch.warm_up().await;
    let handler = Arc::new(CheckAlarms::new(cloudwatch));
    runtime::serve(move |event| {
        let handler = Arc::clone(&handler);
        async move { handler.handle(event).await }
    })
    .await
}
