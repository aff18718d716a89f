//! Deployments on a deployed (or local) safeshift: start, watch, status, list, abort.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_sfn::types::ExecutionStatus;
use safeshift_core::Deployment;
use safeshift_engine::guard::Scope;
use safeshift_engine::rollback::Rollback;
use safeshift_engine::runtime;
use safeshift_engine::{DynamoLockAdapter, LambdaAdapter, StepFunctionsAdapter};
use serde_json::{Value, json};

use crate::{Output, watch};

/// Where to find AWS and the state machine, the aws CLI's way.
#[derive(Debug, Clone, clap::Args)]
pub struct AwsArgs {
    #[arg(long, global = true)]
    pub region: Option<String>,
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// The safeshift state machine; defaults to $SAFESHIFT_STATE_MACHINE, then to a running `safeshift local up`,
    /// then to the StateMachineArn output of the deployed stack (--stack).
    #[arg(long, global = true, env = "SAFESHIFT_STATE_MACHINE")]
    pub state_machine: Option<String>,
    /// The deployed safeshift stack whose output names the state machine.
    #[arg(long, global = true, default_value = "safeshift")]
    pub stack: String,
}

pub struct Target {
    pub config: aws_config::SdkConfig,
    pub sfn: aws_sdk_sfn::Client,
    pub state_machine_arn: String,
}

/// Resolves the state machine and the AWS configuration. `AWS_ENDPOINT_URL` is honoured by the SDK itself.
pub async fn connect(args: &AwsArgs) -> anyhow::Result<Target> {
    let aws = || async {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(r) = &args.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        if let Some(p) = &args.profile {
            loader = loader.profile_name(p);
        }
        loader.load().await
    };
    let (config, arn) = match (&args.state_machine, crate::local::running()) {
        (Some(arn), _) => (aws().await, arn.clone()),
        (None, Some(local)) => (
            safeshift_local::stack::sdk_config(&local.endpoint).await,
            local.state_machine_arn,
        ),
        (None, None) => {
            let config = aws().await;
            let arn = stack_output(&config, &args.stack).await.with_context(|| {
                format!(
                    "which state machine? Pass --state-machine ARN, set SAFESHIFT_STATE_MACHINE, deploy the stack \
                     `{}` (or name yours with --stack), or start a local one with `safeshift local up`",
                    args.stack
                )
            })?;
            (config, arn)
        }
    };
    Ok(Target {
        sfn: aws_sdk_sfn::Client::new(&config),
        config,
        state_machine_arn: arn,
    })
}

/// The StateMachineArn output of the deployed stack.
async fn stack_output(config: &aws_config::SdkConfig, stack: &str) -> anyhow::Result<String> {
    let out = aws_sdk_cloudformation::Client::new(config)
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await?;
    out.stacks()
        .iter()
        .flat_map(|s| s.outputs())
        .find(|o| o.output_key() == Some("StateMachineArn"))
        .and_then(|o| o.output_value())
        .map(str::to_owned)
        .with_context(|| format!("stack `{stack}` has no StateMachineArn output"))
}

/// The most recent deployment on the state machine.
pub async fn latest(t: &Target) -> anyhow::Result<String> {
    let page = t
        .sfn
        .list_executions()
        .state_machine_arn(&t.state_machine_arn)
        .max_results(1)
        .send()
        .await?;
    page.executions()
        .first()
        .map(|e| e.execution_arn().to_owned())
        .context("no deployment has run on this state machine yet")
}

fn console_url(arn: &str) -> String {
    let region = arn.split(':').nth(3).unwrap_or("us-east-1");
    format!(
        "https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{arn}"
    )
}

/// The deployment an execution runs, from its input.
async fn deployment_of(
    t: &Target,
    arn: &str,
) -> anyhow::Result<(ExecutionStatus, Option<Deployment>, String)> {
    let d = t.sfn.describe_execution().execution_arn(arn).send().await?;
    let input = d.input().unwrap_or_default().to_owned();
    Ok((d.status().clone(), Deployment::parse(&input).ok(), input))
}

pub async fn start(
    t: &Target,
    text: &str,
    attempt: u32,
    wait: bool,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let deployment = Deployment::parse(text)?;
    // Canonical JSON: the same deployment written differently is still the same input to Step Functions.
    let input = serde_json::to_string(&deployment)?;
    let name = deployment.execution_name(attempt);

    // Another deployment of this alias in flight would be refused by the state machine anyway; say so now.
    let running = t
        .sfn
        .list_executions()
        .state_machine_arn(&t.state_machine_arn)
        .status_filter(ExecutionStatus::Running)
        .send()
        .await?;
    let keys = deployment.lock_keys();
    for e in running.executions().iter().filter(|e| e.name() != name) {
        let (_, Some(other), _) = deployment_of(t, e.execution_arn()).await? else {
            continue;
        };
        if let Some(busy) = other.targets.iter().find(|o| keys.contains(&o.lock_key())) {
            bail!(
                "deployment in progress: {} is moving {} to version {}; watch it with `safeshift watch {}` or \
                 stop it with `safeshift abort {}`",
                e.name(),
                busy.label(),
                busy.target_version,
                e.execution_arn(),
                e.execution_arn()
            );
        }
    }

    let started = t
        .sfn
        .start_execution()
        .state_machine_arn(&t.state_machine_arn)
        .name(&name)
        .input(&input)
        .send()
        .await;
    let arn = match started {
        Ok(out) => out.execution_arn().to_owned(),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_execution_already_exists()) =>
        {
            let arn = Scope::new(t.state_machine_arn.as_str()).execution_arn(&name);
            let (status, _, existing) = deployment_of(t, &arn).await?;
            if existing != input {
                bail!(
                    "{name} already ran with a different input ({}); change the input back, or start a new \
                     attempt with --attempt {}",
                    status.as_str(),
                    attempt + 1
                );
            }
            if status != ExecutionStatus::Running {
                eprintln!(
                    "note: this deployment already ran and ended {}; to run it again, pass --attempt {}",
                    status.as_str(),
                    attempt + 1
                );
            }
            arn
        }
        Err(e) => return Err(e).context("StartExecution"),
    };
    match output {
        Output::Json => println!(
            "{}",
            json!({"executionArn": arn, "consoleUrl": console_url(&arn)})
        ),
        Output::Text => {
            println!("execution: {arn}");
            println!("console:   {}", console_url(&arn));
        }
    }
    if wait {
        watch(t, &arn).await
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

/// Follows an execution to its end. Exit 0 on promotion; 1 on rollback or failure, with the reason.
pub async fn watch(t: &Target, arn: &str) -> anyhow::Result<ExitCode> {
    // On a terminal, a bar fills while each step bakes; elsewhere (pipes, CI) only the lines are printed.
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "  {spinner} baking [{bar:30}] {pos}/{len} s, {msg}",
        )
        .expect("a valid template"),
    );
    let baking: Arc<Mutex<Option<Instant>>> = Arc::default();
    let ticker = {
        let (bar, baking) = (bar.clone(), Arc::clone(&baking));
        tokio::spawn(async move {
            loop {
                if let Some(start) = *baking.lock().expect("not poisoned") {
                    let length = bar.length().unwrap_or(0);
                    let done = start.elapsed().as_secs().min(length);
                    bar.set_position(done);
                    bar.set_message(format!("{} s left", length - done));
                }
                bar.tick();
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let ended = watch::follow(&t.sfn, arn, |line, bake| {
        if bar.is_hidden() {
            println!("{line}");
        } else {
            bar.println(&line);
        }
        if let Some(seconds) = bake {
            bar.set_length(seconds);
            bar.set_position(0);
            *baking.lock().expect("not poisoned") = Some(Instant::now());
        }
    })
    .await;
    ticker.abort();
    bar.finish_and_clear();
    let ended = ended?;
    if ended.status == ExecutionStatus::Succeeded {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "deployment {}: {} {}",
        ended.status.as_str(),
        ended.error.unwrap_or_default(),
        ended.cause.unwrap_or_default()
    );
    Ok(ExitCode::FAILURE)
}

pub async fn status(t: &Target, arn: &str, output: Output) -> anyhow::Result<()> {
    let d = t.sfn.describe_execution().execution_arn(arn).send().await?;
    let progress: Option<Value> = watch::latest_rollout(&t.sfn, arn).await?;
    let running = *d.status() == ExecutionStatus::Running;
    let waiting = if running {
        watch::pending_wait(&t.sfn, arn).await?.map(|(w, _)| w)
    } else {
        None
    };
    // A pause is in force only while the execution waits in Paused.
    let paused = progress
        .as_ref()
        .filter(|_| waiting.as_deref() == Some("Paused"))
        .map(|r| r["paused"].clone())
        .filter(|p| !p.is_null());
    let operations = progress
        .as_ref()
        .map(|r| r["operations"].clone())
        .filter(|o| !o.is_null())
        .unwrap_or_else(|| json!([]));
    let targets: Vec<Value> = progress
        .as_ref()
        .map(|r| watch::aliases(r).into_iter().cloned().collect())
        .unwrap_or_default();
    let release = progress
        .as_ref()
        .and_then(|r| r["deployment"]["release"].as_str().map(str::to_owned));
    let summary = json!({
        "executionArn": arn,
        "status": d.status().as_str(),
        "release": release,
        "targets": targets,
        "error": d.error(),
        "cause": d.cause(),
        "step": progress.as_ref().and_then(|r| r["step"].as_u64()).map(|s| s + 1),
        "stepCount": progress.as_ref().map(|r| r["stepCount"].clone()),
        "percent": progress.as_ref().map(|r| r["percent"].clone()),
        "waitingIn": waiting,
        "paused": paused,
        "operations": operations,
    });
    match output {
        Output::Json => println!("{summary}"),
        Output::Text => {
            println!("{} {}", d.name().unwrap_or_default(), d.status().as_str());
            if let Some(r) = &release {
                println!("release {r}: {} targets", targets.len());
            }
            // One line per alias the deployment moves, all at the same weight.
            for a in &targets {
                println!("  {}", watch::alias_line(a));
            }
            if let Some(r) = &progress {
                println!(
                    "step {}/{} at {}%",
                    r["step"].as_u64().map_or(0, |s| s + 1),
                    r["stepCount"],
                    r["percent"]
                );
            }
            if let Some(p) = &paused {
                let by = operations
                    .as_array()
                    .and_then(|o| o.iter().rev().find(|o| o["action"] == "pause"));
                println!(
                    "PAUSED since {} by {}{}; rolls back at {} unless resumed (`safeshift resume`)",
                    p["since"]
                        .as_u64()
                        .map(safeshift_core::control::clock)
                        .unwrap_or_default(),
                    by.and_then(|o| o["by"]["arn"].as_str())
                        .unwrap_or("an unknown caller"),
                    by.and_then(|o| o["reason"].as_str())
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default(),
                    p["until"]
                        .as_u64()
                        .map(safeshift_core::control::clock)
                        .unwrap_or_default(),
                );
            } else if waiting.as_deref() == Some("Approval") {
                println!("waiting for approval (`safeshift approve` / `safeshift reject`)");
            }
            for o in operations.as_array().into_iter().flatten() {
                println!(
                    "  {} {}{} by {}{}: {} ({})",
                    o["at"]
                        .as_u64()
                        .map(safeshift_core::control::clock)
                        .unwrap_or_default(),
                    o["action"].as_str().unwrap_or("?"),
                    if o["full"] == true { " --full" } else { "" },
                    o["by"]["arn"].as_str().unwrap_or("an unknown caller"),
                    o["reason"]
                        .as_str()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default(),
                    o["outcome"].as_str().unwrap_or("?"),
                    o["note"].as_str().unwrap_or_default(),
                );
            }
            if let Some(e) = d.error() {
                println!("{e}: {}", d.cause().unwrap_or_default());
            }
        }
    }
    Ok(())
}

pub async fn list(t: &Target, output: Output) -> anyhow::Result<()> {
    let page = t
        .sfn
        .list_executions()
        .state_machine_arn(&t.state_machine_arn)
        .max_results(50)
        .send()
        .await?;
    let rows: Vec<Value> = page
        .executions()
        .iter()
        .map(|e| {
            let seconds = e.stop_date().map(|s| s.secs() - e.start_date().secs());
            json!({"name": e.name(), "status": e.status().as_str(), "startedAt": e.start_date().to_string(),
                   "durationSeconds": seconds, "executionArn": e.execution_arn()})
        })
        .collect();
    match output {
        Output::Json => println!("{}", Value::Array(rows)),
        Output::Text => {
            println!(
                "{:<40} {:<10} {:>9}  started",
                "deployment", "outcome", "duration"
            );
            for r in rows {
                let duration = r["durationSeconds"]
                    .as_i64()
                    .map_or("running".to_owned(), |s| format!("{s} s"));
                println!(
                    "{:<40} {:<10} {:>9}  {}",
                    r["name"].as_str().unwrap_or_default(),
                    r["status"].as_str().unwrap_or_default(),
                    duration,
                    r["startedAt"].as_str().unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

/// The execution's status, as DescribeExecution says it now.
pub async fn execution_status(t: &Target, arn: &str) -> anyhow::Result<ExecutionStatus> {
    Ok(t.sfn
        .describe_execution()
        .execution_arn(arn)
        .send()
        .await?
        .status()
        .clone())
}

/// Stops the execution, then reverts the alias right away with the reconciler's own logic (instead of waiting for
/// EventBridge to deliver the status change). An execution that already ended is refused: it holds nothing, and
/// the alias may be a newer deployment's by now.
pub async fn abort(
    t: &Target,
    arn: &str,
    reason: Option<&str>,
    output: Output,
) -> anyhow::Result<()> {
    let status = crate::deploy::execution_status(t, arn).await?;
    if status != ExecutionStatus::Running {
        bail!(
            "execution {arn} already ended {}: there is nothing to abort, and the alias is left as it is",
            status.as_str()
        );
    }
    crate::control::check_reason(reason)?;
    let by = crate::control::identity(t).await;
    let cause = format!(
        "aborted with `safeshift abort` by {}{}",
        by.arn,
        reason.map(|r| format!(": {r}")).unwrap_or_default()
    );
    t.sfn
        .stop_execution()
        .execution_arn(arn)
        .cause(&cause)
        .send()
        .await?;
    let scope = Scope::new(t.state_machine_arn.clone());
    // No wait for late writes here: the reconciler that EventBridge runs for this same stop does that.
    let rollback = Rollback::new(
        LambdaAdapter::new(aws_sdk_lambda::Client::new(&t.config)),
        StepFunctionsAdapter::new(aws_sdk_sfn::Client::new(&t.config)),
        DynamoLockAdapter::new(aws_sdk_dynamodb::Client::new(&t.config), scope.lock_table()),
        scope,
        Duration::ZERO,
    );
    let event = json!({
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "detail": {"executionArn": arn, "stateMachineArn": t.state_machine_arn, "status": "ABORTED"}
    });
    let mut report = match runtime::handle_json(&rollback, event).await {
        Ok(report) => report,
        // The operator policy lets people stop an execution, not write aliases: the engine's reconciler, which
        // EventBridge runs for this same stop, reverts the alias instead.
        Err(e) if e.error_type() == safeshift_core::ErrorType::AccessDenied => {
            println!("stopped {arn}: {cause}");
            println!(
                "the alias is reverted by the engine's reconciler (your credentials may not write it: {e})"
            );
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    match output {
        Output::Json => {
            report["cause"] = json!(cause);
            println!("{report}")
        }
        Output::Text => {
            println!("stopped {arn}: {cause}");
            println!(
                "rollback: {} ({})",
                report["outcome"].as_str().unwrap_or("?"),
                report["reason"].as_str().unwrap_or("")
            );
            let targets = report["targets"].as_array().cloned().unwrap_or_default();
            if targets.len() > 1 {
                for t in &targets {
                    println!("  {}", watch::rolled_back_line(t));
                }
            } else if let Some(a) = report.get("alias").filter(|a| !a.is_null()) {
                println!(
                    "alias now on version {} with weights {}",
                    a["functionVersion"], a["weights"]
                );
            }
        }
    }
    Ok(())
}
