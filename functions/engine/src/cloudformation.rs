//! The `cloudformation` function: SAM's DeploymentPreference, done by safeshift. It serves three events:
//! - the `Safeshift` macro (`core::transform`): SAM's CodeDeploy resources become a `Custom::SafeshiftAlias`;
//! - that custom resource's requests: Create makes the alias at the stack's first version (or adopts an existing
//!   one without changing it), Update to a new version starts a rollout and answers CloudFormation when it ends
//!   (or at once when the alias is there already, as on the update a stack rollback sends back), Delete removes the
//!   alias only if this resource created it;
//! - "Step Functions Execution Status Change" of the rollout state machine: the answer owed for a rollout that
//!   ended, held in the engine's table until then (never read from an execution's input, which anyone who may
//!   start executions writes);
//! - a "Scheduled Event" (the `Sweep` rule, every few minutes): the answers still held for rollouts that ended,
//!   sent — the second path, for an end event lost after all its retries.
//!
//! A request is always answered: every failure before a rollout starts is a FAILED answer naming why, so
//! CloudFormation never waits out its hour for nothing.

use safeshift_core::Error;
use safeshift_core::alias::AliasUpdate;
use safeshift_core::custom_resource::{self, AliasProperties, UpdatePlan};
use safeshift_core::transform;
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::Span;

use crate::guard::{self, HolderState, Scope};
use crate::ports::{
    AliasLock, AnswerStack, ExecutionRecord, ManageAlias, OwnedAlias, PendingAnswer,
    PendingAnswers, ReadExecution, StartExecution, WriteAlias,
};
use crate::rollback::StatusChange;
use crate::runtime::Handler;

/// How long an owed answer is kept: CloudFormation stops waiting after an hour; a detached rollout owes none.
const ANSWER_KEPT_SECONDS: u64 = 2 * 3600;
/// CloudFormation takes a response document of at most 4,096 bytes.
const MAX_RESPONSE_BYTES: usize = 4096;
/// How many ended rollouts one sweep answers for: a few calls each, well within the function's timeout.
const SWEEP_LIMIT: usize = 10;
/// How long after an answer is held the sweep may take a missing execution for one that never started: longer
/// than an update's StartExecution with all its retries.
const START_GRACE_SECONDS: u64 = 600;

/// What the function is invoked with.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum CloudFormationEvent {
    Resource(ResourceRequest),
    Macro(MacroRequest),
    Ended(StatusChange),
    Sweep(Scheduled),
}

/// EventBridge's scheduled event, as far as the sweep reads it.
#[derive(Debug, Deserialize)]
pub struct Scheduled {
    #[serde(rename = "detail-type")]
    pub detail_type: String,
}

/// A macro invocation, as CloudFormation sends it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MacroRequest {
    pub request_id: String,
    pub fragment: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RequestType {
    Create,
    Update,
    Delete,
}

/// A custom resource request, as CloudFormation sends it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourceRequest {
    pub request_type: RequestType,
    #[serde(rename = "ResponseURL")]
    pub response_url: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    #[serde(default)]
    pub physical_resource_id: Option<String>,
    #[serde(default)]
    pub resource_type: Option<String>,
    #[serde(default)]
    pub resource_properties: Value,
    #[serde(default)]
    pub old_resource_properties: Option<Value>,
}

/// What a request comes to.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// Answered now: SUCCESS with the alias's ARN and its version.
    Done { arn: String, version: String },
    /// A rollout started; the answer waits for its end (or, detached, is SUCCESS now).
    Started {
        execution_arn: String,
        detached: bool,
    },
}

pub struct CloudFormation<L, X, P, A> {
    lambda: L,
    executions: X,
    answers: P,
    stack: A,
    scope: Scope,
}

/// Who else moves the alias at the moment of an update.
enum Busy {
    /// A running execution holds its lock.
    Rollout(String),
    /// An execution that ended (stopped, timed out) still holds it: the reconciler is putting the alias back on
    /// `stable`, and will move it nowhere else.
    Reconciling { execution: String, stable: String },
    /// Split with no deployment holding it: someone else's weights.
    Split(String),
}

impl<L, X, P, A> CloudFormation<L, X, P, A>
where
    L: ManageAlias + WriteAlias,
    X: StartExecution + ReadExecution,
    P: PendingAnswers + AliasLock,
    A: AnswerStack,
{
    pub fn new(lambda: L, executions: X, answers: P, stack: A, scope: Scope) -> Self {
        Self {
            lambda,
            executions,
            answers,
            stack,
            scope,
        }
    }

    fn transform(&self, request: MacroRequest) -> Value {
        match transform::transform(request.fragment, &self.scope.provider_function()) {
            Ok(fragment) => {
                json!({"requestId": request.request_id, "status": "success", "fragment": fragment})
            }
            Err(e) => {
                tracing::warn!(error = %e, "transform refused");
                json!({"requestId": request.request_id, "status": "failure", "errorMessage": e.to_string()})
            }
        }
    }

    async fn resource(&self, request: ResourceRequest) -> Result<Value, Error> {
        // Nobody to answer: refused before anything is written (a request CloudFormation did not send).
        self.stack
            .check_url(&request.response_url)
            .map_err(|reason| safeshift_core::InvalidInput::one("ResponseURL", reason))?;
        let outcome = match request.request_type {
            RequestType::Create => self.create(&request).await,
            RequestType::Update => self.update(&request).await,
            RequestType::Delete => self.delete(&request).await,
        };
        let physical = |fallback: &str| {
            request
                .physical_resource_id
                .clone()
                .unwrap_or_else(|| fallback.to_owned())
        };
        let (status, reason, physical_id, data) = match &outcome {
            Ok(Outcome::Done { arn, version }) => (
                "SUCCESS",
                String::new(),
                arn.clone(),
                json!({"FunctionVersion": version, "ExecutionArn": ""}),
            ),
            Ok(Outcome::Started {
                detached: false, ..
            }) => {
                tracing::info!("rollout started; CloudFormation is answered when it ends");
                return Ok(json!({"answered": false}));
            }
            Ok(Outcome::Started {
                execution_arn,
                detached: true,
            }) => (
                "SUCCESS",
                format!("rollout {execution_arn} started (detached: it goes on after this answer)"),
                physical(""),
                json!({
                    "FunctionVersion": request.resource_properties["FunctionVersion"],
                    "ExecutionArn": execution_arn,
                }),
            ),
            Err(reason) => (
                "FAILED",
                reason.clone(),
                physical(&format!("failed-{}", request.logical_resource_id)),
                json!({"FunctionVersion": "", "ExecutionArn": ""}),
            ),
        };
        let answered = self
            .stack
            .send_answer(
                &request.response_url,
                &response(
                    status,
                    &reason,
                    &physical_id,
                    &request.stack_id,
                    &request.request_id,
                    &request.logical_resource_id,
                    data,
                ),
            )
            .await?;
        Ok(json!({"answered": answered, "status": status, "reason": reason}))
    }

    /// Who else moves the alias now, if anyone: a deployment holding its lock, or weights nobody holds.
    async fn busy(
        &self,
        properties: &AliasProperties,
        found: &OwnedAlias,
    ) -> Result<Option<Busy>, String> {
        let key = properties.lock_key().map_err(|e| e.to_string())?;
        let held = self.answers.holder(&key).await.map_err(|e| e.to_string())?;
        // A lapsed lock is free, as Prepare takes it.
        if let Some((holder, _)) = held.filter(|(_, expires)| *expires > crate::unix_now()) {
            let state =
                guard::holder_state(&self.executions, &holder.execution_arn, crate::unix_now())
                    .await
                    .map_err(|e| e.to_string())?;
            match state {
                HolderState::Running => {
                    return Ok(Some(Busy::Rollout(holder.execution_arn)));
                }
                // Stopped, timed out or failed a moment ago: the reconciler (or the rollout's own RollBack) is at
                // work, and moves the alias only back to the holder's stable version.
                HolderState::Reconciling { .. } => {
                    return Ok(Some(Busy::Reconciling {
                        execution: holder.execution_arn,
                        stable: holder.stable_version.unwrap_or_default(),
                    }));
                }
                // Succeeded with its lock left behind, gone, or ended long ago: the lock is free (the next
                // Prepare takes it over); the alias itself says the rest.
                HolderState::Ended => {}
            }
        }
        Ok(found
            .state
            .is_split()
            .then(|| Busy::Split(found.state.describe())))
    }

    /// No stack manages an alias of a function another stack created: none can adopt it and move it (with
    /// `Enabled: false`, past every gate). A function no stack created (no `aws:cloudformation:stack-id` tag) is
    /// served, within the engine's TargetFunctionArns.
    async fn owned_by_the_stack(
        &self,
        request: &ResourceRequest,
        properties: &AliasProperties,
    ) -> Result<(), String> {
        let function = &properties.function_name;
        match self
            .lambda
            .owning_stack(function)
            .await
            .map_err(|e| e.to_string())?
        {
            Some(stack) if stack == request.stack_id => Ok(()),
            Some(stack) => Err(format!(
                "function {function} belongs to stack {stack} (its aws:cloudformation:stack-id tag), not to \
                 {}: a stack's safeshift aliases are on its own functions only",
                request.stack_id
            )),
            // Made outside CloudFormation (by hand, by another tool): no stack claims it, and the engine's
            // TargetFunctionArns still scopes what it may touch.
            None => Ok(()),
        }
    }

    async fn create(&self, request: &ResourceRequest) -> Result<Outcome, String> {
        let properties = properties(&request.resource_properties)?;
        self.owned_by_the_stack(request, &properties).await?;
        if properties.enabled().map_err(|e| e.to_string())? {
            // Refused now rather than at the first update, when the stack has already moved on.
            properties.deployment().map_err(|e| e.to_string())?;
        }
        let (function, alias) = properties.identity();
        match self
            .lambda
            .find_alias(function, alias)
            .await
            .map_err(|e| e.to_string())?
        {
            Some(found) => {
                tracing::info!(alias = %found.arn, version = %found.state.function_version, "adopted, unchanged");
                Ok(Outcome::Done {
                    arn: found.arn,
                    version: found.state.function_version,
                })
            }
            None => {
                let mark =
                    custom_resource::created_mark(&request.stack_id, &request.logical_resource_id);
                let created = self
                    .lambda
                    .create_alias(function, alias, &properties.function_version, &mark)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Outcome::Done {
                    arn: created.arn,
                    version: created.state.function_version,
                })
            }
        }
    }

    async fn update(&self, request: &ResourceRequest) -> Result<Outcome, String> {
        let properties = properties(&request.resource_properties)?;
        // Only which alias the old properties named matters (whatever else they held), however the function was
        // written (name or ARN).
        let old = request.old_resource_properties.as_ref().map(|o| {
            custom_resource::lock_key(
                o["FunctionName"].as_str().unwrap_or_default(),
                o["Name"].as_str().unwrap_or_default(),
            )
            .ok()
        });
        if old.is_some_and(|old| old != properties.lock_key().ok()) {
            // Another function or alias name: a new alias (CloudFormation deletes the old one afterwards).
            return self.create(request).await;
        }
        self.owned_by_the_stack(request, &properties).await?;
        let (function, alias) = properties.identity();
        let Some(found) = self
            .lambda
            .find_alias(function, alias)
            .await
            .map_err(|e| e.to_string())?
        else {
            // Deleted outside the stack: made again, as CloudFormation would.
            return self.create(request).await;
        };
        let name = execution_name(&request.logical_resource_id, &request.request_id);
        let execution_arn = self.scope.execution_arn(&name);
        match self.busy(&properties, &found).await? {
            // This very request, delivered again: its rollout runs, its answer is held.
            Some(Busy::Rollout(arn)) if arn == execution_arn => {
                return Ok(Outcome::Started {
                    execution_arn,
                    detached: properties.detached().unwrap_or(false),
                });
            }
            Some(Busy::Rollout(arn)) => {
                return Err(format!(
                    "{function}:{alias} is being moved by rollout {arn}: one deployment per alias. Let it end \
                     (or `safeshift abort` it), then retry the update (in a stack rollback: continue-update-rollback)"
                ));
            }
            // The reconciler puts the alias back on the version this update asks for (a stack rolling back
            // after a stopped rollout): that is where it ends.
            Some(Busy::Reconciling { stable, .. }) if stable == properties.function_version => {
                return Ok(Outcome::Done {
                    arn: found.arn,
                    version: stable,
                });
            }
            Some(Busy::Reconciling { execution, stable }) => {
                return Err(format!(
                    "{function}:{alias} is being put back on version {stable} after rollout {execution} stopped; \
                     retry the update in a few minutes"
                ));
            }
            Some(Busy::Split(routing)) => {
                return Err(format!(
                    "{function}:{alias} routes {routing} and no deployment holds it: someone else split it. \
                     Put it on one version, then retry the update"
                ));
            }
            None => {}
        }
        match custom_resource::plan_update(&properties, &found.state.function_version)
            .map_err(|e| e.to_string())?
        {
            UpdatePlan::Nothing => Ok(Outcome::Done {
                arn: found.arn,
                version: found.state.function_version,
            }),
            UpdatePlan::PointAt(version) => {
                let update = AliasUpdate {
                    function_version: version,
                    weights: Default::default(),
                };
                let written = self
                    .lambda
                    .update_alias(function, alias, &update, &found.state.revision_id)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Outcome::Done {
                    arn: found.arn,
                    version: written.function_version,
                })
            }
            UpdatePlan::Deploy(deployment) => {
                let detached = properties.detached().map_err(|e| e.to_string())?;
                let input = serde_json::to_string(&*deployment).map_err(|e| e.to_string())?;
                if !detached {
                    // Held before the start: a rollout that ends at once (refused by Prepare) finds it.
                    let owed = PendingAnswer {
                        response_url: request.response_url.clone(),
                        stack_id: request.stack_id.clone(),
                        request_id: request.request_id.clone(),
                        logical_resource_id: request.logical_resource_id.clone(),
                        physical_resource_id: found.arn.clone(),
                        function_version: properties.function_version.clone(),
                    };
                    self.answers
                        .hold_answer(
                            &execution_arn,
                            &owed,
                            crate::unix_now() + ANSWER_KEPT_SECONDS,
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                }
                if let Err(e) = self
                    .executions
                    .start_execution(&self.scope.state_machine_arn, &name, &input)
                    .await
                {
                    // A start whose answer was lost may have started it all the same.
                    if self
                        .executions
                        .describe_execution(&execution_arn)
                        .await
                        .is_ok()
                    {
                        tracing::warn!(execution = %execution_arn, error = %e, "the start's answer was lost; it runs");
                        return Ok(Outcome::Started {
                            execution_arn,
                            detached,
                        });
                    }
                    if !detached {
                        let _ = self.answers.forget_answer(&execution_arn).await;
                    }
                    return Err(format!("the rollout could not start: {e}"));
                }
                tracing::info!(execution = %execution_arn, detached, "rollout started");
                Ok(Outcome::Started {
                    execution_arn,
                    detached,
                })
            }
        }
    }

    async fn delete(&self, request: &ResourceRequest) -> Result<Outcome, String> {
        let physical = request.physical_resource_id.clone().unwrap_or_default();
        // Properties that never made an alias (a failed create) leave nothing to delete: never block a delete.
        let Ok(properties) = properties(&request.resource_properties) else {
            return Ok(Outcome::Done {
                arn: physical,
                version: String::new(),
            });
        };
        let (function, alias) = properties.identity();
        let found = match self.lambda.find_alias(function, alias).await {
            Ok(found) => found,
            Err(Error::ResourceNotFound { .. }) => None,
            Err(e) => return Err(e.to_string()),
        };
        let mark = custom_resource::created_mark(&request.stack_id, &request.logical_resource_id);
        match found {
            Some(a) if a.arn == physical && a.description.as_deref() == Some(mark.as_str()) => {
                self.lambda
                    .delete_alias(function, alias)
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::info!(alias = %a.arn, "deleted: this resource created it");
            }
            Some(a) => {
                tracing::info!(alias = %a.arn, "left in place: this resource adopted it (or it is another's)")
            }
            None => {}
        }
        Ok(Outcome::Done {
            arn: physical,
            version: String::new(),
        })
    }

    /// Answers CloudFormation for a rollout that ended, if an answer is owed for it.
    async fn ended(&self, change: StatusChange) -> Result<Value, Error> {
        let arn = &change.detail.execution_arn;
        if !["SUCCEEDED", "FAILED", "ABORTED", "TIMED_OUT"].contains(&change.detail.status.as_str())
        {
            return Ok(json!({"answered": false}));
        }
        // Most executions owe no answer: the table says so before Step Functions is asked anything.
        let Some(owed) = self.answers.pending_answer(arn).await? else {
            return Ok(json!({"answered": false}));
        };
        let record = self.executions.describe_execution(arn).await?;
        self.answer_ended(arn, owed, &record).await
    }

    /// Sends `owed` for the execution `arn` as it ended (`record`; nothing while it runs), and forgets it once
    /// sent or once the URL refused it for good.
    async fn answer_ended(
        &self,
        arn: &str,
        owed: PendingAnswer,
        record: &ExecutionRecord,
    ) -> Result<Value, Error> {
        let (status, reason) = match record.status.as_str() {
            "SUCCEEDED" => (
                "SUCCESS",
                format!("rollout {arn} promoted version {}", owed.function_version),
            ),
            "FAILED" => (
                "FAILED",
                format!(
                    "rollout {arn} rolled back: {}: {}",
                    record.error.as_deref().unwrap_or("failed"),
                    record.cause.as_deref().unwrap_or("no cause given")
                ),
            ),
            "RUNNING" => return Ok(json!({"answered": false})),
            stopped => (
                "FAILED",
                format!(
                    "rollout {arn} ended {stopped}: safeshift puts the alias back on the stable version"
                ),
            ),
        };
        let sent = self
            .stack
            .send_answer(
                &owed.response_url,
                &response(
                    status,
                    &reason,
                    &owed.physical_resource_id,
                    &owed.stack_id,
                    &owed.request_id,
                    &owed.logical_resource_id,
                    json!({"FunctionVersion": owed.function_version, "ExecutionArn": arn}),
                ),
            )
            .await;
        let answered = match sent {
            Ok(answered) => answered,
            // Not CloudFormation's URL: nobody to answer, ever.
            Err(Error::InvalidInput(e)) => {
                tracing::warn!(error = %e, "the held answer's URL cannot be answered");
                false
            }
            // Kept for the redelivery (the function's retries, then its queue).
            Err(e) => return Err(e),
        };
        // Forgotten once sent, or once the URL refused it for good (expired: CloudFormation gave up waiting).
        self.answers.forget_answer(arn).await?;
        Ok(json!({"answered": answered, "status": status, "reason": reason}))
    }

    /// Sends the answers still held for rollouts that ended: what their end events would have sent. One
    /// answer's trouble is logged and left for the next sweep; the others go on.
    async fn sweep(&self) -> Result<Value, Error> {
        let held = self.answers.held_answers().await?;
        let mut answered = Vec::new();
        let mut ended = 0;
        for (execution_arn, expires_at) in &held {
            if ended == SWEEP_LIMIT {
                break;
            }
            let record = match self.executions.describe_execution(execution_arn).await {
                Ok(record) => record,
                // Never started (a start that failed after the answer was held), once its start could no longer
                // be under way: nothing will end.
                Err(Error::ResourceNotFound { .. }) => {
                    let held_at = expires_at.saturating_sub(ANSWER_KEPT_SECONDS);
                    if held_at + START_GRACE_SECONDS < crate::unix_now() {
                        let _ = self.answers.forget_answer(execution_arn).await;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(execution = %execution_arn, error = %e, "sweep: left for the next one");
                    continue;
                }
            };
            if record.status == "RUNNING" {
                continue;
            }
            ended += 1;
            let sent = match self.answers.pending_answer(execution_arn).await {
                // Sent meanwhile by the end event.
                Ok(None) => continue,
                Ok(Some(owed)) => self.answer_ended(execution_arn, owed, &record).await,
                Err(e) => Err(e),
            };
            match sent {
                Ok(out) if out["answered"] == true => answered.push(execution_arn.clone()),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(execution = %execution_arn, error = %e, "sweep: left for the next one")
                }
            }
        }
        Ok(json!({"held": held.len(), "answered": answered}))
    }
}

fn properties(value: &Value) -> Result<AliasProperties, String> {
    AliasProperties::from_value(value.clone()).map_err(|e| e.to_string())
}

/// The execution a request starts: named after it, so a redelivered request is the same execution.
fn execution_name(logical_id: &str, request_id: &str) -> String {
    let logical: String = logical_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(30)
        .collect();
    let request: String = request_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(40)
        .collect();
    format!("cfn-{logical}-{request}")
}

/// CloudFormation's response document, as sent: the reason is cut until the whole fits in the 4 KB CloudFormation
/// takes (escaping can make a reason grow in JSON).
fn response(
    status: &str,
    reason: &str,
    physical_id: &str,
    stack_id: &str,
    request_id: &str,
    logical_id: &str,
    data: Value,
) -> String {
    let mut limit = reason.len();
    loop {
        let body = json!({
            "Status": status,
            "Reason": safeshift_core::gates::bounds::cut(reason, limit),
            "PhysicalResourceId": physical_id,
            "StackId": stack_id,
            "RequestId": request_id,
            "LogicalResourceId": logical_id,
            "NoEcho": false,
            "Data": data,
        })
        .to_string();
        if body.len() <= MAX_RESPONSE_BYTES || limit == 0 {
            return body;
        }
        // Shrink by the share the body is over, and a little more so the loop ends.
        limit = (limit * MAX_RESPONSE_BYTES / body.len()).saturating_sub(16);
    }
}

impl<L, X, P, A> Handler for CloudFormation<L, X, P, A>
where
    L: ManageAlias + WriteAlias + 'static,
    X: StartExecution + ReadExecution + 'static,
    P: PendingAnswers + AliasLock + 'static,
    A: AnswerStack + 'static,
{
    type Event = CloudFormationEvent;
    type Output = Value;
    const EXPECTED: &'static str = "a CloudFormation macro or custom resource request, or a Step Functions \
                                     Execution Status Change event";

    fn span(event: &Self::Event) -> Span {
        match event {
            CloudFormationEvent::Macro(m) => {
                tracing::info_span!("transform", request = %m.request_id)
            }
            CloudFormationEvent::Resource(r) => tracing::info_span!(
                "custom_resource",
                request_type = ?r.request_type,
                logical_id = %r.logical_resource_id,
                request = %r.request_id
            ),
            CloudFormationEvent::Ended(e) => {
                tracing::info_span!("rollout_ended", execution = %e.detail.execution_arn)
            }
            CloudFormationEvent::Sweep(_) => tracing::info_span!("sweep"),
        }
    }

    async fn handle(&self, event: Self::Event) -> Result<Value, Error> {
        match event {
            CloudFormationEvent::Macro(m) => Ok(self.transform(m)),
            CloudFormationEvent::Resource(r) => self.resource(r).await,
            CloudFormationEvent::Ended(e) => self.ended(e).await,
            CloudFormationEvent::Sweep(s) if s.detail_type == "Scheduled Event" => {
                self.sweep().await
            }
            CloudFormationEvent::Sweep(s) => Err(safeshift_core::InvalidInput::one(
                "detail-type",
                format!("`{}` is not an event this function serves", s.detail_type),
            )
            .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{Call, FakeAws, STATE_MACHINE};
    use crate::runtime::handle_json;

    const STACK: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/orders/1";
    const URL: &str = "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/x";

    fn provider(aws: &FakeAws) -> CloudFormation<FakeAws, FakeAws, FakeAws, FakeAws> {
        CloudFormation::new(
            aws.clone(),
            aws.clone(),
            aws.clone(),
            aws.clone(),
            Scope::new(STATE_MACHINE),
        )
    }

    fn properties(version: &str, extra: Value) -> Value {
        let mut p = json!({
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:safeshift-cloudformation",
            "FunctionName": "orders-api", "Name": "live", "FunctionVersion": version,
            "Strategy": "Canary10Percent5Minutes", "Alarms": ["orders-errors"],
        });
        p.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        p
    }

    fn request(kind: &str, request_id: &str, props: Value, old: Option<Value>) -> Value {
        let mut r = json!({
            "RequestType": kind, "ResponseURL": URL, "StackId": STACK, "RequestId": request_id,
            "ResourceType": "Custom::SafeshiftAlias", "LogicalResourceId": "OrdersApiAliaslive",
            "ResourceProperties": props,
        });
        if kind != "Create" {
            r["PhysicalResourceId"] =
                json!("arn:aws:lambda:us-east-1:123456789012:function:orders-api:live");
        }
        if let Some(old) = old {
            r["OldResourceProperties"] = old;
        }
        r
    }

    fn ended(execution_arn: &str, status: &str) -> Value {
        json!({"detail-type": "Step Functions Execution Status Change",
               "detail": {"executionArn": execution_arn, "status": status}})
    }

    fn started(aws: &FakeAws) -> Vec<(String, Value)> {
        aws.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::StartExecution { name, input } => Some((name, input)),
                _ => None,
            })
            .collect()
    }

    /// orders-api with versions 1 and 2, `live` on version 1 (with `weights`).
    fn orders(weights: &[(&str, f64)]) -> FakeAws {
        let aws = FakeAws::new();
        aws.function("orders-api", &["1", "2"])
            .owned_by_stack("orders-api", STACK);
        aws.set_alias("orders-api", "live", "1", weights);
        aws
    }

    /// The update CloudFormation sends when the stack's version goes from `from` to `to`.
    fn update(id: &str, to: &str, from: &str) -> Value {
        request(
            "Update",
            id,
            properties(to, json!({})),
            Some(properties(from, json!({}))),
        )
    }

    /// The execution an update `id` of the alias starts.
    fn execution_of(id: &str) -> String {
        Scope::new(STATE_MACHINE).execution_arn(&format!("cfn-OrdersApiAliaslive-{id}"))
    }

    #[tokio::test]
    async fn create_makes_the_alias_at_the_first_version_and_marks_it() {
        let aws = FakeAws::new();
        aws.function("orders-api", &["1"])
            .owned_by_stack("orders-api", STACK);
        let p = provider(&aws);
        handle_json(
            &p,
            request("Create", "r1", properties("1", json!({})), None),
        )
        .await
        .unwrap();
        assert_eq!(
            aws.alias("orders-api", "live").unwrap().function_version,
            "1"
        );
        let [answer] = aws.sent_answers().try_into().unwrap();
        assert_eq!(answer["Status"], "SUCCESS");
        assert_eq!(
            answer["PhysicalResourceId"],
            "arn:aws:lambda:us-east-1:123456789012:function:orders-api:live"
        );
        assert_eq!(answer["RequestId"], "r1");
        assert_eq!(answer["Data"]["FunctionVersion"], "1");
        // Deleted by the resource that created it.
        handle_json(
            &p,
            request("Delete", "r2", properties("1", json!({})), None),
        )
        .await
        .unwrap();
        assert!(aws.alias("orders-api", "live").is_none());
    }

    #[tokio::test]
    async fn create_adopts_an_existing_alias_unchanged_and_delete_leaves_it() {
        let aws = FakeAws::new();
        aws.function("orders-api", &["1", "2", "3"])
            .owned_by_stack("orders-api", STACK);
        aws.set_alias("orders-api", "live", "2", &[]);
        let p = provider(&aws);
        handle_json(
            &p,
            request("Create", "r1", properties("3", json!({})), None),
        )
        .await
        .unwrap();
        assert_eq!(
            aws.alias("orders-api", "live").unwrap().function_version,
            "2"
        );
        assert!(
            aws.calls()
                .iter()
                .all(|c| !matches!(c, Call::CreateAlias { .. } | Call::UpdateAlias { .. }))
        );
        assert_eq!(aws.sent_answers()[0]["Data"]["FunctionVersion"], "2");
        handle_json(
            &p,
            request("Delete", "r2", properties("3", json!({})), None),
        )
        .await
        .unwrap();
        assert!(
            aws.alias("orders-api", "live").is_some(),
            "an adopted alias outlives the resource"
        );
        assert_eq!(aws.sent_answers()[1]["Status"], "SUCCESS");
    }

    #[tokio::test]
    async fn an_update_starts_a_rollout_and_answers_when_it_ends() {
        let aws = orders(&[]);
        let p = provider(&aws);
        let out = handle_json(&p, update("req-7", "2", "1")).await.unwrap();
        assert_eq!(out["answered"], false);
        assert!(
            aws.sent_answers().is_empty(),
            "CloudFormation waits for the rollout"
        );
        let [(name, input)] = started(&aws).try_into().unwrap();
        assert_eq!(name, "cfn-OrdersApiAliaslive-req-7");
        assert_eq!(input["functionName"], "orders-api");
        assert_eq!(input["targetVersion"], "2");
        assert_eq!(input["strategy"], "Canary10Percent5Minutes");
        assert_eq!(input["alarms"], json!(["orders-errors"]));
        let execution = Scope::new(STATE_MACHINE).execution_arn(&name);
        assert!(aws.held_answer(&execution).is_some());

        // Another execution's end owes nothing.
        handle_json(
            &p,
            ended(
                "arn:aws:states:us-east-1:123456789012:execution:safeshift-rollout:other",
                "SUCCEEDED",
            ),
        )
        .await
        .unwrap();
        assert!(aws.sent_answers().is_empty());

        aws.end_execution(&execution, "SUCCEEDED", 2_000);
        handle_json(&p, ended(&execution, "SUCCEEDED"))
            .await
            .unwrap();
        let [answer] = aws.sent_answers().try_into().unwrap();
        assert_eq!(answer["Status"], "SUCCESS");
        assert_eq!(answer["RequestId"], "req-7");
        assert_eq!(answer["Data"]["FunctionVersion"], "2");
        assert!(aws.held_answer(&execution).is_none());
        // A redelivered event answers nothing twice.
        handle_json(&p, ended(&execution, "SUCCEEDED"))
            .await
            .unwrap();
        assert_eq!(aws.sent_answers().len(), 1);
    }

    #[tokio::test]
    async fn a_rolled_back_rollout_answers_failed_with_the_gates_error_and_the_stack_rollback_is_a_no_op()
     {
        let aws = orders(&[]);
        let p = provider(&aws);
        handle_json(&p, update("r1", "2", "1")).await.unwrap();
        let execution = execution_of("r1");
        aws.fail_execution(&execution, "AlarmFired", "orders-errors is in ALARM");
        handle_json(&p, ended(&execution, "FAILED")).await.unwrap();
        let answer = &aws.sent_answers()[0];
        assert_eq!(answer["Status"], "FAILED");
        let reason = answer["Reason"].as_str().unwrap();
        assert!(
            reason.contains("AlarmFired") && reason.contains("orders-errors is in ALARM"),
            "{reason}"
        );

        // CloudFormation rolls the stack back: the update back to version 1 finds the alias there.
        aws.clear_calls();
        handle_json(&p, update("r2", "1", "2")).await.unwrap();
        assert!(started(&aws).is_empty());
        assert!(aws.writes().is_empty());
        assert_eq!(aws.sent_answers()[0]["Status"], "SUCCESS");
    }

    #[tokio::test]
    async fn a_rollout_too_long_for_cloudformation_is_refused_before_anything_is_written() {
        let aws = orders(&[]);
        let p = provider(&aws);
        let long = properties("2", json!({"Strategy": "Linear10PercentEvery10Minutes"}));
        handle_json(
            &p,
            request(
                "Update",
                "r1",
                long.clone(),
                Some(properties("1", json!({}))),
            ),
        )
        .await
        .unwrap();
        let answer = &aws.sent_answers()[0];
        assert_eq!(answer["Status"], "FAILED");
        assert!(answer["Reason"].as_str().unwrap().contains("detached"));
        assert!(
            aws.calls()
                .iter()
                .all(|c| !matches!(c, Call::StartExecution { .. } | Call::HoldAnswer { .. }))
        );

        // Detached: answered at once, nothing held.
        aws.clear_calls();
        let mut detached = long;
        detached["Detached"] = json!("true");
        handle_json(
            &p,
            request("Update", "r2", detached, Some(properties("1", json!({})))),
        )
        .await
        .unwrap();
        assert_eq!(started(&aws).len(), 1);
        assert_eq!(aws.sent_answers()[0]["Status"], "SUCCESS");
        assert!(
            aws.calls()
                .iter()
                .all(|c| !matches!(c, Call::HoldAnswer { .. }))
        );
    }

    #[tokio::test]
    async fn a_rollout_that_cannot_start_answers_failed_and_owes_nothing() {
        let aws = orders(&[]);
        aws.fail_next(
            "StartExecution",
            Error::AccessDenied {
                operation: "StartExecution".into(),
                message: "no".into(),
            },
        );
        let p = provider(&aws);
        handle_json(&p, update("r1", "2", "1")).await.unwrap();
        assert_eq!(aws.sent_answers()[0]["Status"], "FAILED");
        let execution = execution_of("r1");
        assert!(aws.held_answer(&execution).is_none());
    }

    #[tokio::test]
    async fn a_lost_answer_is_sent_again_on_redelivery() {
        let aws = orders(&[]);
        let p = provider(&aws);
        handle_json(&p, update("r1", "2", "1")).await.unwrap();
        let execution = execution_of("r1");
        aws.end_execution(&execution, "SUCCEEDED", 2_000);
        aws.fail_next(
            "PUT ResponseURL",
            Error::AwsError {
                operation: "PUT ResponseURL".into(),
                message: "reset".into(),
            },
        );
        assert!(
            handle_json(&p, ended(&execution, "SUCCEEDED"))
                .await
                .is_err()
        );
        assert!(
            aws.held_answer(&execution).is_some(),
            "kept for the redelivery"
        );
        handle_json(&p, ended(&execution, "SUCCEEDED"))
            .await
            .unwrap();
        assert!(aws.held_answer(&execution).is_none());
    }

    #[tokio::test]
    async fn bad_properties_answer_failed_naming_the_property() {
        let aws = FakeAws::new();
        aws.function("orders-api", &["1"])
            .owned_by_stack("orders-api", STACK);
        let p = provider(&aws);
        let mut props = properties("1", json!({"Deployment": "{\"bakeSecond\": 3}"}));
        props.as_object_mut().unwrap().remove("Strategy");
        handle_json(&p, request("Create", "r1", props, None))
            .await
            .unwrap();
        let answer = &aws.sent_answers()[0];
        assert_eq!(answer["Status"], "FAILED");
        assert!(
            answer["Reason"].as_str().unwrap().contains("bakeSecond"),
            "{answer}"
        );
        assert!(aws.alias("orders-api", "live").is_none());
    }

    /// `execution` holds the alias's lock, with `status` (ended just now, if it ended).
    fn hold(aws: &FakeAws, execution: &str, status: &str, stable: &str) {
        aws.execution(execution, status, None, Vec::new());
        if status != "RUNNING" {
            aws.end_execution(execution, status, crate::unix_now());
        }
        let holder = crate::ports::LockHolder {
            execution_arn: execution.into(),
            stable_version: Some(stable.into()),
            ..Default::default()
        };
        aws.hold_lock("orders-api:live", holder, crate::unix_now() + 3600);
    }

    #[tokio::test]
    async fn an_update_while_another_rollout_holds_the_alias_answers_failed_and_writes_nothing() {
        let aws = orders(&[("2", 0.1)]);
        let other = Scope::new(STATE_MACHINE).execution_arn("orders-api-live-2-abc");
        hold(&aws, &other, "RUNNING", "1");
        let p = provider(&aws);
        // Even the update back to the version it is mostly on: that rollout may still promote version 2.
        for (id, version) in [("r1", "2"), ("r2", "1")] {
            aws.clear_calls();
            handle_json(
                &p,
                request(
                    "Update",
                    id,
                    properties(version, json!({})),
                    Some(properties("3", json!({}))),
                ),
            )
            .await
            .unwrap();
            let answer = &aws.sent_answers()[0];
            assert_eq!(answer["Status"], "FAILED", "{answer}");
            assert!(
                answer["Reason"].as_str().unwrap().contains(&other),
                "{answer}"
            );
            assert!(started(&aws).is_empty() && aws.writes().is_empty());
        }
    }

    #[tokio::test]
    async fn the_stack_rollback_after_a_stopped_rollout_finds_the_reconciler_putting_the_alias_back()
     {
        let aws = orders(&[("2", 0.5)]);
        let stopped = execution_of("r1");
        hold(&aws, &stopped, "ABORTED", "1");
        let p = provider(&aws);
        handle_json(&p, update("r2", "1", "2")).await.unwrap();
        let answer = &aws.sent_answers()[0];
        assert_eq!(answer["Status"], "SUCCESS", "{answer}");
        assert_eq!(answer["Data"]["FunctionVersion"], "1");
        assert!(started(&aws).is_empty() && aws.writes().is_empty());
        // Anywhere else is refused until the reconciler is done.
        handle_json(&p, update("r3", "2", "1")).await.unwrap();
        assert_eq!(aws.sent_answers()[1]["Status"], "FAILED");
    }

    #[tokio::test]
    async fn a_redelivered_update_keeps_waiting_for_its_own_rollout() {
        let aws = orders(&[]);
        let p = provider(&aws);
        let update = update("r1", "2", "1");
        handle_json(&p, update.clone()).await.unwrap();
        let execution = execution_of("r1");
        hold(&aws, &execution, "RUNNING", "1");
        let out = handle_json(&p, update).await.unwrap();
        assert_eq!(out["answered"], false);
        assert!(aws.sent_answers().is_empty());
        assert_eq!(started(&aws).len(), 1);
    }

    #[tokio::test]
    async fn a_start_whose_answer_was_lost_is_taken_for_started() {
        let aws = orders(&[]);
        let execution = execution_of("r1");
        // It started; only the answer to StartExecution was lost.
        aws.execution(&execution, "RUNNING", None, Vec::new());
        aws.fail_next(
            "StartExecution",
            Error::AwsError {
                operation: "StartExecution".into(),
                message: "timeout".into(),
            },
        );
        let p = provider(&aws);
        handle_json(&p, update("r1", "2", "1")).await.unwrap();
        assert!(
            aws.sent_answers().is_empty(),
            "CloudFormation waits for the rollout"
        );
        assert!(aws.held_answer(&execution).is_some());
    }

    #[tokio::test]
    async fn a_request_that_is_not_cloudformations_is_refused_before_any_write() {
        let aws = orders(&[]);
        let p = provider(&aws);
        let mut forged = update("r1", "2", "1");
        forged["ResponseURL"] = json!("http://169.254.169.254/latest");
        let e = handle_json(&p, forged).await.unwrap_err();
        assert!(e.to_string().contains("ResponseURL"), "{e}");
        assert!(aws.calls().is_empty(), "{:?}", aws.calls());
    }

    #[tokio::test]
    async fn an_answer_the_url_refuses_for_good_is_forgotten() {
        let aws = orders(&[]);
        let p = provider(&aws);
        let mut update = update("r1", "2", "1");
        update["ResponseURL"] = json!("https://s3.amazonaws.com/expired");
        handle_json(&p, update).await.unwrap();
        let execution = execution_of("r1");
        aws.end_execution(&execution, "SUCCEEDED", 2_000);
        let out = handle_json(&p, ended(&execution, "SUCCEEDED"))
            .await
            .unwrap();
        assert_eq!(out["answered"], false);
        assert!(aws.held_answer(&execution).is_none());
    }

    #[test]
    fn a_response_fits_in_what_cloudformation_takes() {
        let reason = "\"\u{1}".repeat(5_000);
        let body = response(
            "FAILED",
            &reason,
            "arn",
            STACK,
            "r",
            "L",
            json!({"FunctionVersion": "1"}),
        );
        assert!(body.len() <= MAX_RESPONSE_BYTES, "{}", body.len());
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert!(parsed["Reason"].as_str().unwrap().len() > 100);
    }

    /// A replacement, as CloudFormation sends it: an update naming another alias (a new physical ID), then a
    /// Delete of the old one with its old properties.
    #[tokio::test]
    async fn a_renamed_alias_is_a_replacement_create_the_new_then_delete_the_old_if_made_here() {
        let aws = FakeAws::new();
        aws.function("orders-api", &["1"])
            .owned_by_stack("orders-api", STACK);
        let p = provider(&aws);
        handle_json(
            &p,
            request("Create", "r1", properties("1", json!({})), None),
        )
        .await
        .unwrap();
        let old_arn = aws.sent_answers()[0]["PhysicalResourceId"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut renamed = properties("1", json!({}));
        renamed["Name"] = json!("prod");
        handle_json(
            &p,
            request("Update", "r2", renamed, Some(properties("1", json!({})))),
        )
        .await
        .unwrap();
        let answer = &aws.sent_answers()[1];
        assert_eq!(answer["Status"], "SUCCESS");
        assert!(
            answer["PhysicalResourceId"]
                .as_str()
                .unwrap()
                .ends_with(":orders-api:prod")
        );
        assert_eq!(
            aws.alias("orders-api", "prod").unwrap().function_version,
            "1"
        );
        assert!(
            started(&aws).is_empty(),
            "a new alias starts on the version: nothing to roll out"
        );
        let mut delete_old = request("Delete", "r3", properties("1", json!({})), None);
        delete_old["PhysicalResourceId"] = json!(old_arn);
        handle_json(&p, delete_old).await.unwrap();
        assert!(
            aws.alias("orders-api", "live").is_none(),
            "the old alias, made by this resource, goes"
        );
        assert!(aws.alias("orders-api", "prod").is_some());
    }

    /// An end event lost after all its retries: the sweep sends what it would have, and skips what still runs.
    #[tokio::test]
    async fn the_sweep_answers_for_a_rollout_whose_end_event_was_lost() {
        let aws = orders(&[]);
        let p = provider(&aws);
        handle_json(&p, update("r1", "2", "1")).await.unwrap();
        let execution = execution_of("r1");
        let sweep = json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
        handle_json(&p, sweep.clone()).await.unwrap();
        assert!(aws.sent_answers().is_empty(), "it still runs");
        aws.fail_execution(&execution, "AlarmFired", "orders-errors");
        let out = handle_json(&p, sweep.clone()).await.unwrap();
        assert_eq!(out["answered"], json!([execution]));
        assert_eq!(aws.sent_answers()[0]["Status"], "FAILED");
        handle_json(&p, sweep).await.unwrap();
        assert_eq!(aws.sent_answers().len(), 1, "answered once");
    }

    /// A lock a succeeded rollout left behind (its ReleaseLock failed) is no one's: the next update rolls out, and
    /// a stack rollback never takes a promoted alias for one being put back.
    #[tokio::test]
    async fn a_lock_left_behind_by_an_ended_rollout_does_not_hold_updates() {
        let aws = orders(&[]);
        hold(&aws, &execution_of("old"), "SUCCEEDED", "1");
        let p = provider(&aws);
        handle_json(&p, update("r1", "2", "1")).await.unwrap();
        assert!(aws.sent_answers().is_empty(), "a rollout runs");
        assert_eq!(started(&aws).len(), 1);
        // Promoted, lock left behind, then the stack rolls back for another resource: back to 1 is a rollout.
        aws.set_alias("orders-api", "live", "2", &[]);
        aws.end_execution(&execution_of("r1"), "SUCCEEDED", 2_000);
        hold(&aws, &execution_of("r1"), "SUCCEEDED", "1");
        handle_json(&p, update("r2", "1", "2")).await.unwrap();
        assert_eq!(
            started(&aws).len(),
            2,
            "the alias goes back by a rollout, not a no-op"
        );
    }

    /// The sweep leaves an answer whose start may still be under way, and goes on past one it cannot send.
    #[tokio::test]
    async fn the_sweep_waits_for_a_start_and_one_failure_does_not_stop_it() {
        let aws = orders(&[]);
        let p = provider(&aws);
        let owed = PendingAnswer {
            response_url: URL.into(),
            stack_id: STACK.into(),
            request_id: "r9".into(),
            logical_resource_id: "OrdersApiAliaslive".into(),
            physical_resource_id: "arn".into(),
            function_version: "2".into(),
        };
        let kept = crate::unix_now() + ANSWER_KEPT_SECONDS;
        // Held just now for an execution that has not started yet: kept.
        aws.hold_answer(&execution_of("r9"), &owed, kept)
            .await
            .unwrap();
        // Two ended rollouts; sending the first answer fails.
        for id in ["a", "b"] {
            let answer = PendingAnswer {
                request_id: id.into(),
                ..owed.clone()
            };
            aws.hold_answer(&execution_of(id), &answer, kept)
                .await
                .unwrap();
            aws.execution(&execution_of(id), "SUCCEEDED", None, Vec::new());
        }
        aws.fail_next(
            "PUT ResponseURL",
            Error::AwsError {
                operation: "PUT ResponseURL".into(),
                message: "503".into(),
            },
        );
        let sweep = json!({"detail-type": "Scheduled Event", "detail": {}});
        let out = handle_json(&p, sweep).await.unwrap();
        assert_eq!(out["held"], 3);
        assert_eq!(out["answered"], json!([execution_of("b")]));
        assert!(
            aws.held_answer(&execution_of("a")).is_some(),
            "left for the next sweep"
        );
        assert!(
            aws.held_answer(&execution_of("r9")).is_some(),
            "its start may be under way"
        );
    }

    /// Another stack cannot take a function's alias over (and then move it with `Enabled: false`, past the gates).
    #[tokio::test]
    async fn a_stack_manages_the_aliases_of_its_own_functions_only() {
        let aws = orders(&[]);
        aws.owned_by_stack(
            "orders-api",
            "arn:aws:cloudformation:us-east-1:123456789012:stack/orders/other",
        );
        let p = provider(&aws);
        handle_json(
            &p,
            request(
                "Create",
                "r1",
                properties("2", json!({"Enabled": "false"})),
                None,
            ),
        )
        .await
        .unwrap();
        let mut disabled = update("r2", "2", "1");
        disabled["ResourceProperties"]["Enabled"] = json!("false");
        handle_json(&p, disabled).await.unwrap();
        for answer in aws.sent_answers() {
            assert_eq!(answer["Status"], "FAILED", "{answer}");
            assert!(
                answer["Reason"]
                    .as_str()
                    .unwrap()
                    .contains("stack/orders/other"),
                "{answer}"
            );
        }
        assert!(aws.writes().is_empty() && started(&aws).is_empty());
        assert_eq!(
            aws.alias("orders-api", "live").unwrap().function_version,
            "1"
        );

        // A function no stack created is served (TargetFunctionArns scopes the engine).
        let untagged = FakeAws::new();
        untagged.function("orders-api", &["1"]);
        let p = provider(&untagged);
        handle_json(
            &p,
            request("Create", "r3", properties("1", json!({})), None),
        )
        .await
        .unwrap();
        assert_eq!(untagged.sent_answers()[0]["Status"], "SUCCESS");
        assert!(untagged.alias("orders-api", "live").is_some());
    }

    #[tokio::test]
    async fn the_macro_answers_with_the_fragment_or_the_reason() {
        let aws = FakeAws::new();
        let p = provider(&aws);
        let out = handle_json(
            &p,
            json!({"requestId": "m1", "fragment": {"Resources": {}}, "region": "us-east-1"}),
        )
        .await
        .unwrap();
        assert_eq!(
            out,
            json!({"requestId": "m1", "status": "success", "fragment": {"Resources": {}}})
        );
        let out = handle_json(&p, json!({"requestId": "m2", "fragment": {}}))
            .await
            .unwrap();
        assert_eq!(out["status"], "failure");
        assert!(out["errorMessage"].as_str().unwrap().contains("Resources"));
    }
}
