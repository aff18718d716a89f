//! Step Functions: what the engine reads of an execution — is it running, whose is it, what did it record.

use safeshift_core::Error;
use safeshift_core::error::Resource;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::classify;
use crate::ports::{ExecutionRecord, ReadExecution, ReportTask, StartExecution};

#[derive(Debug, Clone)]
pub struct StepFunctionsAdapter {
    client: aws_sdk_sfn::Client,
}

impl StepFunctionsAdapter {
    pub fn new(client: aws_sdk_sfn::Client) -> Self {
        Self { client }
    }
}

/// How far back the reconciler looks for the rollout state: a rollout's history is bounded (see the state
/// machine's worst case), and the newest task outputs come first.
const HISTORY_PAGES: usize = 20;

impl ReadExecution for StepFunctionsAdapter {
    async fn describe_execution(&self, arn: &str) -> Result<ExecutionRecord, Error> {
        let out = self
            .client
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .map_err(|e| {
                classify("DescribeExecution", e, |e| {
                    e.is_execution_does_not_exist()
                        .then(|| Error::ResourceNotFound {
                            resource: Resource::Execution,
                            name: arn.to_owned(),
                        })
                })
            })?;
        Ok(ExecutionRecord {
            name: out.name().unwrap_or_default().to_owned(),
            state_machine_arn: out.state_machine_arn().to_owned(),
            status: out.status().as_str().to_owned(),
            input: out.input().map(str::to_owned),
            stopped_at: out.stop_date().and_then(|d| u64::try_from(d.secs()).ok()),
            error: out.error().map(str::to_owned),
            cause: out.cause().map(str::to_owned),
        })
    }

    async fn task_outputs(&self, arn: &str) -> Result<Vec<String>, Error> {
        let mut outputs = Vec::new();
        let mut next_token = None;
        for _ in 0..HISTORY_PAGES {
            let out = self
                .client
                .get_execution_history()
                .execution_arn(arn)
                .reverse_order(true)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| classify("GetExecutionHistory", e, |_| None))?;
            for event in out.events() {
                // A wait's success carries what whoever answered its token sent (an operator's control): never a
                // rollout the engine wrote, so never one a rollback may trust.
                let output = event
                    .task_succeeded_event_details()
                    .filter(|d| !d.resource().ends_with(".waitForTaskToken"))
                    .and_then(|d| d.output())
                    .or_else(|| {
                        event
                            .lambda_function_succeeded_event_details()
                            .and_then(|d| d.output())
                    });
                if let Some(o) = output {
                    outputs.push(o.to_owned());
                }
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => next_token = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(outputs)
    }
}

impl StartExecution for StepFunctionsAdapter {
    async fn start_execution(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &str,
    ) -> Result<String, Error> {
        let out = self
            .client
            .start_execution()
            .state_machine_arn(state_machine_arn)
            .name(name)
            .input(input)
            .send()
            .await
            .map_err(|e| {
                classify("StartExecution", e, |e| {
                    e.is_state_machine_does_not_exist()
                        .then(|| Error::ResourceNotFound {
                            resource: Resource::Execution,
                            name: state_machine_arn.to_owned(),
                        })
                })
            })?;
        Ok(out.execution_arn().to_owned())
    }
}

/// SendTaskFailure's `cause` is at most 32,768 characters.
const MAX_CAUSE_BYTES: usize = 32_768;

impl ReportTask for StepFunctionsAdapter {
    async fn fail_task(&self, task_token: &str, error: &str, cause: &str) -> Result<bool, Error> {
        let cause = safeshift_core::gates::bounds::cut(cause, MAX_CAUSE_BYTES);
        let sent = self
            .client
            .send_task_failure()
            .task_token(task_token)
            .error(error)
            .cause(cause)
            .send()
            .await;
        answered("SendTaskFailure", sent, |e| {
            e.is_task_timed_out() || e.is_task_does_not_exist() || e.is_invalid_token()
        })
    }

    async fn succeed_task(&self, task_token: &str, output: &str) -> Result<bool, Error> {
        let sent = self
            .client
            .send_task_success()
            .task_token(task_token)
            .output(output)
            .send()
            .await;
        answered("SendTaskSuccess", sent, |e| {
            e.is_task_timed_out() || e.is_task_does_not_exist() || e.is_invalid_token()
        })
    }
}

/// An answer to a wait's task token: `false` when the wait had already ended (its time ran out, or another
/// answer came first — `ended` says which service errors mean that): nothing waits any more.
fn answered<T, E>(
    operation: &str,
    sent: Result<T, SdkError<E, HttpResponse>>,
    ended: impl Fn(&E) -> bool,
) -> Result<bool, Error>
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    match sent {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(&ended) => Ok(false),
        Err(e) => Err(classify(operation, e, |_| None)),
    }
}
