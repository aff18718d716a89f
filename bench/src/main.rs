//! `make bench`: what the engine costs, measured side by side in one run the way a skeptical reader would, and
//! written to BENCHMARKS.md. Cold starts and warm latency of the release binaries through a local Lambda Runtime
//! API, next to a Python 3 + boto3 handler making the same AWS calls and next to the bare SDK calls; the arm64
//! zips' sizes; state transitions counted from real execution histories on the local stack and checked against
//! `safeshift plan`; rollback latency; and what opening the HTTP/TLS connection during init buys. Goals are
//! reported, never asserted.

mod measure;
mod runtime_api;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_sfn::types::ExecutionStatus;
use clap::Parser;
use safeshift_core::Deployment;
use safeshift_core::asl::{Definition, TransitionModel};
use safeshift_core::names::Version;
use safeshift_core::plan::{Plan, cost_usd};
use safeshift_core::rollout::Rollout;
use safeshift_core::strategy::Predefined;
use safeshift_local::LocalStack;
use safeshift_local::executions::{self, history};
use safeshift_local::fixtures::Fixtures;
use safeshift_local::moto::MotoServer;
use serde_json::{Value, json};
use strum::VariantArray;

use crate::measure::{Cold, Launch, median, ms, quantile};

#[derive(Debug, Parser)]
struct Args {
    /// Where the native release binaries of the four functions are (`cargo build --release`).
    #[arg(long, default_value = "target/release")]
    bins: PathBuf,
    /// Where `make lambda-zips` left the arm64 zips (`<function>/bootstrap.zip`).
    #[arg(long, default_value = "target/lambda-arm64")]
    zips: PathBuf,
    /// The venv holding moto (and boto3, which the Python handler uses).
    #[arg(long, default_value = ".venv")]
    venv: PathBuf,
    /// Cold starts per function and language.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Warm invocations per function.
    #[arg(long, default_value_t = 200)]
    warm: usize,
    /// Rolled-back deployments to time.
    #[arg(long, default_value_t = 10)]
    rollbacks: usize,
    /// Where to write the report (it is printed too).
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
}

const FUNCTIONS: [&str; 4] = ["shift-weight", "check-alarms", "run-hook", "rollback"];
/// The zip goal, in bytes (decimal megabytes: the stricter reading).
const ZIP_GOAL: u64 = 5_000_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scratch = PathBuf::from("target/bench");
    std::fs::create_dir_all(&scratch)?;
    let mut out = header(&args).await?;
    let sizes = sizes(&args.zips)?;
    let handlers = handlers(&args, &scratch).await?;
    let transitions = transitions(&args, &scratch).await?;
    let tls = connection_at_init(&args, &scratch).await?;

    goals(&mut out, &handlers, &transitions, &sizes);
    out.push_str(&handlers.text);
    out.push_str(&sizes.text);
    out.push_str(&transitions.text);
    out.push_str(&tls);
    print!("{out}");
    std::fs::write(&args.out, &out).with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("written to {}", args.out.display());
    Ok(())
}

async fn output(program: &str, args: &[&str]) -> String {
    tokio::process::Command::new(program)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .await
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "?".into())
}

async fn header(args: &Args) -> anyhow::Result<String> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let python = args.venv.join("bin/python");
    let versions = output(
        &python.to_string_lossy(),
        &[
            "-c",
            "import sys, boto3, moto; print(f'Python {sys.version.split()[0]}, boto3 {boto3.__version__}, moto {moto.__version__}')",
        ],
    )
    .await;
    let rustc = output("rustc", &["--version"]).await;
    let mut s = String::new();
    writeln!(s, "# Benchmarks\n")?;
    writeln!(
        s,
        "`make bench`, {}. Machine: {cpu}, {cores} cores, Linux {}. {rustc}; {versions}.\n",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        kernel.trim()
    )?;
    writeln!(
        s,
        "Everything runs on this machine: AWS is moto on loopback, so network latency is near zero and every figure \
         is the engine's own cost (and moto's). Cold starts and latency use native x86_64 release binaries (the \
         shipped arm64 ones cannot run here) and the Python handler under `bench/python/bootstrap.py`, a \
         Runtime API loop like the managed runtime's; neither pays for Lambda's own sandbox setup. Sizes are of \
         the arm64 zips that ship. Medians unless stated.\n"
    )?;
    Ok(s)
}

// ---- sizes --------------------------------------------------------------------------------------------------

struct Sizes {
    text: String,
    largest_zip: (String, u64),
}

fn sizes(zips: &Path) -> anyhow::Result<Sizes> {
    let mut text = String::from(
        "## Size\n\nThe arm64 release `bootstrap` of each function and the zip Lambda receives (`make lambda-zips`, \
         cargo-lambda). Read: the zip is what is uploaded and counts against Lambda's limits; the bootstrap is what \
         is loaded at a cold start.\n\n| function | bootstrap (bytes) | zip (bytes) |\n|---|---:|---:|\n",
    );
    let (mut total_bin, mut total_zip, mut largest) = (0, 0, (String::new(), 0));
    for f in FUNCTIONS {
        let path = zips.join(f).join("bootstrap.zip");
        let zip_size = std::fs::metadata(&path)
            .with_context(|| format!("{} (run `make lambda-zips`)", path.display()))?
            .len();
        let mut archive = zip::ZipArchive::new(std::fs::File::open(&path)?)?;
        let bin = archive.by_name("bootstrap")?.size();
        writeln!(text, "| {f} | {bin} | {zip_size} |")?;
        total_bin += bin;
        total_zip += zip_size;
        if zip_size > largest.1 {
            largest = (f.to_owned(), zip_size);
        }
    }
    writeln!(text, "| **total** | {total_bin} | {total_zip} |\n")?;
    Ok(Sizes {
        text,
        largest_zip: largest,
    })
}

// ---- cold starts and warm latency -----------------------------------------------------------------------------

struct Handlers {
    text: String,
    /// Per function: Python's median cold start over Rust's.
    ratios: Vec<(String, f64)>,
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

const CALLS: [(&str, &str); 4] = [
    ("shift-weight", "GetAlias, 2 × GetFunctionConfiguration"),
    ("check-alarms", "DescribeAlarms"),
    ("run-hook", "Invoke"),
    ("rollback", "GetAlias"),
];

async fn handlers(args: &Args, scratch: &Path) -> anyhow::Result<Handlers> {
    let venv = args.venv.clone();
    let log = scratch.join("moto-handlers.log");
    let moto =
        tokio::task::spawn_blocking(move || MotoServer::start(&venv, None, Some(&log))).await??;
    let config = safeshift_local::stack::sdk_config(&moto.endpoint()).await;
    let fx = Fixtures::on(&config, moto.port);
    let lambda = aws_sdk_lambda::Client::new(&config);
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&config);
    let events = world(&fx, &lambda).await?;
    let endpoint = vec![("AWS_ENDPOINT_URL".to_owned(), moto.endpoint())];
    let python = args.venv.join("bin/python");
    let bootstrap = PathBuf::from("bench/python/bootstrap.py");

    let mut cold_rows = String::new();
    let mut warm_rows = String::new();
    let mut ratios = Vec::new();
    for (function, event) in &events {
        let rust = Launch {
            name: (*function).into(),
            program: args.bins.join(function),
            args: vec![],
            env: endpoint.clone(),
        };
        let py = Launch {
            name: format!("{function} (Python)"),
            program: python.clone(),
            args: vec![bootstrap.to_string_lossy().into_owned(), (*function).into()],
            env: endpoint.clone(),
        };
        eprintln!(
            "cold starts: {function} ({} runs each, Rust and Python)",
            args.runs
        );
        let (mut rust_cold, mut py_cold) = (Vec::new(), Vec::new());
        for _ in 0..args.runs {
            // Interleaved, so drift on a shared machine falls on both alike.
            rust_cold.push(measure::cold_start(&rust, event).await?);
            py_cold.push(measure::cold_start(&py, event).await?);
        }
        let (r, p) = (Medians::of(&rust_cold), Medians::of(&py_cold));
        let ratio = p.total.as_secs_f64() / r.total.as_secs_f64();
        ratios.push(((*function).to_owned(), ratio));
        writeln!(
            cold_rows,
            "| {function} | {} | {} | **{}** | {} | {} | **{}** | **{ratio:.1}×** |",
            ms(r.init),
            ms(r.first_invoke),
            ms(r.total),
            ms(p.init),
            ms(p.first_invoke),
            ms(p.total),
        )?;

        eprintln!("warm: {function} ({} invocations each)", args.warm);
        let rust_warm = measure::warm(&rust, event, args.warm).await?;
        let py_warm = measure::warm(&py, event, args.warm).await?;
        let bare = measure::timed(args.warm, || bare_call(function, &lambda, &cloudwatch)).await?;
        let calls = CALLS
            .iter()
            .find(|(f, _)| f == function)
            .map_or("?", |(_, c)| c);
        writeln!(
            warm_rows,
            "| {function} | {calls} | {} | {} | {} | {} | {:.2}× | {} | {} |",
            ms(median(&rust_warm)),
            ms(quantile(&rust_warm, 0.99)),
            ms(median(&bare)),
            ms(quantile(&bare, 0.99)),
            median(&rust_warm).as_secs_f64() / median(&bare).as_secs_f64(),
            ms(median(&py_warm)),
            ms(quantile(&py_warm, 0.99)),
        )?;
    }
    let mut text = String::new();
    writeln!(
        text,
        "## Cold start\n\nEach function's native release binary and a Python 3 + boto3 handler making the same AWS \
         calls (`bench/python/`), each started {} times as a fresh process against a local Lambda Runtime API \
         (`bench/src/runtime_api.rs`), interleaved. *Init* is process start to its first request for an event \
         (Lambda's INIT phase: loading, clients built; for Rust also the connection opened, see the last table); \
         *first invoke* is that event delivered to its response; *cold start* is process start to the first \
         response, what a caller waits. Read the last column as how many times longer Python takes. Times in ms.\n",
        args.runs
    )?;
    writeln!(
        text,
        "| function | Rust init | Rust first invoke | Rust cold start | Python init | Python first invoke | Python cold start | Python / Rust |\n|---|---:|---:|---:|---:|---:|---:|---:|\n{cold_rows}"
    )?;
    writeln!(
        text,
        "## Warm latency\n\n{} invocations of one warm process per function, from the event delivered to its \
         response, next to the same AWS calls made bare with the Rust SDK from a warm client (the overhead column \
         is handler p50 over bare p50: what validation, decisions, JSON and the runtime add) and to the Python \
         handler. Times in ms.\n",
        args.warm
    )?;
    writeln!(
        text,
        "| function | AWS calls | handler p50 | handler p99 | bare SDK p50 | bare SDK p99 | overhead | Python p50 | Python p99 |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n{warm_rows}"
    )?;
    Ok(Handlers { text, ratios })
}

struct Medians {
    init: Duration,
    first_invoke: Duration,
    total: Duration,
}

impl Medians {
    fn of(runs: &[Cold]) -> Self {
        let pick = |f: fn(&Cold) -> Duration| median(&runs.iter().map(f).collect::<Vec<_>>());
        Self {
            init: pick(|c| c.init),
            first_invoke: pick(|c| c.first_invoke),
            total: pick(|c| c.total),
        }
    }
}

// ---- transitions, cost and rollback latency on the local stack --------------------------------------------------

struct Transitions {
    text: String,
    /// The most transitions per step any strategy's real history showed.
    worst_per_step: f64,
}

/// Waits for the execution to end; its final status.
async fn finish(sfn: &aws_sdk_sfn::Client, arn: &str) -> anyhow::Result<ExecutionStatus> {
    let done = executions::wait_for_end(sfn, arn, Duration::from_secs(180)).await?;
    Ok(done.status().clone())
}

async fn transitions(args: &Args, scratch: &Path) -> anyhow::Result<Transitions> {
    let stack = LocalStack::start(0, &args.venv, Some(&scratch.join("local-stack.log"))).await?;
    let fx = Fixtures::new(&stack);
    let sfn = aws_sdk_sfn::Client::new(&stack.config);
    let model: TransitionModel = Definition::rollout().transition_model()?;

    let mut rows = String::new();
    let mut worst_per_step: f64 = 0.0;
    for (i, predefined) in Predefined::VARIANTS.iter().enumerate() {
        let name = predefined.name();
        let function = format!("strategy{i}");
        fx.function(&function, 2).await?;
        let planned = Deployment::from_value(
            json!({"functionName": function, "alias": "live", "targetVersion": "2", "strategy": name}),
        )?;
        let plan = Plan::new(&planned, &model);
        // The same steps, baked 1 s each: transitions depend on the steps, not on how long each is held.
        let traffic: Vec<Value> = planned
            .schedule()
            .traffic_steps()
            .iter()
            .map(|s| json!({"percent": s.percent, "bakeSeconds": 1}))
            .collect();
        let strategy = if traffic.is_empty() {
            json!(name)
        } else {
            json!({"steps": traffic})
        };
        let input = json!({"functionName": function, "alias": "live", "targetVersion": "2", "strategy": strategy});
        eprintln!("transitions: {name}");
        let arn = stack
            .start_execution(&format!("{function}-live-2"), &input)
            .await?;
        let status = finish(&sfn, &arn).await?;
        ensure!(
            status == ExecutionStatus::Succeeded,
            "{name}: execution {status:?}"
        );
        let counted = history(&sfn, &arn)
            .await?
            .iter()
            .filter(|e| e.state_entered_event_details().is_some())
            .count() as u64;
        let steps = plan.steps.len();
        let per_step = (counted - model.fixed) as f64 / steps as f64;
        worst_per_step = worst_per_step.max(per_step);
        writeln!(
            rows,
            "| {name} | {steps} | {} | {counted} | {per_step:.1} | {:.6} | {} |",
            plan.state_transitions,
            cost_usd(counted),
            if counted == plan.state_transitions {
                "yes"
            } else {
                "**no**"
            }
        )?;
    }

    eprintln!(
        "rollback latency: {} rolled-back deployments",
        args.rollbacks
    );
    fx.alarm("bench-errors").await?;
    fx.set_alarm(
        "bench-errors",
        aws_sdk_cloudwatch::types::StateValue::Alarm,
        "the benchmark's failing gate",
    )
    .await?;
    let mut latencies = Vec::new();
    for i in 0..args.rollbacks {
        let function = format!("rollback{i}");
        fx.function(&function, 2).await?;
        let input = json!({"functionName": function, "alias": "live", "targetVersion": "2",
            "strategy": {"steps": [{"percent": 10, "bakeSeconds": 1}]}, "alarms": ["bench-errors"]});
        let arn = stack
            .start_execution(&format!("{function}-live-2"), &input)
            .await?;
        ensure!(
            finish(&sfn, &arn).await? == ExecutionStatus::Failed,
            "{function} was not rolled back"
        );
        ensure!(
            fx.routing(&function).await? == ("1".to_owned(), vec![]),
            "{function}: the alias is not back on version 1"
        );
        let events = history(&sfn, &arn).await?;
        let exited = |state: &str| {
            events
                .iter()
                .filter(|e| {
                    e.state_exited_event_details()
                        .is_some_and(|d| d.name() == state)
                })
                .map(|e| e.timestamp().as_secs_f64())
                .next_back()
        };
        let (Some(gate), Some(restored)) = (exited("CheckGates"), exited("RollBack")) else {
            bail!("{function}: no CheckGates or RollBack in the history");
        };
        latencies.push(Duration::from_secs_f64((restored - gate).max(0.0)));
    }

    let mut text = String::new();
    writeln!(
        text,
        "## Transitions and cost\n\nEach predefined strategy run once on the local stack (the real state machine \
         executed by moto, the real handlers), with each traffic step baked 1 s instead of minutes: the \
         transitions depend on the steps, not on how long each is held. *Counted* is the number of states the \
         execution entered, read from its history — what Step Functions Standard bills; *plan* is what \
         `safeshift plan` says for the predefined name. *Per step* is (counted − the {} fixed states) / steps; \
         cost at $0.025 per 1,000 transitions.\n",
        model.fixed
    )?;
    writeln!(
        text,
        "| strategy | steps | plan | counted | per step | cost (USD) | plan = counted |\n|---|---:|---:|---:|---:|---:|---|\n{rows}"
    )?;
    writeln!(
        text,
        "## Rollback latency\n\n{} deployments whose first step's alarm is in ALARM, on the local stack: from the \
         failing CheckGates task's end to the RollBack task's end, whose function has restored the alias (checked \
         after each run), by the execution history's timestamps. It includes moto's executor scheduling two \
         states (GateFailed, RollBack) and the rollback function's GetAlias and UpdateAlias.\n\n\
         | runs | median | p90 | max |\n|---:|---:|---:|---:|\n| {} | {} ms | {} ms | {} ms |\n",
        args.rollbacks,
        args.rollbacks,
        ms(median(&latencies)),
        ms(quantile(&latencies, 0.9)),
        ms(quantile(&latencies, 1.0)),
    )?;
    Ok(Transitions {
        text,
        worst_per_step,
    })
}

// ---- the HTTP/TLS connection opened during init: before and after -------------------------------------------------

/// A moto of its own, serving HTTPS with a certificate from a throwaway CA.
struct TlsMoto {
    child: tokio::process::Child,
    port: u16,
}

impl TlsMoto {
    async fn start(venv: &Path, certs: &Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = tokio::process::Command::new(venv.join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string(), "-c"])
            .arg(certs.join("server.pem"))
            .arg("-k")
            .arg(certs.join("server.key"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            ensure!(
                Instant::now() < deadline,
                "moto (TLS) not listening on {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self { child, port })
    }
}

async fn python(venv: &Path, args: &[&str]) -> anyhow::Result<()> {
    let status = tokio::process::Command::new(venv.join("bin/python"))
        .arg("bench/python/tls.py")
        .args(args)
        .status()
        .await?;
    ensure!(status.success(), "bench/python/tls.py {args:?} failed");
    Ok(())
}

async fn connection_at_init(args: &Args, scratch: &Path) -> anyhow::Result<String> {
    let certs = scratch.join("tls");
    python(&args.venv, &["certs", &certs.to_string_lossy()]).await?;
    let mut moto = TlsMoto::start(&args.venv, &certs).await?;
    let endpoint = format!("https://127.0.0.1:{}", moto.port);
    let ca = certs.join("ca.pem");
    python(
        &args.venv,
        &["alarm", &endpoint, &ca.to_string_lossy(), "orders-errors"],
    )
    .await?;
    let deployment = Deployment::from_value(json!({
        "functionName": "orders", "alias": "live", "targetVersion": "2",
        "strategy": "Canary10Percent5Minutes", "alarms": ["orders-errors"]
    }))?;
    let event = serde_json::to_value(Rollout::prepared(
        "bench".into(),
        deployment,
        Version::new(1).context("version 1")?,
        "r".into(),
    ))?;
    let mut rows = String::new();
    for (label, warm_up) in [("off (`SAFESHIFT_WARM_UP=0`)", "0"), ("on (default)", "1")] {
        eprintln!(
            "connection at init: warm-up {warm_up} ({} cold starts)",
            args.runs
        );
        let launch = Launch {
            name: "check-alarms".into(),
            program: args.bins.join("check-alarms"),
            args: vec![],
            env: vec![
                ("AWS_ENDPOINT_URL".into(), endpoint.clone()),
                // rustls-native-certs reads the trust store from here: our CA only.
                ("SSL_CERT_FILE".into(), ca.to_string_lossy().into_owned()),
                ("SAFESHIFT_WARM_UP".into(), warm_up.into()),
            ],
        };
        let mut runs = Vec::new();
        for _ in 0..args.runs {
            runs.push(measure::cold_start(&launch, &event).await?);
        }
        let m = Medians::of(&runs);
        writeln!(
            rows,
            "| {label} | {} | {} | {} |",
            ms(m.init),
            ms(m.first_invoke),
            ms(m.total)
        )?;
    }
    let _ = moto.child.kill().await;
    Ok(format!(
        "## HTTP/TLS client initialised during init\n\n`check-alarms` started {} times per row against moto over \
         HTTPS (a throwaway CA in `SSL_CERT_FILE`), with and without the init-time call that opens its \
         connection (`functions/engine/src/aws.rs`, `warm_up`). Without it, the first invocation builds the \
         HTTP connector, loads the root certificates and does the TCP and TLS handshakes; with it, init does, \
         where Lambda gives the CPU boost and the invocation's caller is not yet waiting. Read the *first invoke* \
         column: it is what the first deployment step waits. The cost is moved, not removed, and the warm-up is \
         one extra call, so the cold start total can grow here; what it buys is that the work runs in init, \
         where on Lambda it runs with the init phase's CPU boost instead of a 128 MB share (AWS's published \
         figure for this work done in the invocation at 128 MB is about 900 ms). Times in ms (medians).\n\n| warm-up | init | first invoke | cold start |\n|---|---:|---:|---:|\n{rows}\n",
        args.runs
    ))
}

// ---- goals ----------------------------------------------------------------------------------------------------

fn goals(out: &mut String, handlers: &Handlers, transitions: &Transitions, sizes: &Sizes) {
    let worst_ratio = handlers
        .ratios
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .cloned()
        .unwrap_or_default();
    let met = |ok: bool| if ok { "met" } else { "**not met**" };
    let _ = writeln!(
        out,
        "## Goals\n\nReported, not asserted: they are targets for the design, not tests.\n\n\
         | goal | measured | |\n|---|---|---|\n\
         | cold start at most a quarter of the Python equivalent's | Python / Rust at least {:.1}× ({}) | {} |\n\
         | at most 4 state transitions per traffic step | at most {:.1} (real histories) | {} |\n\
         | each zip at most 5 MB | largest {} bytes ({}) | {} |\n",
        worst_ratio.1,
        worst_ratio.0,
        met(worst_ratio.1 >= 4.0),
        transitions.worst_per_step,
        met(transitions.worst_per_step <= 4.0),
        sizes.largest_zip.1,
        sizes.largest_zip.0,
        met(sizes.largest_zip.1 <= ZIP_GOAL),
    );
}
