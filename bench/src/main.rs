//! `make bench`: what the engine costs, measured side by side in one run the way a skeptical reader would, and
//! written to BENCHMARKS.md. Cold starts and warm latency of the release binaries through a local Lambda Runtime
//! API, next to a Python 3 + boto3 handler making the same AWS calls and next to the bare SDK calls; the arm64
//! zips' sizes; state transitions counted from real execution histories on the local stack and checked against
//! `safeshift plan`; rollback latency and the time to revert after an alarm; and what opening the HTTP/TLS connection during init buys. Goals are
//! reported, never asserted.
//!
//! The measurement modules return numbers; `report` alone turns them into Markdown.

mod connection;
mod handlers;
mod machine;
mod measure;
mod report;
mod rollback;
mod runtime_api;
mod sizes;
mod transitions;

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use safeshift_local::LocalStack;

use crate::machine::Machine;
use crate::report::Results;

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
    /// Rolled-back deployments to time, for each of the two rollback tables.
    #[arg(long, default_value_t = 10)]
    rollbacks: usize,
    /// Where to write the report (it is printed too).
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scratch = PathBuf::from("target/bench");
    std::fs::create_dir_all(&scratch)?;
    let machine = Machine::describe(&args.venv).await;
    let sizes = sizes::measure(&args.zips)?;
    let handlers =
        handlers::measure(&args.bins, &args.venv, args.runs, args.warm, &scratch).await?;
    // The stack is dropped before the TLS measurements, so its moto and executor do not share the CPU with them.
    let (transitions, rollback, revert) = {
        let stack =
            LocalStack::start(0, &args.venv, Some(&scratch.join("local-stack.log"))).await?;
        (
            transitions::measure(&stack).await?,
            rollback::measure(&stack, args.rollbacks).await?,
            rollback::time_to_revert(&stack, args.rollbacks).await?,
        )
    };
    let connection = connection::measure(&args.bins, &args.venv, args.runs, &scratch).await?;

    let out = report::markdown(&Results {
        machine,
        sizes,
        handlers,
        transitions,
        rollback,
        revert,
        connection,
    });
    print!("{out}");
    std::fs::write(&args.out, &out).with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("written to {}", args.out.display());
    Ok(())
}
