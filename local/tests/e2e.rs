//! End to end on the local stack, through the Step Functions API: the real state machine definition, executed by
//! moto, calling the real engine handlers through the gateway. Every test ends by checking that the alias is on
//! exactly one version with no additional weights.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_sfn::types::ExecutionStatus;
use safeshift_local::LocalStack;
use safeshift_local::fixtures::{Fixtures, Routing};
use serde_json::{Value, json};

fn venv() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv")
}

struct Env {
    stack: LocalStack,
    fx: Fixtures,
    sfn: aws_sdk_sfn::Client,
}

async fn env() -> Env {
    let stack = LocalStack::start(0, &venv(), None)
        .await
        .expect("local stack");
    let fx = Fixtures::new(&stack);
    let sfn = aws_sdk_sfn::Client::new(&stack.config);
    Env { stack, fx, sfn }
}

fn stable(v: &str) -> Routing {
    (v.to_owned(), vec![])
}

impl Env {
    async fn start(&self, name: &str, input: &Value) -> String {
        self.sfn
            .start_execution()
            .state_machine_arn(&self.stack.state_machine_arn)
            .name(name)
            .input(input.to_string())
            .send()
            .await
            .unwrap()
            .execution_arn()
            .to_owned()
    }

    async fn status(
        &self,
        arn: &str,
    ) -> aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput {
        self.sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .unwrap()
    }

    /// Waits for the execution to end; returns its final description.
    async fn finish(
        &self,
        arn: &str,
    ) -> aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let d = self.status(arn).await;
            if *d.status() != ExecutionStatus::Running {
                return d;
            }
            assert!(Instant::now() < deadline, "{arn} still running after 90 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn deployment(strategy: Value) -> Value {
    json!({"functionName": "orders", "alias": "live", "targetVersion": "2", "strategy": strategy})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_is_promoted_end_to_end() {
    let e = env().await;
    e.fx.function("orders", 2).await.unwrap();
    e.fx.alarm("orders-errors").await.unwrap();
    let mut input = deployment(json!({"canary": {"percent": 10, "intervalSeconds": 1}}));
    input["alarms"] = json!(["orders-errors"]);
    let arn = e.start("orders-live-2", &input).await;
    let done = e.finish(&arn).await;
    assert_eq!(
        *done.status(),
        ExecutionStatus::Succeeded,
        "{:?} {:?}",
        done.error(),
        done.cause()
    );
    assert_eq!(e.fx.routing("orders").await.unwrap(), stable("2"));
    let output: Value = serde_json::from_str(done.output().unwrap()).unwrap();
    assert_eq!(output["promoted"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alarm_mid_rollout_rolls_back_and_fails_the_execution() {
    let e = env().await;
    e.fx.function("orders", 2).await.unwrap();
    e.fx.alarm("orders-errors").await.unwrap();
    let mut input = deployment(
        json!({"steps": [{"percent": 10, "bakeSeconds": 4}, {"percent": 50, "bakeSeconds": 4}]}),
    );
    input["alarms"] = json!(["orders-errors"]);
    let arn = e.start("orders-live-2", &input).await;
    // Wait until traffic is split, then fire the alarm.
    let deadline = Instant::now() + Duration::from_secs(30);
    while e.fx.routing("orders").await.unwrap().1.is_empty() {
        assert!(Instant::now() < deadline, "never split");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    e.fx.set_alarm(
        "orders-errors",
        aws_sdk_cloudwatch::types::StateValue::Alarm,
        "5 errors",
    )
    .await
    .unwrap();
    let done = e.finish(&arn).await;
    assert_eq!(*done.status(), ExecutionStatus::Failed);
    assert_eq!(done.error(), Some("AlarmFired"), "{:?}", done.cause());
    assert!(
        done.cause().unwrap().contains("orders-errors"),
        "{:?}",
        done.cause()
    );
    assert_eq!(e.fx.routing("orders").await.unwrap(), stable("1"));
}
