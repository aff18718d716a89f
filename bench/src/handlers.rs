//! Cold starts and warm latency of each function's release binary through the local Runtime API, next to the
//! Python handler making the same AWS calls and next to those calls made bare with the Rust SDK.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
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
    let lambda = aws_sdk_lambda::Client::new(&config);
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&config);
    let events = world(&fx, &lambda).await?;
    let endpoint = vec![("AWS_ENDPOINT_URL".to_owned(), moto.endpoint())];
    let python = venv.join("bin/python");
    let bootstrap = PathBuf::from("bench/python/bootstrap.py");

    let mut functions = Vec::new();
    for (function, event) in &events {
        let rust = Launch {
            name: (*function).into(),
            program: bins.join(function),
            args: vec![],
            env: endpoint.clone(),
        };
        let py = Launch {
            name: format!("{function} (Python)"),
            program: python.clone(),
            args: vec![bootstrap.to_string_lossy().into_owned(), (*function).into()],
            env: endpoint.clone(),
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
        let bare = measure::timed(warm, || bare_call(function, &lambda, &cloudwatch)).await?;
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

/// The events each function gets, and the world they act on: function `orders` (versions 1, 2; `live` -> 1), a
/// hook function, an alarm in OK.
async fn world(
    fx: &Fixtures,
    lambda: &aws_sdk_lambda::Client,
) -> anyhow::Result<Vec<(&'static str, Value)>> {
    fx.function("orders", 2).await?;
    fx.function("orders-smoke", 1).await?;
    fx.alarm("orders-errors").await?;
    let input = json!({
        "functionName": "orders", "alias": "live", "targetVersion": "2",
        "strategy": "Canary10Percent5Minutes", "alarms": ["orders-errors"],
        "hooks": {"preTraffic": "orders-smoke"}
    });
    let revision = lambda
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
        "bench".into(),
        deployment,
        Version::new(1).context("version 1")?,
        revision,
    ))?;
    Ok(vec![
        (
            "shift-weight",
            json!({"prepare": {"deploymentId": "bench", "input": input}}),
        ),
        ("check-alarms", rollout.clone()),
        (
            "run-hook",
            json!({"phase": "preTraffic", "rollout": rollout}),
        ),
        ("rollback", json!({"rollback": rollout})),
    ])
}

/// The SDK calls each function makes for its event, made bare.
async fn bare_call(
    function: &str,
    lambda: &aws_sdk_lambda::Client,
    cloudwatch: &aws_sdk_cloudwatch::Client,
) -> anyhow::Result<()> {
    let get_alias = || {
        lambda
            .get_alias()
            .function_name("orders")
            .name("live")
            .send()
    };
    match function {
        "shift-weight" => {
            get_alias().await?;
            for v in ["2", "1"] {
                lambda
                    .get_function_configuration()
                    .function_name("orders")
                    .qualifier(v)
                    .send()
                    .await?;
            }
        }
        "check-alarms" => {
            cloudwatch
                .describe_alarms()
                .alarm_names("orders-errors")
                .alarm_types(aws_sdk_cloudwatch::types::AlarmType::MetricAlarm)
                .alarm_types(aws_sdk_cloudwatch::types::AlarmType::CompositeAlarm)
                .send()
                .await?;
        }
        "run-hook" => {
            lambda
                .invoke()
                .function_name("orders-smoke")
                .payload(Blob::new("{}"))
                .send()
                .await?;
        }
        "rollback" => {
            get_alias().await?;
        }
        other => bail!("no bare call for {other}"),
    }
    Ok(())
}

/// What [`bare_call`] calls, as the report names it; kept beside it so the two change together.
fn calls(function: &str) -> &'static str {
    match function {
        "shift-weight" => "GetAlias, 2 × GetFunctionConfiguration",
        "check-alarms" => "DescribeAlarms",
        "run-hook" => "Invoke",
        "rollback" => "GetAlias",
        _ => "?",
    }
}
