//! The local stack: moto behind the gateway, the rollout state machine created from the same definition and
//! substitutions as `template.yaml`, and the two EventBridge rules of the template, which moto does not emit:
//! executions that ended (to the reconciler) and alarms that went to ALARM (to the watcher).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sfn::types::{ExecutionStatus, StateMachineType};
use safeshift_core::asl::ROLLOUT_DEFINITION;
use serde_json::json;
use tokio::task::JoinHandle;

use safeshift_engine::guard::Scope;

use crate::gateway::{self, Engine, EngineFunction, Gateway};
use crate::moto::{self, MotoError, MotoServer};

/// Names as `sam deploy` gives them in a stack called `safeshift`.
pub const STACK_NAME: &str = "safeshift";
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";
/// How often the reconciler looks for executions that ended without running their Catch.
const RECONCILE_EVERY: Duration = Duration::from_millis(500);
/// How often the alarm watcher reads every alarm's state: an ALARM that lasts longer is never missed.
pub const WATCH_ALARMS_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Moto(#[from] MotoError),
    #[error("the gateway cannot listen on 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("creating the state machine failed: {0}")]
    StateMachine(String),
    #[error("creating the lock table failed: {0}")]
    LockTable(String),
    #[error("the lifecycle events' queue failed: {0}")]
    Events(String),
    #[error("starting execution `{name}` failed: {reason}")]
    StartExecution { name: String, reason: String },
}

pub fn state_machine_name() -> String {
    format!("{STACK_NAME}-rollout")
}

/// The state machine's ARN, known before it exists, as the template knows it for the functions' environment.
pub fn state_machine_arn() -> String {
    format!(
        "arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{}",
        state_machine_name()
    )
}

/// The hook prefix the local stack is deployed with: the template's default `HookFunctionPrefix`.
pub const HOOK_PREFIX: &str = "SafeshiftHook_";

/// What the engine serves here: the local state machine's executions, its lock table, and hooks within the
/// template's default prefix.
pub fn scope() -> Scope {
    Scope::new(state_machine_arn()).with_hook_prefix(HOOK_PREFIX)
}

pub fn function_arn(f: EngineFunction) -> String {
    format!(
        "arn:aws:lambda:{REGION}:{ACCOUNT}:function:{}",
        f.function_name()
    )
}

/// The rollout definition with its `${…}` placeholders filled, as SAM's DefinitionSubstitutions fill them.
pub fn definition() -> String {
    EngineFunction::ALL
        .into_iter()
        .fold(ROLLOUT_DEFINITION.to_owned(), |text, f| {
            text.replace(&format!("${{{}}}", f.placeholder()), &function_arn(f))
        })
}

/// AWS configuration for any client of the local stack.
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sfn::config::Credentials::new(
            "local",
            "local",
            None,
            None,
            "safeshift-local",
        ))
        .retry_config(safeshift_engine::aws::retry_config())
        .load()
        .await
}

/// A running local stack. Dropping it stops moto and the gateway.
pub struct LocalStack {
    moto: MotoServer,
    tasks: Vec<JoinHandle<()>>,
    pub port: u16,
    pub moto_port: u16,
    pub state_machine_arn: String,
    pub config: aws_config::SdkConfig,
}

impl LocalStack {
    /// Starts a deployment named `name` on the local state machine; returns its execution ARN.
    pub async fn start_execution(
        &self,
        name: &str,
        input: &serde_json::Value,
    ) -> Result<String, LocalError> {
        let out = aws_sdk_sfn::Client::new(&self.config)
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(name)
            .input(input.to_string())
            .send()
            .await
            .map_err(|e| LocalError::StartExecution {
                name: name.to_owned(),
                reason: aws_sdk_sfn::error::DisplayErrorContext(&e).to_string(),
            })?;
        Ok(out.execution_arn().to_owned())
    }

    /// Starts moto (installing it into `venv` if needed) and the gateway on `port` (0 picks a free one), and
    /// creates the state machine.
    pub async fn start(
        port: u16,
        venv: &Path,
        moto_log: Option<&Path>,
    ) -> Result<Self, LocalError> {
        let listener = gateway::bind(port)
            .await
            .map_err(|source| LocalError::Bind { port, source })?;
        let port = listener
            .local_addr()
            .map_err(|source| LocalError::Bind { port, source })?
            .port();
        let (venv, log) = (venv.to_owned(), moto_log.map(Path::to_owned));
        let moto = tokio::task::spawn_blocking(move || {
            MotoServer::start(&venv, Some(port), log.as_deref())
        })
        .await
        .expect("the moto starter does not panic")?;
        let moto_port = moto.port;

        let endpoint = format!("http://127.0.0.1:{port}");
        let config = sdk_config(&endpoint).await;
        let engine = Arc::new(Engine::new(&config, &scope()));
        let mut stack = Self {
            moto,
            tasks: vec![tokio::spawn(
                Arc::new(Gateway::new(Arc::clone(&engine), moto_port)).serve(listener),
            )],
            port,
            moto_port,
            state_machine_arn: String::new(),
            config,
        };
        moto::create_role(moto_port, "safeshift-rollout")?;
        create_lock_table(&stack.config).await?;
        subscribe_to_events(&stack.config).await?;
        let sfn = aws_sdk_sfn::Client::new(&stack.config);
        let created = sfn
            .create_state_machine()
            .name(state_machine_name())
            .definition(definition())
            .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/safeshift-rollout"))
            .r#type(StateMachineType::Standard)
            .send()
            .await
            .map_err(|e| {
                LocalError::StateMachine(aws_sdk_sfn::error::DisplayErrorContext(e).to_string())
            })?;
        stack.state_machine_arn = created.state_machine_arn().to_owned();
        stack.tasks.push(tokio::spawn(reconcile(
            Arc::clone(&engine),
            sfn,
            stack.state_machine_arn.clone(),
        )));
        stack.tasks.push(tokio::spawn(watch_alarms(
            engine,
            aws_sdk_cloudwatch::Client::new(&stack.config),
        )));
        Ok(stack)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn moto_pid(&self) -> u32 {
        self.moto.pid()
    }

    /// The lifecycle events published since the last call, as a subscriber's queue receives them: EventBridge's
    /// envelope (`source`, `detail-type`, `detail`, …), oldest first.
    pub async fn events(&self) -> Result<Vec<serde_json::Value>, LocalError> {
        received_events(&self.config).await
    }
}

/// The queue the local stack subscribes to every `safeshift` event, as a user's own subscriber would.
pub const EVENTS_QUEUE: &str = "safeshift-events";

/// What a subscriber does in AWS: a rule on the default bus matching `source: safeshift`, into a queue.
pub async fn subscribe_to_events(config: &aws_config::SdkConfig) -> Result<(), LocalError> {
    let fail = |e: String| LocalError::Events(e);
    aws_sdk_sqs::Client::new(config)
        .create_queue()
        .queue_name(EVENTS_QUEUE)
        .send()
        .await
        .map_err(|e| fail(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
    let events = aws_sdk_eventbridge::Client::new(config);
    events
        .put_rule()
        .name(EVENTS_QUEUE)
        .event_pattern(serde_json::json!({"source": [safeshift_core::events::SOURCE]}).to_string())
        .send()
        .await
        .map_err(|e| fail(aws_sdk_eventbridge::error::DisplayErrorContext(e).to_string()))?;
    events
        .put_targets()
        .rule(EVENTS_QUEUE)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{EVENTS_QUEUE}"))
                .build()
                .map_err(|e| fail(e.to_string()))?,
        )
        .send()
        .await
        .map_err(|e| fail(aws_sdk_eventbridge::error::DisplayErrorContext(e).to_string()))?;
    Ok(())
}

/// Drains the events queue.
pub async fn received_events(
    config: &aws_config::SdkConfig,
) -> Result<Vec<serde_json::Value>, LocalError> {
    let fail = |e: String| LocalError::Events(e);
    let sqs = aws_sdk_sqs::Client::new(config);
    let url = sqs
        .get_queue_url()
        .queue_name(EVENTS_QUEUE)
        .send()
        .await
        .map_err(|e| fail(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    let mut events = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .send()
            .await
            .map_err(|e| fail(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
        if out.messages().is_empty() {
            break;
        }
        for m in out.messages() {
            if let Some(body) = m.body() {
                events.push(serde_json::from_str(body).unwrap_or(serde_json::Value::Null));
            }
            if let Some(handle) = m.receipt_handle() {
                sqs.delete_message()
                    .queue_url(&url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(|e| fail(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
            }
        }
    }
    Ok(events)
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        // moto stops when its MotoServer field drops, right after this.
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The per-alias lock table, as template.yaml declares it: one string key, `aliasKey`.
pub async fn create_lock_table(config: &aws_config::SdkConfig) -> Result<(), LocalError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let fail = |e: String| LocalError::LockTable(e);
    aws_sdk_dynamodb::Client::new(config)
        .create_table()
        .table_name(scope().lock_table())
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("aliasKey")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| fail(e.to_string()))?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("aliasKey")
                .key_type(KeyType::Hash)
                .build()
                .map_err(|e| fail(e.to_string()))?,
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .map_err(|e| fail(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string()))?;
    Ok(())
}

/// What EventBridge does in AWS for the template's two rules on "Step Functions Execution Status Change": hand
/// every execution of this state machine that ended ABORTED, TIMED_OUT or FAILED to the rollback function, and
/// every one that ended at all to the cloudformation function (which answers a stack waiting for it), once each.
async fn reconcile(engine: Arc<Engine>, sfn: aws_sdk_sfn::Client, state_machine_arn: String) {
    let mut seen = HashSet::new();
    loop {
        tokio::time::sleep(RECONCILE_EVERY).await;
        // One listing of every execution (all pages), rather than one per status: light on a busy moto.
        let mut listed = Vec::new();
        let mut pages = sfn
            .list_executions()
            .state_machine_arn(&state_machine_arn)
            .into_paginator()
            .send();
        while let Some(Ok(page)) = pages.next().await {
            listed.extend(page.executions().iter().cloned());
        }
        {
            for e in &listed {
                let status = e.status().clone();
                let ended = matches!(
                    status,
                    ExecutionStatus::Succeeded
                        | ExecutionStatus::Failed
                        | ExecutionStatus::Aborted
                        | ExecutionStatus::TimedOut
                );
                if !ended || !seen.insert(e.execution_arn().to_owned()) {
                    continue;
                }
                let event = json!({
                    "version": "0",
                    "source": "aws.states",
                    "detail-type": "Step Functions Execution Status Change",
                    "account": ACCOUNT,
                    "region": REGION,
                    "resources": [e.execution_arn()],
                    "detail": {
                        "executionArn": e.execution_arn(),
                        "stateMachineArn": state_machine_arn,
                        "name": e.name(),
                        "status": status.as_str(),
                    }
                });
                // Its own delivery, as EventBridge delivers each rule's target on its own.
                tokio::spawn({
                    let (engine, event) = (Arc::clone(&engine), event.clone());
                    let execution = e.execution_arn().to_owned();
                    async move {
                        if let Err((error_type, message)) =
                            engine.invoke(EngineFunction::CloudFormation, event).await
                        {
                            tracing::error!(
                                execution,
                                error_type,
                                message,
                                "answering CloudFormation failed"
                            );
                        }
                    }
                });
                if status == ExecutionStatus::Succeeded {
                    continue;
                }
                match engine.invoke(EngineFunction::Rollback, event).await {
                    Ok(report) => {
                        tracing::info!(execution = e.execution_arn(), %report, "reconciled")
                    }
                    Err((error_type, message)) => {
                        // Seen stays set, as EventBridge would stop after its retries; the DLQ's local twin is the log.
                        tracing::error!(
                            execution = e.execution_arn(),
                            error_type,
                            message,
                            "reconcile failed"
                        );
                    }
                }
            }
        }
    }
}

/// One alarm's state as the watcher last read it: its value and when it last changed.
type AlarmSeen = (String, Option<aws_sdk_cloudwatch::primitives::DateTime>);

/// What EventBridge does in AWS for the template's `AlarmChanged` rule: hand every alarm that goes to ALARM to
/// the watcher, as a "CloudWatch Alarm State Change" event. moto emits no such event, so this reads every alarm
/// each [`WATCH_ALARMS_EVERY`] and reports the ones whose state changed to ALARM (a new state-change time counts:
/// ALARM, OK, ALARM between two reads is a new ALARM). An alarm created in ALARM is reported too.
async fn watch_alarms(engine: Arc<Engine>, cloudwatch: aws_sdk_cloudwatch::Client) {
    use aws_sdk_cloudwatch::primitives::DateTimeFormat;
    let mut seen: HashMap<String, AlarmSeen> = HashMap::new();
    loop {
        tokio::time::sleep(WATCH_ALARMS_EVERY).await;
        let mut alarms = Vec::new();
        let mut next_token = None;
        loop {
            let Ok(page) = cloudwatch
                .describe_alarms()
                .alarm_types(aws_sdk_cloudwatch::types::AlarmType::MetricAlarm)
                .alarm_types(aws_sdk_cloudwatch::types::AlarmType::CompositeAlarm)
                .set_next_token(next_token)
                .send()
                .await
            else {
                break;
            };
            macro_rules! read {
                ($a:expr) => {
                    (
                        $a.alarm_name().unwrap_or_default().to_owned(),
                        $a.alarm_arn().unwrap_or_default().to_owned(),
                        $a.state_value()
                            .map(|v| v.as_str().to_owned())
                            .unwrap_or_default(),
                        $a.state_reason().unwrap_or_default().to_owned(),
                        $a.state_updated_timestamp().copied(),
                    )
                };
            }
            alarms.extend(page.metric_alarms().iter().map(|a| read!(a)));
            alarms.extend(page.composite_alarms().iter().map(|a| read!(a)));
            match page.next_token() {
                Some(t) if !t.is_empty() => next_token = Some(t.to_owned()),
                _ => break,
            }
        }
        for (name, arn, state, reason, updated) in alarms {
            let now: AlarmSeen = (state.clone(), updated);
            let previous = seen.insert(name.clone(), now.clone());
            if state != "ALARM" || previous.as_ref() == Some(&now) {
                continue;
            }
            let timestamp = updated.and_then(|t| t.fmt(DateTimeFormat::DateTime).ok());
            let event = json!({
                "version": "0",
                "source": "aws.cloudwatch",
                "detail-type": "CloudWatch Alarm State Change",
                "account": ACCOUNT,
                "region": REGION,
                "resources": [arn],
                "detail": {
                    "alarmName": name,
                    "state": {"value": state, "reason": reason, "timestamp": timestamp},
                    "previousState": {"value": previous.map(|p| p.0)},
                }
            });
            let engine = Arc::clone(&engine);
            // Handed over on its own task, as EventBridge delivers each event on its own: a slow delivery does not
            // hold back the next read.
            tokio::spawn(async move {
                match engine.invoke(EngineFunction::WatchGates, event).await {
                    Ok(report) => tracing::info!(alarm = %name, %report, "alarm delivered"),
                    Err((error_type, message)) => {
                        tracing::error!(alarm = %name, error_type, message, "alarm delivery failed")
                    }
                }
            });
        }
    }
}
