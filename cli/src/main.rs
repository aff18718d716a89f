//! `safeshift`: plan, start, watch and steer safe Lambda deployments.

mod local;
mod plan;
mod watch;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use safeshift_core::InvalidInput;

/// Exit status for input the user must fix (bad deployment JSON, bad flags), as clap uses for usage errors.
const EXIT_BAD_INPUT: u8 = 2;

#[derive(Parser)]
#[command(
    name = "safeshift",
    version,
    about = "Safe, gradual deployments for AWS Lambda"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the schedule a deployment input yields: each step's weight and bake, the total duration, and the
    /// state transitions and cost of running it. Touches no AWS resource.
    Plan {
        /// The deployment input (JSON); `-` reads standard input.
        #[arg(long, short)]
        input: PathBuf,
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// The real state machine and functions on this machine, against a local AWS (moto).
    Local {
        #[command(subcommand)]
        command: LocalCommand,
    },
}

#[derive(Subcommand)]
enum LocalCommand {
    /// Start moto and the gateway in the background, create the state machine, print the endpoint.
    Up {
        /// The gateway's port on 127.0.0.1: the endpoint every AWS client uses.
        #[arg(long, default_value_t = 4566)]
        port: u16,
        /// Where moto is installed (created if missing).
        #[arg(long, default_value = ".venv")]
        venv: PathBuf,
    },
    /// Stop everything `up` started.
    Down,
    /// Run the stack in the foreground (what `up` starts in the background).
    #[command(hide = true)]
    Serve {
        #[arg(long)]
        port: u16,
        #[arg(long, default_value = ".venv")]
        venv: PathBuf,
    },
    /// Two live rollouts on a demo function: one promoted, one rolled back by its alarm. Stops what it starts.
    Demo {
        #[arg(long, default_value = ".venv")]
        venv: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Local {
            command: LocalCommand::Serve { .. }
        }
    ) {
        safeshift_engine_logging();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<InvalidInput>().is_some() {
                eprintln!("hint: the input reference is in README.md under \"Deployment input\"");
                ExitCode::from(EXIT_BAD_INPUT)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The background stack logs like the Lambda functions do: JSON lines.
fn safeshift_engine_logging() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter("info")
        .try_init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Plan { input, output } => {
            let text = read_input(&input)?;
            let deployment = safeshift_core::Deployment::parse(&text)?;
            // Counted from the state machine definition this build ships (statemachine/rollout.asl.json).
            let model = safeshift_core::asl::Definition::rollout().transition_model()?;
            let plan = safeshift_core::Plan::new(&deployment, &model);
            match output {
                Output::Text => print!("{}", plan::render_text(&plan, &deployment)),
                Output::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
            }
            Ok(())
        }
        Command::Local { command } => match command {
            LocalCommand::Up { port, venv } => local::up(port, &venv),
            LocalCommand::Down => local::down(),
            LocalCommand::Serve { port, venv } => local::serve(port, &venv).await,
            LocalCommand::Demo { venv } => local::demo(&venv).await,
        },
    }
}

fn read_input(path: &PathBuf) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the deployment input from standard input")?;
        Ok(text)
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("reading the deployment input {}", path.display()))
    }
}
