//! The `check-alarms` Lambda function: see `safeshift_engine::check_alarms` for its input, output and errors.
// The gates nest the alarm and metric SDK futures deeper than rustc's default layout query depth.
#![recursion_limit = "256"]

use std::sync::Arc;

use safeshift_engine::EventBridgeAdapter;
use safeshift_engine::check_alarms::CheckAlarms;
use safeshift_engine::ports::Events;
use safeshift_engine::{CloudWatchAdapter, aws, runtime};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runtime::init_logging();
    let config = aws::load_config().await;
    let cloudwatch = CloudWatchAdapter::connect(&config).await;
    let events = Events(Arc::new(EventBridgeAdapter::from_env(&config)));
    runtime::serve(CheckAlarms::new(cloudwatch).with_events(events)).await
}
