//! Cold starts and warm latency of each function's release binary through the local Runtime API, next to the
//! Python handler making the same AWS calls and next to those calls made bare with the Rust SDK.
//!
//! The engine acts only for a running execution of its own state machine (`safeshift_engine::guard`), so the
//! world on moto has one: a parked stand-in for the rollout state machine (`Fixtures::parked_rollout`, with the
//! lock table), and one RUNNING execution named like the deployment and started with its input, whose ARN every
//! event carries and whose state machine every process is given (`SAFESHIFT_STATE_MACHINE_ARN`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_lambda::primitives::Blob;
use safeshift_core::Deployment;
use safeshift_core::names::Version;
use safeshift_core::rollout::Rollout;
use safeshift_local::fixtures::Fixtures;
use safeshift_local::moto::MotoServer;
use serde_json::{Value, json};

use crate::measure::{self, Launch, Medians, median, quantile};

#[derive(Debug, Clone)]
pub struct Handlers {
    /// Cold starts per function and language.
    pub runs: usize,
    /// Warm invocations per function.
    pub warm: usize,
    pub functions: Vec<Handler>,
}

#[derive(Debug, Clone)]
pub struct Handler {
    pub function: String,
    /// The AWS calls its event makes, which the bare SDK figures repeat.
    pub calls: String,
    pub rust_cold: Medians,
    pub python_cold: Medians,
    pub rust_warm: Latency,
    pub bare: Latency,
    pub python_warm: Latency,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub p50: Duration,
    pub p99: Duration,
}

impl Latency {
    fn of(times: &[Duration]) -> Self {
        Self {
            p50: median(times),
            p99: quantile(times, 0.99),
        }
    }
}

pub async fn measure(
    bins: &Path,
    venv: &Path,
    runs: usize,
    warm: usize,
    scratch: &Path,
) -> anyhow::Result<Handlers> {
    let moto_venv = venv.to_owned();
    let log = scratch.join("moto-handlers.log");
    let moto = tokio::task::spawn_blocking(move || MotoServer::start(&moto_venv, None, Some(&log)))
        .await??;
    let config = safeshift_local::stack::sdk_config(&moto.endpoint()).await;
    let fx = Fixtures::on(&config, moto.port);
    let world = World::build(&fx).await?;
    let aws = Aws {
        lambda: aws_sdk_lambda::Client::new(&config),
        cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
        sfn: aws_sdk_sfn::Client::new(&config),
        dynamodb: aws_sdk_dynamodb::Client::new(&config),
        execution_arn: world.execution_arn.clone(),
        lock_table: safeshift_local::stack::scope().lock_table(),
    };
    // What every process is given, Rust and Python alike: the endpoint, and the state machine it serves.
    let env = vec![
        ("AWS_ENDPOINT_URL".to_owned(), moto.endpoint()),
        (
            "SAFESHIFT_STATE_MACHINE_ARN".to_owned(),
            world.state_machine_arn.clone(),
        ),
    ];
    let python = venv.join("bin/python");
    let bootstrap = PathBuf::from("bench/python/bootstrap.py");

    let mut functions = Vec::new();
    for (function, event) in &world.events {
        let rust = Launch {
            name: (*function).into(),
            program: bins.join(function),
            args: vec![],
            env: env.clone(),
        };
        let py = Launch {
            name: format!("{function} (Python)"),
            program: python.clone(),
            args: vec![bootstrap.to_string_lossy().into_owned(), (*function).into()],
            env: env.clone(),
        };
        eprintln!("cold starts: {function} ({runs} runs each, Rust and Python)");
        let (mut rust_cold, mut py_cold) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            // Interleaved, so drift on a shared machine falls on both alike.
            rust_cold.push(measure::cold_start(&rust, event).await?);
            py_cold.push(measure::cold_start(&py, event).await?);
        }

        eprintln!("warm: {function} ({warm} invocations each)");
        let rust_warm = measure::warm(&rust, event, warm).await?;
        let py_warm = measure::warm(&py, event, warm).await?;
        let bare = measure::timed(warm, || aws.bare_call(function)).await?;
        functions.push(Handler {
            function: (*function).to_owned(),
            calls: calls(function).to_owned(),
            rust_cold: Medians::of(&rust_cold),
            python_cold: Medians::of(&py_cold),
            rust_warm: Latency::of(&rust_warm),
            bare: Latency::of(&bare),
            python_warm: Latency::of(&py_warm),
        });
    }
    Ok(Handlers {
        runs,
        warm,
        functions,
    })
}

/// The deployment the benchmark's events are for: the execution's name and the rollout's id.
const DEPLOYMENT_ID: &str = "bench";

/// The world the functions act on, and the events each one gets.
struct World {
    state_machine_arn: String,
    /// The RUNNING execution of deployment [`DEPLOYMENT_ID`].
    execution_arn: String,
    events: Vec<(&'static str, Value)>,
}

impl World {
    /// Function `orders` (versions 1, 2; `live` -> 1), a hook function, an alarm in OK; the parked rollout state
    /// machine and the lock table; and the deployment's execution, RUNNING (it waits an hour, far longer than a
    /// run), named [`DEPLOYMENT_ID`] and started with the deployment's input, as the state machine's own would be.
    async fn build(fx: &Fixtures) -> anyhow::Result<Self> {
        fx.function("orders", 2).await?;
        fx.function("SafeshiftHook_orders-smoke", 1).await?;
        fx.alarm("orders-errors").await?;
        let state_machine_arn = fx.parked_rollout().await?;
        // The lock table's name follows from the state machine's (`<stack>-locks`): the bare calls use the one
        // the functions derive.
        ensure!(
            state_machine_arn == safeshift_local::stack::state_machine_arn(),
            "the parked state machine is {state_machine_arn}, not the local stack's"
        );
        let input = json!({
            "functionName": "orders", "alias": "live", "targetVersion": "2",
            "strategy": "Canary10Percent5Minutes", "alarms": ["orders-errors"],
            "hooks": {"preTraffic": "SafeshiftHook_orders-smoke"}
        });
        let execution_arn = fx
            .start_execution(&state_machine_arn, DEPLOYMENT_ID, &input)
            .await?;
        let revision = fx
            .lambda
            .get_alias()
            .function_name("orders")
            .name("live")
            .send()
            .await?
            .revision_id()
            .unwrap_or_default()
            .to_owned();
        let deployment = Deployment::from_value(input.clone())?;
        let rollout = serde_json::to_value(Rollout::prepared(
            DEPLOYMENT_ID.into(),
            deployment,
            vec![(Version::new(1).context("version 1")?, revision)],
        ))?;
        let events = vec![
            (
                "shift-weight",
                json!({"prepare": {
                    "deploymentId": DEPLOYMENT_ID, "executionArn": execution_arn, "input": input
                }}),
            ),
            ("check-alarms", rollout.clone()),
            (
                "run-hook",
                json!({"phase": "preTraffic", "rollout": rollout, "executionArn": execution_arn}),
            ),
            (
                "rollback",
                json!({"rollback": rollout, "executionArn": execution_arn}),
            ),
        ];
        Ok(Self {
            state_machine_arn,
            execution_arn,
            events,
        })
    }
}

/// The clients the bare calls use, warm, and what they name.
struct Aws {
    lambda: aws_sdk_lambda::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    sfn: aws_sdk_sfn::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    execution_arn: String,
    lock_table: String,
}

/// The lock item's key: `<function>:<alias>` (`Deployment::lock_key`).
const LOCK_KEY: &str = "orders:live";
/// How long the engine's lock lasts (`safeshift_engine::guard::LOCK_SECONDS`); its value costs nothing.
const LOCK_SECONDS: u64 = 270_000;

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

impl Aws {
    /// The SDK calls each function makes for its event, made bare, with the same requests
    /// (`functions/engine/src/aws/`): no validation, no decisions.
    async fn bare_call(&self, function: &str) -> anyhow::Result<()> {
        match function {
            "shift-weight" => {
                self.describe_execution().await?;
                self.get_alias().await?;
                for v in ["2", "1"] {
                    self.lambda
                        .get_function_configuration()
                        .function_name("orders")
                        .qualifier(v)
                        .send()
                        .await?;
                }
                self.describe_alarms().await?;
                self.take_lock().await?;
            }
            "check-alarms" => self.describe_alarms().await?,
            "run-hook" => {
                self.describe_execution().await?;
                self.lambda
                    .invoke()
                    .function_name("SafeshiftHook_orders-smoke")
                    .payload(Blob::new("{}"))
                    .send()
                    .await?;
            }
            "rollback" => {
                self.describe_execution().await?;
                self.lock_holder().await?;
                self.get_alias().await?;
                self.release_lock().await?;
            }
            other => bail!("no bare call for {other}"),
        }
        Ok(())
    }

    /// The deployment's alarms, metric and composite: the gate's read, and Prepare's before traffic moves.
    async fn describe_alarms(&self) -> anyhow::Result<()> {
        self.cloudwatch
            .describe_alarms()
            .alarm_names("orders-errors")
            .alarm_types(aws_sdk_cloudwatch::types::AlarmType::MetricAlarm)
            .alarm_types(aws_sdk_cloudwatch::types::AlarmType::CompositeAlarm)
            .send()
            .await?;
        Ok(())
    }

    async fn describe_execution(&self) -> anyhow::Result<()> {
        self.sfn
            .describe_execution()
            .execution_arn(&self.execution_arn)
            .send()
            .await?;
        Ok(())
    }

    /// The guard's read of the alias's lock: does this execution still hold it, with the stable version its
    /// Prepare found?
    async fn lock_holder(&self) -> anyhow::Result<()> {
        self.dynamodb
            .get_item()
            .table_name(&self.lock_table)
            .key("aliasKey", s(LOCK_KEY))
            .consistent_read(true)
            .send()
            .await?;
        Ok(())
    }

    async fn get_alias(&self) -> anyhow::Result<()> {
        self.lambda
            .get_alias()
            .function_name("orders")
            .name("live")
            .send()
            .await?;
        Ok(())
    }

    /// Prepare's conditional PutItem: free, already this execution's (what a repeated prepare finds), or lapsed.
    async fn take_lock(&self) -> anyhow::Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let put = self
            .dynamodb
            .put_item()
            .table_name(&self.lock_table)
            .item("aliasKey", s(LOCK_KEY))
            .item("executionArn", s(&self.execution_arn))
            .item("deploymentId", s(DEPLOYMENT_ID))
            .item("acquiredAt", n(now))
            .item("stableVersion", s("1"))
            .item("expiresAt", n(now + LOCK_SECONDS))
            .expression_attribute_values(":me", s(&self.execution_arn))
            .expression_attribute_values(":now", n(now))
            .condition_expression(
                "attribute_not_exists(aliasKey) OR executionArn = :me OR expiresAt < :now",
            )
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            // The engine would read the holder next; here the lock is always the execution's own.
            Err(e)
                if e.as_service_error()
                    .is_some_and(PutItemError::is_conditional_check_failed_exception) =>
            {
                bail!("the lock on {LOCK_KEY} is held by another execution")
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Rollback's conditional DeleteItem: only this execution's lock. After the first release there is none, and
    /// the engine, like this, takes the failed condition as nothing to release.
    async fn release_lock(&self) -> anyhow::Result<()> {
        let deleted = self
            .dynamodb
            .delete_item()
            .table_name(&self.lock_table)
            .key("aliasKey", s(LOCK_KEY))
            .condition_expression("executionArn = :me")
            .expression_attribute_values(":me", s(&self.execution_arn))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(DeleteItemError::is_conditional_check_failed_exception) =>
            {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// What [`Aws::bare_call`] calls, as the report names it; kept beside it (and `bench/python/handlers.py`) so they
/// change together.
fn calls(function: &str) -> &'static str {
    match function {
        "shift-weight" => {
            "DescribeExecution, GetAlias, DescribeAlarms, 2 × GetFunctionConfiguration, PutItem (lock)"
        }
        "check-alarms" => "DescribeAlarms",
        "run-hook" => "DescribeExecution, Invoke",
        "rollback" => "DescribeExecution, GetItem (lock), GetAlias, DeleteItem (lock)",
        _ => "?",
    }
}
