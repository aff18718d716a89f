//! Starting a function process against the Runtime API emulator and timing it: cold starts (a fresh process per
//! run) and warm invocations (one process, many events).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::runtime_api::RuntimeApi;

/// How to start one function: a program, its arguments, and its environment (on top of a Lambda-like base).
#[derive(Debug, Clone)]
pub struct Launch {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Launch {
    fn command(&self, runtime_api: &str) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.program);
        c.args(&self.args)
            // A clean environment, as Lambda gives one: only what a function is given there, plus PATH.
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
            .env("AWS_LAMBDA_FUNCTION_NAME", &self.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "bench")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", "warn")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        c
    }
}

/// One cold start: process start to the first response.
#[derive(Debug, Clone, Copy)]
pub struct Cold {
    /// Process start to its first `next`: the init phase.
    pub init: Duration,
    /// The first event delivered to its response.
    pub first_invoke: Duration,
    /// Process start to the first response.
    pub total: Duration,
}

const INVOKE_TIMEOUT: Duration = Duration::from_secs(60);

fn check(
    outcome: Option<crate::runtime_api::Outcome>,
    who: &str,
) -> anyhow::Result<crate::runtime_api::Outcome> {
    let outcome = outcome.with_context(|| format!("{who}: no answer within {INVOKE_TIMEOUT:?}"))?;
    if !outcome.ok {
        bail!(
            "{who} answered with an error: {}",
            String::from_utf8_lossy(&outcome.body)
        );
    }
    Ok(outcome)
}

pub async fn cold_start(launch: &Launch, event: &Value) -> anyhow::Result<Cold> {
    let mut api = RuntimeApi::start().await?;
    api.invoke(event.clone());
    let started = Instant::now();
    let mut child = launch
        .command(&api.address())
        .spawn()
        .with_context(|| format!("starting {}", launch.program.display()))?;
    let outcome = check(api.outcome(INVOKE_TIMEOUT).await, &launch.name)?;
    let _ = child.kill().await;
    let init_done = api.init_done().unwrap_or(outcome.delivered);
    Ok(Cold {
        init: init_done - started,
        first_invoke: outcome.duration(),
        total: outcome.answered - started,
    })
}

/// `count` warm invocations of one process, after one that warms it.
pub async fn warm(launch: &Launch, event: &Value, count: usize) -> anyhow::Result<Vec<Duration>> {
    let mut api = RuntimeApi::start().await?;
    let mut child = launch.command(&api.address()).spawn()?;
    let mut times = Vec::with_capacity(count);
    for i in 0..=count {
        api.invoke(event.clone());
        let outcome = check(api.outcome(INVOKE_TIMEOUT).await, &launch.name)?;
        if i > 0 {
            times.push(outcome.duration());
        }
    }
    let _ = child.kill().await;
    Ok(times)
}

/// `count` timed runs of `call`, after one that warms its connection.
pub async fn timed<F, Fut>(count: usize, mut call: F) -> anyhow::Result<Vec<Duration>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    call().await?;
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        call().await?;
        times.push(started.elapsed());
    }
    Ok(times)
}

/// The `q` quantile (0..=1) by the nearest-rank method: the smallest value with at least `q` of them at or below.
pub fn quantile(values: &[Duration], q: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn median(values: &[Duration]) -> Duration {
    quantile(values, 0.5)
}

/// The median of each part of a series of cold starts, taken apart: the parts' medians need not add up to the
/// total's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Medians {
    pub init: Duration,
    pub first_invoke: Duration,
    pub total: Duration,
}

impl Medians {
    pub fn of(runs: &[Cold]) -> Self {
        let pick = |f: fn(&Cold) -> Duration| median(&runs.iter().map(f).collect::<Vec<_>>());
        Self {
            init: pick(|c| c.init),
            first_invoke: pick(|c| c.first_invoke),
            total: pick(|c| c.total),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert_eq!(quantile(&v, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&v, 1.0), Duration::from_millis(100));
        let three = [3, 1, 2].map(Duration::from_millis);
        assert_eq!(median(&three), Duration::from_millis(2));
        assert_eq!(median(&[]), Duration::ZERO);
    }

    /// A minimal runtime client in Python: answers each event on `outcome` (`response` or `error`).
    fn client(outcome: &str) -> Launch {
        let script = format!(
            "import os, urllib.request as u\n\
             api = 'http://' + os.environ['AWS_LAMBDA_RUNTIME_API'] + '/2018-06-01/runtime/invocation/'\n\
             while True:\n\
             \x20   r = u.urlopen(api + 'next'); i = r.headers['Lambda-Runtime-Aws-Request-Id']; r.read()\n\
             \x20   u.urlopen(u.Request(api + i + '/{outcome}', data=b'1', method='POST')).read()\n"
        );
        Launch {
            name: "client".into(),
            program: "python3".into(),
            args: vec!["-c".into(), script],
            env: vec![],
        }
    }

    #[tokio::test]
    async fn a_process_is_timed_through_the_runtime_api() {
        let launch = client("response");
        let cold = cold_start(&launch, &serde_json::json!({})).await.unwrap();
        assert!(
            cold.init <= cold.total && cold.first_invoke <= cold.total,
            "{cold:?}"
        );
        let warm = warm(&launch, &serde_json::json!({}), 3).await.unwrap();
        assert_eq!(warm.len(), 3);
    }

    #[tokio::test]
    async fn an_error_answer_is_not_a_measurement() {
        let err = cold_start(&client("error"), &serde_json::json!({}))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("answered with an error"), "{err}");
    }
}
