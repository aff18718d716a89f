//! `safeshift`: plan, start, watch and steer safe Lambda deployments.

mod plan;

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
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
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

fn run(cli: Cli) -> anyhow::Result<()> {
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
