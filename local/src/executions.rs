//! Reading Step Functions executions, as the CLI, the end-to-end tests and the benchmark all need to: the whole
//! history, and waiting for an execution to end. Works on any Step Functions endpoint, local or not.

use std::time::{Duration, Instant};

use aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput;
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent};

#[derive(Debug, thiserror::Error)]
pub enum ExecutionError {
    #[error(transparent)]
    StepFunctions(#[from] aws_sdk_sfn::Error),
    #[error("{arn} still running after {after:?}")]
    StillRunning { arn: String, after: Duration },
    #[error("{arn} did not enter {state} within {after:?}")]
    NeverEntered {
        arn: String,
        state: String,
        after: Duration,
    },
}

/// The execution's whole history, oldest first, across every page.
pub async fn history(
    sfn: &aws_sdk_sfn::Client,
    arn: &str,
) -> Result<Vec<HistoryEvent>, ExecutionError> {
    let mut events = Vec::new();
    let mut next_token = None;
    loop {
        let page = sfn
            .get_execution_history()
            .execution_arn(arn)
            .max_results(1000)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(aws_sdk_sfn::Error::from)?;
        events.extend(page.events().iter().cloned());
        match page.next_token() {
            Some(t) if !t.is_empty() => next_token = Some(t.to_owned()),
            _ => return Ok(events),
        }
    }
}

/// Polls until the execution is no longer RUNNING (or `timeout` passes); returns its final description.
pub async fn wait_for_end(
    sfn: &aws_sdk_sfn::Client,
    arn: &str,
    timeout: Duration,
) -> Result<DescribeExecutionOutput, ExecutionError> {
    let deadline = Instant::now() + timeout;
    loop {
        let d = sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .map_err(aws_sdk_sfn::Error::from)?;
        if *d.status() != ExecutionStatus::Running {
            return Ok(d);
        }
        if Instant::now() > deadline {
            return Err(ExecutionError::StillRunning {
                arn: arn.to_owned(),
                after: timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The names of the states a history shows entered, in order.
pub fn states_entered(events: &[HistoryEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(HistoryEvent::state_entered_event_details)
        .map(|d| d.name().to_owned())
        .collect()
}

/// Polls until the execution has entered `state` (or `timeout` passes).
pub async fn wait_for_state(
    sfn: &aws_sdk_sfn::Client,
    arn: &str,
    state: &str,
    timeout: Duration,
) -> Result<(), ExecutionError> {
    let deadline = Instant::now() + timeout;
    while !states_entered(&history(sfn, arn).await?)
        .iter()
        .any(|s| s == state)
    {
        if Instant::now() > deadline {
            return Err(ExecutionError::NeverEntered {
                arn: arn.to_owned(),
                state: state.to_owned(),
                after: timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
