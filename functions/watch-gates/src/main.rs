//! The `watch-gates` Lambda function: registers each bake's task token, and interrupts the deployments that list
//! an alarm when EventBridge reports it went to ALARM. See `safeshift_engine::watch_gates` for its events.

use safeshift_engine::guard::Scope;
use safeshift_engine::watch_gates::WatchGates;
use safeshift_engine::{CloudWatchAdapter, DynamoLockAdapter, StepFunctionsAdapter, aws, runtime};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runtime::init_logging();
    let scope = Scope::from_env()?;
    let config = aws::load_config().await;
    let locks = DynamoLockAdapter::new(aws_sdk_dynamodb::Client::new(&config), scope.lock_table());
    let sfn = StepFunctionsAdapter::new(aws_sdk_sfn::Client::new(&config));
    let alarms = CloudWatchAdapter::new(aws_sdk_cloudwatch::Client::new(&config));
    let handler = WatchGates::new(locks, sfn.clone(), sfn, alarms, scope);
    runtime::serve(handler).await
}
