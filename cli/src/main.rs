//! `safeshift`: plan, start, watch and steer safe Lambda deployments.

mod control;
mod deploy;
mod local;
mod plan;
mod watch;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use safeshift_core::InvalidInput;
use safeshift_core::control::Action;

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
    #[command(flatten)]
    aws: deploy::AwsArgs,
    /// Human-readable text, or JSON for scripts.
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Subcommand)]
enum Command {
    /// Show the schedule a deployment input yields: each step's weight and bake, the total duration, and the
    /// state transitions and cost of running it. Touches no AWS resource.
    Plan {
        /// The deployment input (JSON); `-` reads standard input.
        #[arg(long, short)]
        input: PathBuf,
    },
    /// Start a deployment. The execution is named after the function, alias and target version (with a digest of
    /// the function and alias, so no two deployments share a name), so starting the same input again is the same
    /// execution.
    Start {
        /// The deployment input (JSON); `-` reads standard input.
        #[arg(long, short)]
        input: PathBuf,
        /// Follow it to the end (exit status 0 on promotion, 1 on rollback).
        #[arg(long)]
        wait: bool,
        /// Run a finished deployment again under a new name (execution names stay taken for 90 days).
        #[arg(long, default_value_t = 1)]
        attempt: u32,
    },
    /// Follow a deployment live: each step, weight, bake and gate verdict. Exit 0 on promotion, 1 otherwise.
    Watch { execution: String },
    /// Where a deployment stands (the most recent one when no execution is given).
    Status { execution: Option<String> },
    /// Recent deployments with their outcome and duration.
    List,
    /// Stop a deployment and put its alias back on the stable version now.
    Abort {
        execution: String,
        /// Why: recorded with who stopped it as the execution's cause.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Hold a deployment at its current weight. The alarms stay watched (one going to ALARM still rolls back);
    /// `resume` goes on with the rest of the step's bake. A pause longer than the input's maxPauseSeconds (all
    /// pauses together, default 24 h) rolls back with PauseTimedOut.
    Pause {
        execution: String,
        /// Why: recorded with who paused it.
        #[arg(long)]
        reason: String,
    },
    /// Go on from a pause, with what was left of the step's bake.
    Resume {
        execution: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// End the current bake now and go to the next step (the alarms are checked first; the step's metric analysis
    /// is not). With --full, go to 100% now, past any approval gate, still running the postTraffic hook.
    Promote {
        execution: String,
        #[arg(long)]
        full: bool,
        /// Why: recorded with who promoted it.
        #[arg(long)]
        reason: String,
    },
    /// Let a deployment waiting at its approval gate go on.
    Approve {
        execution: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Refuse a deployment waiting at its approval gate: it rolls back and fails with ApprovalRejected.
    Reject {
        execution: String,
        #[arg(long, default_value = "rejected with `safeshift reject`")]
        reason: String,
    },
    /// Preview what the `Safeshift` CloudFormation macro makes of a template: prints the transformed template
    /// (JSON). FILE is the template as the macro receives it: the SAM translator's output (README "Moving from
    /// DeploymentPreference" shows how to get it offline). Touches no AWS resource.
    Transform {
        /// The template (JSON); `-` reads standard input.
        #[arg(long, short)]
        template: PathBuf,
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
    /// The lifecycle events deployments published since the last look, as a subscriber receives them.
    Events,
    /// Run the stack in the foreground (what `up` starts in the background).
    #[command(hide = true)]
    Serve {
        #[arg(long)]
        port: u16,
        #[arg(long, default_value = ".venv")]
        venv: PathBuf,
    },
    /// Live rollouts on demo functions: one promoted, one rolled back by its alarm, one by its own metrics,
    /// and a release of two functions promoted together. Stops what it starts.
    Demo {
        #[arg(long, default_value = ".venv")]
        venv: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Output {
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
        init_serve_logging();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
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
fn init_serve_logging() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter("info")
        .try_init();
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let output = cli.output;
    match cli.command {
        Command::Plan { input } => {
            let text = read_input(&input)?;
            let deployment = safeshift_core::Deployment::parse(&text)?;
            // Counted from the state machine definition this build ships (statemachine/rollout.asl.json).
            let model = safeshift_core::asl::Definition::rollout().transition_model()?;
            let plan = safeshift_core::Plan::new(&deployment, &model);
            match output {
                Output::Text => print!("{}", plan::render_text(&plan, &deployment)),
                Output::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Start {
            input,
            wait,
            attempt,
        } => {
            let text = read_input(&input)?;
            let target = deploy::connect(&cli.aws).await?;
            deploy::start(&target, &text, attempt, wait, output).await
        }
        Command::Watch { execution } => {
            deploy::watch(&deploy::connect(&cli.aws).await?, &execution).await
        }
        Command::Status { execution } => {
            let target = deploy::connect(&cli.aws).await?;
            let execution = match execution {
                Some(e) => e,
                None => deploy::latest(&target).await?,
            };
            deploy::status(&target, &execution, output).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::List => {
            deploy::list(&deploy::connect(&cli.aws).await?, output).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Approve { execution, reason } => {
            let t = deploy::connect(&cli.aws).await?;
            control::act(
                &t,
                &execution,
                Action::Approve,
                false,
                reason.as_deref(),
                output,
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Reject { execution, reason } => {
            control::reject(&deploy::connect(&cli.aws).await?, &execution, &reason).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Pause { execution, reason } => {
            let t = deploy::connect(&cli.aws).await?;
            control::act(&t, &execution, Action::Pause, false, Some(&reason), output).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Resume { execution, reason } => {
            let t = deploy::connect(&cli.aws).await?;
            control::act(
                &t,
                &execution,
                Action::Resume,
                false,
                reason.as_deref(),
                output,
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Promote {
            execution,
            full,
            reason,
        } => {
            let t = deploy::connect(&cli.aws).await?;
            control::act(&t, &execution, Action::Promote, full, Some(&reason), output).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Abort { execution, reason } => {
            let t = deploy::connect(&cli.aws).await?;
            deploy::abort(&t, &execution, reason.as_deref(), output).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Transform { template } => {
            let text = read_input(&template)?;
            let template: serde_json::Value = serde_json::from_str(&text).with_context(|| {
                "the template must be JSON: the SAM translator's output (README \"Moving from DeploymentPreference\")"
            })?;
            let provider = format!("{}-cloudformation", cli.aws.stack);
            match safeshift_core::transform::transform(template, &provider) {
                Ok(out) => {
                    println!("{}", serde_json::to_string_pretty(&out)?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(ExitCode::from(EXIT_BAD_INPUT))
                }
            }
        }
        Command::Local { command } => {
            match command {
                LocalCommand::Up { port, venv } => local::up(port, &venv)?,
                LocalCommand::Down => local::down()?,
                LocalCommand::Events => {
                    let Some(r) = local::running() else {
                        anyhow::bail!(
                            "no local stack is running here; `safeshift local up` starts one"
                        );
                    };
                    local::show_events(&safeshift_local::stack::sdk_config(&r.endpoint).await)
                        .await?
                }
                LocalCommand::Serve { port, venv } => local::serve(port, &venv).await?,
                LocalCommand::Demo { venv } => local::demo(&venv).await?,
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn read_input(path: &std::path::Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the deployment input from standard input")?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    }
}
