//! Resources for demos and end-to-end tests on the local stack: a function with published versions and a `live`
//! alias, alarms, and reading the alias back; and, for the engine's handlers on a bare moto, running executions
//! of a stand-in rollout state machine and the lock table.

use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{AliasRoutingConfiguration, FunctionCode, Runtime};

use crate::moto::{self, MotoError};
use crate::stack::{self, ACCOUNT, LocalStack};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FixtureError(String);

fn err(e: impl std::fmt::Display) -> FixtureError {
    FixtureError(e.to_string())
}

impl From<MotoError> for FixtureError {
    fn from(e: MotoError) -> Self {
        err(e)
    }
}

/// An empty zip whose comment makes its bytes unique: each publish of different "code" is a new version.
fn zip(code: &str) -> Vec<u8> {
    let mut bytes = vec![0x50, 0x4b, 0x05, 0x06];
    bytes.extend([0u8; 16]);
    bytes.extend((code.len() as u16).to_le_bytes());
    bytes.extend(code.as_bytes());
    bytes
}

/// An alias as read back: its version and additional weights, sorted.
pub type Routing = (String, Vec<(String, f64)>);

#[derive(Debug, Clone)]
pub struct Fixtures {
    pub lambda: aws_sdk_lambda::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub sfn: aws_sdk_sfn::Client,
    config: aws_config::SdkConfig,
    moto_port: u16,
}

impl Fixtures {
    pub fn new(stack: &LocalStack) -> Self {
        Self::on(&stack.config, stack.moto_port)
    }

    /// Fixtures on any moto (`moto_port` is for its own control endpoints), with clients from `config`.
    pub fn on(config: &aws_config::SdkConfig, moto_port: u16) -> Self {
        Self {
            lambda: aws_sdk_lambda::Client::new(config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(config),
            sfn: aws_sdk_sfn::Client::new(config),
            config: config.clone(),
            moto_port,
        }
    }

    /// A stand-in for the rollout state machine on a bare moto, for running the engine's handlers directly: it has
    /// the rollout's name, so its executions are the ones the engine serves (`stack::scope()`), and the lock
    /// table beside it (`safeshift-locks`) is created too. Its one Wait state parks every execution RUNNING for
    /// an hour (moto executes definitions), as a real rollout is running while its tasks are invoked. Returns the
    /// state machine's ARN.
    pub async fn parked_rollout(&self) -> Result<String, FixtureError> {
        let created = self
            .sfn
            .create_state_machine()
            .name(stack::state_machine_name())
            .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/safeshift-rollout"))
            .definition(
                r#"{"StartAt": "Parked", "States": {"Parked": {"Type": "Wait", "Seconds": 3600, "End": true}}}"#,
            )
            .send()
            .await
            .map_err(|e| err(aws_sdk_sfn::error::DisplayErrorContext(e)))?;
        stack::create_lock_table(&self.config).await.map_err(err)?;
        Ok(created.state_machine_arn().to_owned())
    }

    /// Starts an execution of `state_machine_arn` named `name` (the deployment id) with `input`; returns its ARN.
    pub async fn start_execution(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &serde_json::Value,
    ) -> Result<String, FixtureError> {
        let started = self
            .sfn
            .start_execution()
            .state_machine_arn(state_machine_arn)
            .name(name)
            .input(input.to_string())
            .send()
            .await
            .map_err(|e| err(aws_sdk_sfn::error::DisplayErrorContext(e)))?;
        Ok(started.execution_arn().to_owned())
    }

    /// Stops an execution: it ends ABORTED.
    /// Stops the execution and waits (up to 10 s) until Step Functions reports it stopped: moto's executor may
    /// still show it RUNNING for a moment on a busy machine.
    pub async fn stop_execution(&self, arn: &str) -> Result<(), FixtureError> {
        self.sfn
            .stop_execution()
            .execution_arn(arn)
            .send()
            .await
            .map_err(|e| err(aws_sdk_sfn::error::DisplayErrorContext(e)))?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let status = self
                .sfn
                .describe_execution()
                .execution_arn(arn)
                .send()
                .await
                .map_err(|e| err(aws_sdk_sfn::error::DisplayErrorContext(e)))?
                .status()
                .clone();
            if status != aws_sdk_sfn::types::ExecutionStatus::Running {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(err(format!("{arn} still RUNNING 10 s after StopExecution")));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Creates an IAM role (moto checks that a function's role exists).
    pub fn role(&self, name: &str) -> Result<(), FixtureError> {
        Ok(moto::create_role(self.moto_port, name)?)
    }

    /// A function with `versions` published versions and alias `live` on version 1.
    pub async fn function(&self, name: &str, versions: usize) -> Result<(), FixtureError> {
        self.function_without_alias(name, versions).await?;
        self.lambda
            .create_alias()
            .function_name(name)
            .name("live")
            .function_version("1")
            .send()
            .await
            .map_err(err)?;
        Ok(())
    }

    /// A function with `versions` published versions and no alias (as a stack creates it).
    pub async fn function_without_alias(
        &self,
        name: &str,
        versions: usize,
    ) -> Result<(), FixtureError> {
        moto::create_role(self.moto_port, name)?;
        self.lambda
            .create_function()
            .function_name(name)
            .runtime(Runtime::Providedal2023)
            .role(format!("arn:aws:iam::{ACCOUNT}:role/{name}"))
            .handler("bootstrap")
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(zip("v0")))
                    .build(),
            )
            .send()
            .await
            .map_err(err)?;
        for v in 1..=versions {
            self.publish(name, &format!("v{v}")).await?;
        }
        Ok(())
    }

    /// Tags the function as CloudFormation tags what a stack creates (`aws:cloudformation:stack-id`): the stack
    /// that owns it.
    pub async fn created_by_stack(
        &self,
        function: &str,
        stack_id: &str,
    ) -> Result<(), FixtureError> {
        self.lambda
            .tag_resource()
            .resource(format!(
                "arn:aws:lambda:{}:{ACCOUNT}:function:{function}",
                stack::REGION
            ))
            .tags("aws:cloudformation:stack-id", stack_id)
            .send()
            .await
            .map_err(err)?;
        Ok(())
    }

    /// Publishes new code as the next version; returns its number.
    pub async fn publish(&self, name: &str, code: &str) -> Result<String, FixtureError> {
        self.lambda
            .update_function_code()
            .function_name(name)
            .zip_file(Blob::new(zip(code)))
            .send()
            .await
            .map_err(err)?;
        let out = self
            .lambda
            .publish_version()
            .function_name(name)
            .send()
            .await
            .map_err(err)?;
        Ok(out.version().unwrap_or_default().to_owned())
    }

    pub async fn routing(&self, function: &str) -> Result<Routing, FixtureError> {
        let a = self
            .lambda
            .get_alias()
            .function_name(function)
            .name("live")
            .send()
            .await
            .map_err(err)?;
        let mut weights: Vec<(String, f64)> = a
            .routing_config()
            .and_then(|r| r.additional_version_weights())
            .map(|w| w.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        weights.sort_by(|a, b| a.0.cmp(&b.0));
        Ok((a.function_version().unwrap_or_default().to_owned(), weights))
    }

    /// Someone else's write to the alias.
    pub async fn set_alias(&self, function: &str, version: &str) -> Result<(), FixtureError> {
        self.lambda
            .update_alias()
            .function_name(function)
            .name("live")
            .function_version(version)
            .routing_config(
                AliasRoutingConfiguration::builder()
                    .set_additional_version_weights(Some(Default::default()))
                    .build(),
            )
            .send()
            .await
            .map_err(err)?;
        Ok(())
    }

    /// A metric alarm on the function's errors, in OK.
    pub async fn alarm(&self, name: &str) -> Result<(), FixtureError> {
        self.cloudwatch
            .put_metric_alarm()
            .alarm_name(name)
            .namespace("AWS/Lambda")
            .metric_name("Errors")
            .statistic(Statistic::Sum)
            .period(60)
            .evaluation_periods(1)
            .threshold(1.0)
            .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
            .send()
            .await
            .map_err(err)?;
        self.set_alarm(name, StateValue::Ok, "no errors").await
    }

    /// Waits (up to 30 s) until the function's `live` alias routes to more than one version: a rollout's first
    /// step has landed. Returns the routing then.
    pub async fn wait_for_split(&self, function: &str) -> Result<Routing, FixtureError> {
        self.wait_for_routing(function, |(_, weights)| !weights.is_empty())
            .await
    }

    /// Waits (up to 30 s) until the function's `live` alias routing satisfies `done`; returns it.
    pub async fn wait_for_routing(
        &self,
        function: &str,
        done: impl Fn(&Routing) -> bool,
    ) -> Result<Routing, FixtureError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let routing = self.routing(function).await?;
            if done(&routing) {
                return Ok(routing);
            }
            if std::time::Instant::now() > deadline {
                return Err(err(format!(
                    "{function}:live still routes {routing:?} after 30 s"
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// moto never evaluates alarms from metrics: drive their state directly.
    pub async fn set_alarm(
        &self,
        name: &str,
        state: StateValue,
        reason: &str,
    ) -> Result<(), FixtureError> {
        self.cloudwatch
            .set_alarm_state()
            .alarm_name(name)
            .state_value(state)
            .state_reason(reason)
            .send()
            .await
            .map_err(err)?;
        Ok(())
    }

    /// Publishes the metrics Lambda would for `invocations` calls of `version` through `alias`, `errors` of them
    /// failed and `throttles` throttled, stamped now: what the metric analysis reads. (AWS keeps the `AWS/`
    /// namespaces for its own services; moto lets a test stand in for Lambda.)
    pub async fn put_version_metrics(
        &self,
        function: &str,
        alias: &str,
        version: &str,
        [invocations, errors, throttles]: [u32; 3],
    ) -> Result<(), FixtureError> {
        use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
        let dimensions = [
            ("FunctionName", function.to_owned()),
            ("Resource", format!("{function}:{alias}")),
            ("ExecutedVersion", version.to_owned()),
        ]
        .map(|(name, value)| Dimension::builder().name(name).value(value).build());
        let now = aws_sdk_cloudwatch::primitives::DateTime::from(std::time::SystemTime::now());
        let datum = |name: &str, value: u32| {
            MetricDatum::builder()
                .metric_name(name)
                .set_dimensions(Some(dimensions.to_vec()))
                .value(f64::from(value))
                .unit(StandardUnit::Count)
                .timestamp(now)
                .build()
        };
        self.cloudwatch
            .put_metric_data()
            .namespace("AWS/Lambda")
            .metric_data(datum("Invocations", invocations))
            .metric_data(datum("Errors", errors))
            .metric_data(datum("Throttles", throttles))
            .send()
            .await
            .map_err(err)?;
        Ok(())
    }

    /// Queues answers for the next hook invocations (moto echoes the event otherwise, which passes).
    pub fn queue_hook_results(&self, results: &[serde_json::Value]) -> Result<(), FixtureError> {
        Ok(moto::queue_invoke_results(self.moto_port, results)?)
    }
}
