//! DynamoDB: the per-alias deployment lock, one item per alias in the stack's lock table, written with
//! conditional expressions so that two Prepares racing for one alias cannot both win.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::get_item::GetItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::scan::ScanError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::types::ReturnValue;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use safeshift_core::Error;
use safeshift_core::gates::alarms::FiredAlarm;

use super::{classify, throttled};
use crate::ports::{
    AliasLock, Interrupt, LockHolder, PendingAnswer, PendingAnswers, Watch, WatchAlarms, Watcher,
};

/// The lock table's item: its key, and the holder's fields.
const KEY: &str = "aliasKey";
const EXECUTION: &str = "executionArn";
const DEPLOYMENT: &str = "deploymentId";
const ACQUIRED: &str = "acquiredAt";
const STABLE: &str = "stableVersion";
/// The alarms the holder's deployment lists (a string set; absent when it lists none).
const ALARMS: &str = "alarms";
/// The first listed alarm that went to ALARM during the hold, as JSON.
const FIRED: &str = "firedAlarm";
/// The task token of the wait the holder is in now, which an alarm event fails.
const TASK_TOKEN: &str = "taskToken";
/// When that wait's state was entered (Unix milliseconds): a late registration of an earlier wait never replaces
/// a later one.
const WAIT_SINCE: &str = "waitSince";
/// When Prepare read the alarms (Unix seconds).
const ALARMS_CHECKED: &str = "alarmsCheckedAt";
/// A CloudFormation answer owed for a rollout: its item's key prefix (before the execution ARN), and the answer
/// as JSON. Never a lock's key: those are `function:alias`.
const ANSWER_PREFIX: &str = "answer#";
const ANSWER: &str = "answer";
/// The table's TTL attribute: DynamoDB deletes lapsed locks itself (eventually; the condition does not wait).
const EXPIRES: &str = "expiresAt";

#[derive(Debug, Clone)]
pub struct DynamoLockAdapter {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoLockAdapter {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

/// What DynamoDB's operations can answer beside their own errors, asked with the SDK's typed predicates.
trait DynamoOperationError: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static {
    fn is_throttled(&self) -> bool;
}

macro_rules! dynamo_operation_errors {
    ($($error:ty),+) => {$(
        impl DynamoOperationError for $error {
            fn is_throttled(&self) -> bool {
                self.is_provisioned_throughput_exceeded_exception()
                    || self.is_request_limit_exceeded()
            }
        }
    )+};
}

dynamo_operation_errors!(
    PutItemError,
    GetItemError,
    DeleteItemError,
    UpdateItemError,
    ScanError
);

fn dynamo_error<E: DynamoOperationError>(operation: &str, err: SdkError<E, HttpResponse>) -> Error {
    classify(operation, err, |e| {
        e.is_throttled().then(|| throttled(operation))
    })
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn holder_of(item: &HashMap<String, AttributeValue>) -> Option<(LockHolder, u64)> {
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    let number = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
    };
    Some((
        LockHolder {
            execution_arn: text(EXECUTION)?,
            deployment_id: text(DEPLOYMENT).unwrap_or_default(),
            acquired_at: number(ACQUIRED).unwrap_or_default(),
            stable_version: text(STABLE),
            alarms_checked_at: number(ALARMS_CHECKED),
            alarms: item
                .get(ALARMS)
                .and_then(|v| v.as_ss().ok())
                .cloned()
                .unwrap_or_default(),
            fired: fired_of(item),
        },
        number(EXPIRES).unwrap_or_default(),
    ))
}

fn fired_of(item: &HashMap<String, AttributeValue>) -> Option<FiredAlarm> {
    let text = item.get(FIRED)?.as_s().ok()?;
    serde_json::from_str(text).ok()
}

fn conditional_update_failed(e: &SdkError<UpdateItemError, HttpResponse>) -> bool {
    e.as_service_error()
        .is_some_and(UpdateItemError::is_conditional_check_failed_exception)
}

impl AliasLock for DynamoLockAdapter {
    async fn acquire(
        &self,
        key: &str,
        holder: &LockHolder,
        expires_at: u64,
        replacing: Option<&str>,
    ) -> Result<bool, Error> {
        // Free, already ours (a retried Prepare), lapsed, or held by an execution found to have ended.
        let mut condition =
            format!("attribute_not_exists({KEY}) OR {EXECUTION} = :me OR {EXPIRES} < :now");
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(KEY, s(key))
            .item(EXECUTION, s(&holder.execution_arn))
            .item(DEPLOYMENT, s(&holder.deployment_id))
            .item(ACQUIRED, n(holder.acquired_at))
            .item(EXPIRES, n(expires_at))
            .expression_attribute_values(":me", s(&holder.execution_arn))
            .expression_attribute_values(":now", n(holder.acquired_at));
        if let Some(stable) = &holder.stable_version {
            request = request.item(STABLE, s(stable));
        }
        if !holder.alarms.is_empty() {
            request = request.item(ALARMS, AttributeValue::Ss(holder.alarms.clone()));
        }
        if let Some(checked) = holder.alarms_checked_at {
            request = request.item(ALARMS_CHECKED, n(checked));
        }
        if let Some(previous) = replacing {
            condition.push_str(&format!(" OR {EXECUTION} = :previous"));
            request = request.expression_attribute_values(":previous", s(previous));
        }
        match request.condition_expression(condition).send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(PutItemError::is_conditional_check_failed_exception) =>
            {
                Ok(false)
            }
            Err(e) => Err(dynamo_error("PutItem", e)),
        }
    }

    async fn holder(&self, key: &str) -> Result<Option<(LockHolder, u64)>, Error> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY, s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| dynamo_error("GetItem", e))?;
        Ok(out.item().and_then(holder_of))
    }

    async fn release(&self, key: &str, execution_arn: &str) -> Result<(), Error> {
        let released = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(KEY, s(key))
            .condition_expression(format!("{EXECUTION} = :me"))
            .expression_attribute_values(":me", s(execution_arn))
            .send()
            .await;
        match released {
            Ok(_) => Ok(()),
            // Someone else's lock, or none: nothing of ours to release.
            Err(e)
                if e.as_service_error()
                    .is_some_and(DeleteItemError::is_conditional_check_failed_exception) =>
            {
                Ok(())
            }
            Err(e) => Err(dynamo_error("DeleteItem", e)),
        }
    }
}

impl WatchAlarms for DynamoLockAdapter {
    async fn watch(
        &self,
        key: &str,
        execution_arn: &str,
        task_token: &str,
        since: u64,
    ) -> Result<Watch, Error> {
        let registered = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, s(key))
            .update_expression(format!("SET {TASK_TOKEN} = :token, {WAIT_SINCE} = :since"))
            // The alarm side records first, then reads the token: one of the two writes sees the other. A late
            // registration of an earlier wait never replaces a later one's token.
            .condition_expression(format!(
                "{EXECUTION} = :me AND attribute_not_exists({FIRED}) AND (attribute_not_exists({WAIT_SINCE}) OR {WAIT_SINCE} <= :since)"
            ))
            .expression_attribute_values(":token", s(task_token))
            .expression_attribute_values(":since", n(since))
            .expression_attribute_values(":me", s(execution_arn))
            .send()
            .await;
        match registered {
            Ok(_) => Ok(Watch::Watching),
            Err(e) if conditional_update_failed(&e) => Ok(match self.holder(key).await? {
                Some((holder, _)) if holder.execution_arn == execution_arn => match holder.fired {
                    Some(fired) => Watch::Fired(fired),
                    None => Watch::Superseded,
                },
                _ => Watch::NotHeld,
            }),
            Err(e) => Err(dynamo_error("UpdateItem", e)),
        }
    }

    async fn watchers(&self, alarm: &str) -> Result<Vec<Watcher>, Error> {
        // Only the aliases in a deployment have an item (with the reconciler's short-lived marks, which list no
        // alarm): the table stays as small as the number of deployments running.
        let items = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("contains(#alarms, :alarm)")
            .expression_attribute_names("#alarms", ALARMS)
            .expression_attribute_values(":alarm", s(alarm))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| dynamo_error("Scan", e))?;
        Ok(items
            .iter()
            .filter_map(|item| {
                let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
                Some(Watcher {
                    key: text(KEY)?,
                    execution_arn: text(EXECUTION)?,
                })
            })
            .collect())
    }

    async fn record_fired(
        &self,
        key: &str,
        execution_arn: &str,
        fired: &FiredAlarm,
        changed_at: u64,
    ) -> Result<Option<Interrupt>, Error> {
        let record = serde_json::to_string(fired).map_err(|e| Error::Internal(e.to_string()))?;
        let recorded = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, s(key))
            .update_expression(format!("SET {FIRED} = if_not_exists({FIRED}, :fired)"))
            .condition_expression(format!(
                "{EXECUTION} = :me AND (attribute_not_exists({ALARMS_CHECKED}) OR {ALARMS_CHECKED} <= :changed)"
            ))
            .expression_attribute_values(":fired", s(&record))
            .expression_attribute_values(":me", s(execution_arn))
            .expression_attribute_values(":changed", n(changed_at))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match recorded {
            Ok(out) => {
                let item = out.attributes().cloned().unwrap_or_default();
                Ok(Some(Interrupt {
                    fired: fired_of(&item).unwrap_or_else(|| fired.clone()),
                    task_token: item.get(TASK_TOKEN).and_then(|v| v.as_s().ok()).cloned(),
                }))
            }
            // Released, taken by another deployment since the scan, or held since after the change (a late or
            // redelivered event about an earlier deployment's alarm): not this holder's to interrupt.
            Err(e) if conditional_update_failed(&e) => Ok(None),
            Err(e) => Err(dynamo_error("UpdateItem", e)),
        }
    }
}

impl PendingAnswers for DynamoLockAdapter {
    async fn hold_answer(
        &self,
        execution_arn: &str,
        answer: &PendingAnswer,
        expires_at: u64,
    ) -> Result<(), Error> {
        let json = serde_json::to_string(answer).map_err(|e| Error::Internal(e.to_string()))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item(KEY, s(&format!("{ANSWER_PREFIX}{execution_arn}")))
            .item(ANSWER, s(&json))
            .item(EXPIRES, n(expires_at))
            .send()
            .await
            .map_err(|e| dynamo_error("PutItem", e))?;
        Ok(())
    }

    async fn pending_answer(&self, execution_arn: &str) -> Result<Option<PendingAnswer>, Error> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY, s(&format!("{ANSWER_PREFIX}{execution_arn}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| dynamo_error("GetItem", e))?;
        let Some(text) = out
            .item()
            .and_then(|i| i.get(ANSWER))
            .and_then(|v| v.as_s().ok())
        else {
            return Ok(None);
        };
        serde_json::from_str(text)
            .map(Some)
            .map_err(|e| Error::Internal(format!("the answer held for {execution_arn}: {e}")))
    }

    async fn held_answers(&self) -> Result<Vec<(String, u64)>, Error> {
        let items = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("begins_with(#key, :answer)")
            .expression_attribute_names("#key", KEY)
            .expression_attribute_values(":answer", s(ANSWER_PREFIX))
            .projection_expression("#key, #expires")
            .expression_attribute_names("#expires", EXPIRES)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| dynamo_error("Scan", e))?;
        Ok(items
            .iter()
            .filter_map(|item| {
                let key = item.get(KEY)?.as_s().ok()?;
                let expires = item.get(EXPIRES)?.as_n().ok()?.parse().ok()?;
                Some((key.strip_prefix(ANSWER_PREFIX)?.to_owned(), expires))
            })
            .collect())
    }

    async fn forget_answer(&self, execution_arn: &str) -> Result<(), Error> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(KEY, s(&format!("{ANSWER_PREFIX}{execution_arn}")))
            .send()
            .await
            .map_err(|e| dynamo_error("DeleteItem", e))?;
        Ok(())
    }
}
