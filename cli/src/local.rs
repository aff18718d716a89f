//! `safeshift local`: run the real state machine and functions on this machine, against moto.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_cloudwatch::types::StateValue;
use aws_sdk_sfn::types::ExecutionStatus;
use safeshift_local::LocalStack;
use safeshift_local::fixtures::Fixtures;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::watch;

/// Where `up` keeps what it started, so that `down` can stop exactly that.
const STATE_DIR: &str = ".safeshift";
/// The first `up` on a machine installs moto: allow for it.
const START_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Running {
    pid: u32,
    moto_pid: u32,
    pub endpoint: String,
    pub state_machine_arn: String,
}

/// The local stack `up` started in this folder, if it is still running.
pub fn running() -> Option<Running> {
    read_running().filter(|r| alive(r.pid))
}

fn state_file() -> PathBuf {
    Path::new(STATE_DIR).join("local.json")
}

fn alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

fn read_running() -> Option<Running> {
    serde_json::from_str(&std::fs::read_to_string(state_file()).ok()?).ok()
}

/// Starts `local serve` in the background and waits until it is ready.
pub fn up(port: u16, venv: &Path) -> anyhow::Result<()> {
    if let Some(r) = read_running().filter(|r| alive(r.pid)) {
        bail!(
            "a local stack is already running at {} (pid {}); stop it with `safeshift local down`",
            r.endpoint,
            r.pid
        );
    }
    std::fs::create_dir_all(STATE_DIR)?;
    let _ = std::fs::remove_file(state_file());
    let log = Path::new(STATE_DIR).join("local.log");
    let mut child = Command::new(std::env::current_exe()?)
        .args(["local", "serve", "--port", &port.to_string(), "--venv"])
        .arg(venv)
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::fs::File::create(&log)?))
        .stderr(Stdio::from(
            std::fs::File::options().append(true).open(&log)?,
        ))
        .spawn()
        .context("starting `safeshift local serve`")?;
    let deadline = Instant::now() + START_TIMEOUT;
    let running = loop {
        if let Some(r) = read_running() {
            break r;
        }
        if let Some(status) = child.try_wait()? {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("the local stack exited ({status}) before it was ready:\n{tail}");
        }
        if Instant::now() > deadline {
            signal(child.id(), "-TERM");
            bail!(
                "the local stack was not ready within {} s; see {}",
                START_TIMEOUT.as_secs(),
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    println!("local AWS:      {}", running.endpoint);
    println!("state machine:  {}", running.state_machine_arn);
    println!("logs:           {}", log.display());
    println!();
    println!("Point any AWS client at it:");
    println!(
        "  export AWS_ENDPOINT_URL={} AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local",
        running.endpoint
    );
    println!("Stop it with `safeshift local down`.");
    Ok(())
}

/// Runs the stack in this process until SIGTERM or Ctrl-C.
pub async fn serve(port: u16, venv: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(STATE_DIR)?;
    let stack = LocalStack::start(port, venv, Some(&Path::new(STATE_DIR).join("moto.log"))).await?;
    let running = Running {
        pid: std::process::id(),
        moto_pid: stack.moto_pid(),
        endpoint: stack.endpoint(),
        state_machine_arn: stack.state_machine_arn.clone(),
    };
    // Written last, and atomically: `up` takes its existence to mean "ready".
    let tmp = state_file().with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&running)?)?;
    std::fs::rename(&tmp, state_file())?;
    tracing::info!(endpoint = %running.endpoint, "local stack ready");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    drop(stack);
    let _ = std::fs::remove_file(state_file());
    Ok(())
}

/// Stops what `up` started, by PID.
pub fn down() -> anyhow::Result<()> {
    let Some(r) = read_running() else {
        println!("no local stack is running");
        return Ok(());
    };
    signal(r.pid, "-TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(r.pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for pid in [r.pid, r.moto_pid] {
        if alive(pid) {
            signal(pid, "-KILL");
        }
    }
    let _ = std::fs::remove_file(state_file());
    println!("stopped the local stack at {}", r.endpoint);
    Ok(())
}

/// Three rollouts, live: a healthy version promoted through a canary, a bad one rolled back by its alarm, and
/// one rolled back by its own metrics with no alarm.
pub async fn demo(venv: &Path) -> anyhow::Result<()> {
    println!("Starting the local stack (moto + the real safeshift functions and state machine)...");
    let stack = LocalStack::start(0, venv, None).await?;
    println!(
        "local AWS at {}, state machine {}\n",
        stack.endpoint(),
        stack.state_machine_arn
    );
    let fx = Fixtures::new(&stack);
    let sfn = aws_sdk_sfn::Client::new(&stack.config);
    fx.function("orders-api", 4).await?;
    fx.function("SafeshiftHook_orders-api-smoke", 1).await?;
    fx.alarm("orders-api-errors").await?;
    println!(
        "demo function orders-api: versions 1 to 4; alias live -> 1; alarm orders-api-errors (OK)\n"
    );

    let input = |target: &str| {
        json!({
            "functionName": "orders-api",
            "alias": "live",
            "targetVersion": target,
            "strategy": {"steps": [{"percent": 10, "bakeSeconds": 4}, {"percent": 50, "bakeSeconds": 4}]},
            "alarms": ["orders-api-errors"],
            "hooks": {"preTraffic": "SafeshiftHook_orders-api-smoke"},
            "bakeSeconds": 3
        })
    };

    println!("== Rollout 1: version 2, healthy ==");
    let ended = run(&sfn, &stack, "orders-api-live-2", &input("2"), None).await?;
    report(&fx, ended).await?;
    show_events(&stack.config).await?;

    println!("\n== Rollout 2: version 3, starts throwing errors once it takes traffic ==");
    let ended = run(
        &sfn,
        &stack,
        "orders-api-live-3",
        &input("3"),
        Some((&fx, Breakage::Alarm)),
    )
    .await?;
    report(&fx, ended).await?;
    show_events(&stack.config).await?;

    println!(
        "\n== Rollout 3: version 4, no alarm configured; its own metrics against version 2's give it away =="
    );
    let mut analysed = input("4");
    analysed.as_object_mut().map(|o| o.remove("alarms"));
    analysed["analysis"] =
        json!({"maxErrorRate": 0.02, "minInvocations": 100, "metricDelaySeconds": 0});
    let ended = run(
        &sfn,
        &stack,
        "orders-api-live-4",
        &analysed,
        Some((&fx, Breakage::Metrics)),
    )
    .await?;
    report(&fx, ended).await?;
    show_events(&stack.config).await?;

    println!(
        "\n== Rollout 4: a release: orders-worker and orders-feed move together, under one verdict =="
    );
    for f in ["orders-worker", "orders-feed"] {
        fx.function(f, 2).await?;
    }
    let release = json!({
        "release": "orders-2026-11-29",
        "targets": [
            {"functionName": "orders-worker", "alias": "live", "targetVersion": "2"},
            {"functionName": "orders-feed", "alias": "live", "targetVersion": "2"}
        ],
        "strategy": {"steps": [{"percent": 10, "bakeSeconds": 3}, {"percent": 50, "bakeSeconds": 3}]}
    });
    let ended = run(&sfn, &stack, "orders-2026-11-29", &release, None).await?;
    report_on(&fx, ended, &["orders-worker", "orders-feed"]).await?;
    show_events(&stack.config).await?;
    println!("\nStopping the local stack.");
    Ok(())
}

async fn run(
    sfn: &aws_sdk_sfn::Client,
    stack: &LocalStack,
    name: &str,
    input: &serde_json::Value,
    break_it: Option<(&Fixtures, Breakage)>,
) -> anyhow::Result<watch::Ended> {
    let arn = stack.start_execution(name, input).await?;
    let mut broken = false;
    watch::follow(sfn, &arn, |line, _| {
        println!("{line}");
        let Some((fx, breakage)) = break_it.filter(|_| !broken && line.starts_with("step 1/")) else {
            return;
        };
        broken = true;
        let fx = fx.clone();
        match breakage {
            Breakage::Alarm => {
                println!("  !! version 3 errors: orders-api-errors goes to ALARM");
                tokio::spawn(async move {
                    let _ = fx
                        .set_alarm(
                            "orders-api-errors",
                            StateValue::Alarm,
                            "12 errors in 1 minute on version 3",
                        )
                        .await;
                });
            }
            Breakage::Metrics => {
                println!(
                    "  !! traffic: version 4 fails 30 of 200 calls; version 2 fails 9 of 1,800 (Lambda's per-version metrics)"
                );
                tokio::spawn(async move {
                    let _ = fx
                        .put_version_metrics("orders-api", "live", "4", [200, 30, 0])
                        .await;
                    let _ = fx
                        .put_version_metrics("orders-api", "live", "2", [1800, 9, 0])
                        .await;
                });
            }
        }
    })
    .await
}

/// How the demo breaks a rollout once its first step is live.
#[derive(Debug, Clone, Copy)]
enum Breakage {
    /// The deployment's alarm fires.
    Alarm,
    /// The new version's own metrics are bad; no alarm is involved.
    Metrics,
}

/// The lifecycle events a subscriber received since the last look (the local stack's own queue on the bus).
pub async fn show_events(config: &aws_config::SdkConfig) -> anyhow::Result<()> {
    let events = safeshift_local::stack::received_events(config).await?;
    println!("events published (source safeshift, as a subscriber receives them):");
    for e in &events {
        println!(
            "  {:<24} {}",
            e["detail-type"].as_str().unwrap_or("?"),
            e["detail"]
        );
    }
    if events.is_empty() {
        println!("  (none)");
    }
    Ok(())
}

async fn report(fx: &Fixtures, ended: watch::Ended) -> anyhow::Result<()> {
    report_on(fx, ended, &["orders-api"]).await
}

/// How the execution ended, and where each function's `live` alias routes now.
async fn report_on(fx: &Fixtures, ended: watch::Ended, functions: &[&str]) -> anyhow::Result<()> {
    match ended.status {
        ExecutionStatus::Succeeded => println!("execution SUCCEEDED"),
        status => println!(
            "execution {}: {} ({})",
            status.as_str(),
            ended.error.unwrap_or_default(),
            ended
                .cause
                .unwrap_or_default()
                .chars()
                .take(160)
                .collect::<String>()
        ),
    }
    for f in functions {
        let (version, weights) = fx.routing(f).await?;
        let extra = if weights.is_empty() {
            "no additional weights".to_owned()
        } else {
            format!("weights {weights:?}")
        };
        let name = if functions.len() > 1 {
            format!("{f}:live")
        } else {
            "alias live".to_owned()
        };
        println!("{name} -> version {version}, {extra}");
    }
    Ok(())
}
