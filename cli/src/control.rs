//! Steering a rollout in flight: pause, resume, promote, approve, reject, each recorded with who did it and why.
//!
//! Every wait of the state machine is a task waiting for its token (`Bake`, `ExtendBake`, `Paused`, `Approval`),
//! and the token is in the execution's history. A control is that wait's `SendTaskSuccess` with
//! `{"action", "full", "reason", "by", "id"}`; the state machine's `Steer` records it and says what it did, which
//! is read back here by `id`. A script does the same with `aws stepfunctions send-task-success`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_sfn::types::ExecutionStatus;
use safeshift_core::control::{Action, Identity};
use safeshift_local::executions::history;
use serde_json::{Value, json};

use crate::Output;
use crate::deploy::Target;
use crate::watch;

/// How long a control waits for the rollout to reach a wait (it is between two for a moment after each shift and
/// check), and then for Steer to record it.
const SETTLE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(250);

/// The caller, as STS sees the credentials this CLI uses. Step Functions does not pass the caller to the task, so
/// the record holds what the CLI says; CloudTrail's record of the same `SendTaskSuccess` is authoritative.
pub async fn identity(t: &Target) -> Identity {
    match aws_sdk_sts::Client::new(&t.config)
        .get_caller_identity()
        .send()
        .await
    {
        Ok(id) => Identity {
            arn: id.arn().unwrap_or("unknown").to_owned(),
            account: id.account().map(str::to_owned),
            user_id: id.user_id().map(str::to_owned),
        },
        Err(e) => {
            eprintln!(
                "warning: cannot tell who you are (sts:GetCallerIdentity: {}); recording the action as by an unknown caller",
                aws_sdk_sts::error::DisplayErrorContext(&e)
            );
            Identity {
                arn: "unknown".into(),
                account: None,
                user_id: None,
            }
        }
    }
}

/// Why `action` does not fit the wait the rollout is in, if it does not: said before anything is sent.
fn misfit(action: Action, wait: &str) -> Option<&'static str> {
    match (action, wait) {
        (Action::Pause, "Paused") => Some("is paused already; `safeshift resume` goes on"),
        (Action::Pause, "Approval") => Some(
            "is waiting for approval, which holds its weight already; `safeshift approve` or `reject` answer it",
        ),
        (Action::Resume, w) if w != "Paused" => Some("is not paused"),
        (Action::Approve, w) if w != "Approval" => Some("is not waiting for an approval"),
        _ => None,
    }
}

/// Sends `action` to the wait the execution is in (waiting up to [`SETTLE`] for it to reach one) and reports what
/// the rollout made of it. An action that does not fit the wait is refused here, before anything is sent.
pub async fn act(
    t: &Target,
    arn: &str,
    action: Action,
    full: bool,
    reason: Option<&str>,
    output: Output,
) -> anyhow::Result<()> {
    check_reason(reason)?;
    let by = identity(t).await;
    let id = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    if !steers(t, arn).await? {
        return legacy(t, arn, action).await;
    }
    let deadline = Instant::now() + SETTLE;
    // The step the operator's control is for: the one the rollout is at when its wait is first found.
    let mut seen: Option<Option<u64>> = None;
    loop {
        let status = crate::deploy::execution_status(t, arn).await?;
        if status != ExecutionStatus::Running {
            bail!(
                "{arn} already ended {}: there is nothing to {}",
                status.as_str(),
                action.as_str()
            );
        }
        let Some(watch::Waiting {
            state: wait,
            token,
            step,
            operations,
        }) = watch::current_wait(&t.sfn, arn).await?
        else {
            if Instant::now() > deadline {
                bail!(
                    "{arn} did not reach a wait (a bake, a pause or an approval) within {} s; `safeshift status {arn}` says where it is",
                    SETTLE.as_secs()
                );
            }
            tokio::time::sleep(POLL).await;
            continue;
        };
        if let Some(why) = misfit(action, &wait) {
            bail!("{arn} {why}");
        }
        // Past the recorded controls' cap only a way out of a pause or the gate goes through: say so here rather
        // than send one the rollout would refuse (and count against it).
        let way_out = matches!(
            (action, wait.as_str()),
            (Action::Resume | Action::Promote, "Paused")
                | (Action::Approve | Action::Promote, "Approval")
        );
        if operations >= safeshift_core::control::MAX_OPERATIONS && !way_out {
            bail!(
                "{arn} has recorded {operations} controls, the most a deployment keeps; only resume, approve or promote out of a pause or an approval gate still go through"
            );
        }
        match seen {
            None => seen = Some(step),
            // The wait ended while answering it, and the rollout took its next step meanwhile: that is not the
            // step this control was meant for.
            Some(first) if first != step => bail!(
                "{arn} moved on to step {} while the {} was sent; nothing was changed — run it again if you still mean it",
                step.unwrap_or(0),
                action.as_str()
            ),
            Some(_) => {}
        }
        let control = json!({"action": action, "full": full, "reason": reason, "by": by, "id": id, "step": step});
        match t
            .sfn
            .send_task_success()
            .task_token(&token)
            .output(control.to_string())
            .send()
            .await
        {
            Ok(_) => break,
            // The wait ended between reading its token and answering it: act on the next one.
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_task_timed_out() || s.is_task_does_not_exist() || s.is_invalid_token()
                }) && Instant::now() < deadline =>
            {
                tokio::time::sleep(POLL).await;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("sending `{}` to {arn}", action.as_str()));
            }
        }
    }
    let steered = recorded(t, arn, &id).await?;
    match output {
        Output::Json => println!("{steered}"),
        Output::Text => {
            let outcome = steered["steered"]["outcome"].as_str().unwrap_or("?");
            println!(
                "{} by {}{}: {} — {}",
                action.as_str(),
                by.arn,
                reason.map(|r| format!(" ({r})")).unwrap_or_default(),
                outcome,
                steered["steered"]["note"].as_str().unwrap_or_default()
            );
        }
    }
    if steered["steered"]["outcome"] == "refused" {
        bail!(
            "the rollout refused it: {}",
            steered["steered"]["note"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

/// A reason travels in the execution's state (at most 256 KB in all): a pasted log is refused here, not cut there.
pub fn check_reason(reason: Option<&str>) -> anyhow::Result<()> {
    let max = safeshift_core::control::MAX_REASON_BYTES;
    match reason {
        Some(r) if r.len() > max => bail!(
            "--reason is {} bytes; at most {max}: say why in a sentence",
            r.len()
        ),
        _ => Ok(()),
    }
}

/// Whether the execution runs a definition with operator controls (`Steer`). One started before the upgrade runs
/// the definition it started with, where a bake's task ending with success goes straight on to the gates: a pause
/// sent there would end the bake instead.
async fn steers(t: &Target, arn: &str) -> anyhow::Result<bool> {
    match t
        .sfn
        .describe_state_machine_for_execution()
        .execution_arn(arn)
        .send()
        .await
    {
        Ok(d) => match serde_json::from_str::<Value>(d.definition()) {
            Ok(definition) => Ok(definition["States"].get("Steer").is_some()),
            Err(_) => Ok(true),
        },
        // Policies written before controls may not grant it: assume the current definition, and say so.
        Err(e) => {
            eprintln!(
                "warning: cannot read the definition {arn} runs ({}); assuming it has operator controls",
                aws_sdk_sfn::error::DisplayErrorContext(&e)
            );
            Ok(true)
        }
    }
}

/// An execution that started before controls existed: only its approval gate can be answered, the old way.
async fn legacy(t: &Target, arn: &str, action: Action) -> anyhow::Result<()> {
    let waiting = watch::pending_wait(&t.sfn, arn).await?;
    match (action, waiting) {
        (Action::Approve, Some((wait, token))) if wait == "Approval" => {
            t.sfn
                .send_task_success()
                .task_token(&token)
                .output(json!({"approved": true}).to_string())
                .send()
                .await?;
            println!(
                "approved (this execution started before operator controls existed: its history does not record who)"
            );
            Ok(())
        }
        (Action::Approve, _) => bail!("{arn} is not waiting for an approval"),
        _ => bail!(
            "{arn} started before operator controls existed and runs that state machine definition: `{}` would end its bake instead; only approve, reject and abort work on it",
            action.as_str()
        ),
    }
}

/// Steer's output for the control `id`, once the execution recorded it.
async fn recorded(t: &Target, arn: &str, id: &str) -> anyhow::Result<Value> {
    let deadline = Instant::now() + SETTLE;
    loop {
        // Status first, history second: a record written before the end is read before giving up on it.
        let status = crate::deploy::execution_status(t, arn).await?;
        for event in history(&t.sfn, arn).await?.iter().rev() {
            let Some(d) = event
                .state_exited_event_details()
                .filter(|d| d.name() == "Steer")
            else {
                continue;
            };
            let output: Value =
                serde_json::from_str(d.output().unwrap_or("{}")).unwrap_or_default();
            if output["steered"]["id"] == id {
                return Ok(output);
            }
        }
        // An alarm may have ended the wait at the same moment: the rollout then rolled back without the control.
        if status != ExecutionStatus::Running {
            bail!(
                "{arn} already ended {} before acting on it; `safeshift status {arn}` says why",
                status.as_str()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "sent, but {arn} has not recorded it within {} s; `safeshift status {arn}` shows its controls",
                SETTLE.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Refuses the deployment at its approval gate: it rolls back with `ApprovalRejected`, the cause naming who and why.
pub async fn reject(t: &Target, arn: &str, reason: &str) -> anyhow::Result<()> {
    check_reason(Some(reason))?;
    let Some((wait, token)) = watch::pending_wait(&t.sfn, arn).await? else {
        bail!("{arn} is not waiting for an approval; `safeshift status {arn}` says where it is");
    };
    if wait != "Approval" {
        bail!("{arn} is not waiting for an approval (it is in {wait}); `safeshift abort` stops it");
    }
    let by = identity(t).await;
    t.sfn
        .send_task_failure()
        .task_token(&token)
        .error(safeshift_core::ErrorType::ApprovalRejected.as_str())
        .cause(format!("rejected by {}: {reason}", by.arn))
        .send()
        .await?;
    println!("rejected by {} ({reason}): the rollout rolls back", by.arn);
    Ok(())
}
