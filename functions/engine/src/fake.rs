//! An in-memory AWS behind every port, for handler tests (feature `fake`): aliases with revisions that change
//! on every write, function versions, alarms, per-version metrics, hook functions and their calls, executions
//! and their histories. It keeps a log of every call, so a test can say "nothing was written", and it can be
//! told to fail an operation, so a test can say what a handler does when AWS answers badly. What only the SDK
//! can show (retries, HTTP 429, pagination, the request's wire shape) is tested with mocked SDK clients instead.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use safeshift_core::Error;
use safeshift_core::alias::{AliasState, AliasUpdate};
use safeshift_core::error::Resource;
use safeshift_core::gates::alarms::{AlarmEvidence, FiredAlarm};
use safeshift_core::gates::analysis::VersionMetrics;
use safeshift_core::hooks::HookResponse;
use safeshift_core::prepare::VersionConfig;

use crate::ports::{
    AliasLock, AnswerStack, ExecutionRecord, Interrupt, InvokeHook, InvokeMode, LockHolder,
    ManageAlias, MetricsQuery, OwnedAlias, PendingAnswer, PendingAnswers, ReadAlarms, ReadAlias,
    ReadExecution, ReadMetrics, ReadVersion, ReportTask, StartExecution, Watch, WatchAlarms,
    Watcher, WriteAlias,
};

/// The state machine the fake's executions belong to unless a test says otherwise.
pub const STATE_MACHINE: &str =
    "arn:aws:states:us-east-1:123456789012:stateMachine:safeshift-rollout";

/// A port call, as the fake logged it.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    CreateAlias {
        function: String,
        alias: String,
        version: String,
    },
    DeleteAlias {
        function: String,
        alias: String,
    },
    GetFunction {
        function: String,
    },
    HeldAnswers,
    StartExecution {
        name: String,
        input: serde_json::Value,
    },
    HoldAnswer {
        execution_arn: String,
    },
    PendingAnswer {
        execution_arn: String,
    },
    ForgetAnswer {
        execution_arn: String,
    },
    SendAnswer {
        url: String,
        body: serde_json::Value,
    },
    GetAlias {
        function: String,
        alias: String,
    },
    UpdateAlias {
        function: String,
        alias: String,
        update: AliasUpdate,
        revision_id: String,
    },
    GetVersion {
        function: String,
        version: String,
    },
    DescribeAlarms {
        names: Vec<String>,
    },
    VersionMetrics {
        function_name: String,
        alias: String,
        versions: [String; 2],
        window: safeshift_core::gates::analysis::Window,
        latency: bool,
    },
    Invoke {
        function: String,
        payload: serde_json::Value,
        mode: InvokeMode,
    },
    DescribeExecution {
        arn: String,
    },
    TaskOutputs {
        arn: String,
    },
    AcquireLock {
        key: String,
        execution_arn: String,
        replacing: Option<String>,
    },
    LockHolder {
        key: String,
    },
    ReleaseLock {
        key: String,
        execution_arn: String,
    },
    Watch {
        key: String,
        execution_arn: String,
        task_token: String,
    },
    Watchers {
        alarm: String,
    },
    RecordFired {
        key: String,
        execution_arn: String,
        alarm: String,
    },
    FailTask {
        task_token: String,
        error: String,
        cause: String,
    },
    SucceedTask {
        task_token: String,
        output: String,
    },
}

impl Call {
    /// The AWS operation the call stands for, as named in fault injection.
    pub fn operation(&self) -> &'static str {
        match self {
            Call::CreateAlias { .. } => "CreateAlias",
            Call::DeleteAlias { .. } => "DeleteAlias",
            Call::GetFunction { .. } => "GetFunction",
            Call::HeldAnswers => "Scan",
            Call::StartExecution { .. } => "StartExecution",
            Call::HoldAnswer { .. } => "PutItem",
            Call::PendingAnswer { .. } => "GetItem",
            Call::ForgetAnswer { .. } => "DeleteItem",
            Call::SendAnswer { .. } => "PUT ResponseURL",
            Call::GetAlias { .. } => "GetAlias",
            Call::UpdateAlias { .. } => "UpdateAlias",
            Call::GetVersion { .. } => "GetFunctionConfiguration",
            Call::DescribeAlarms { .. } => "DescribeAlarms",
            Call::VersionMetrics { .. } => "GetMetricData",
            Call::Invoke { .. } => "Invoke",
            Call::DescribeExecution { .. } => "DescribeExecution",
            Call::TaskOutputs { .. } => "GetExecutionHistory",
            Call::AcquireLock { .. } => "PutItem",
            Call::LockHolder { .. } => "GetItem",
            Call::ReleaseLock { .. } => "DeleteItem",
            Call::Watch { .. } | Call::RecordFired { .. } => "UpdateItem",
            Call::Watchers { .. } => "Scan",
            Call::FailTask { .. } => "SendTaskFailure",
            Call::SucceedTask { .. } => "SendTaskSuccess",
        }
    }
}

#[derive(Debug, Default)]
struct World {
    aliases: BTreeMap<(String, String), AliasState>,
    versions: BTreeMap<(String, String), VersionConfig>,
    /// Versions whose configuration is answered from a queue (Pending, then Active), by (function, version).
    version_sequences: BTreeMap<(String, String), VecDeque<VersionConfig>>,
    alarms: Vec<AlarmEvidence>,
    metrics: BTreeMap<String, VersionMetrics>,
    hooks: BTreeMap<String, VecDeque<HookResponse>>,
    executions: BTreeMap<String, (ExecutionRecord, Vec<String>)>,
    locks: BTreeMap<String, (LockHolder, u64)>,
    /// The task each hold waits in now and when its state was entered (Unix ms), by lock key.
    task_tokens: BTreeMap<String, (String, u64)>,
    /// Task tokens a task still waits with: failing one ends it.
    waiting: BTreeSet<String>,
    /// The next UpdateAlias lands, then answers this error: a write whose answer was lost and whose retry found
    /// the revision it had itself changed.
    lost_answer: Option<Error>,
    faults: BTreeMap<&'static str, VecDeque<Error>>,
    /// Faults for the next UpdateAlias of one function only, by function: a release's write failing on one of
    /// its aliases while the others land.
    write_faults: BTreeMap<String, VecDeque<Error>>,
    /// A change someone else makes to an alias, by (function, alias), just before the next UpdateAlias lands.
    interleaved_write: Option<((String, String), AliasUpdate)>,
    calls: Vec<Call>,
    revisions: u64,
    /// Alias descriptions, by (function, alias).
    descriptions: BTreeMap<(String, String), String>,
    /// CloudFormation answers held for executions, by execution ARN.
    held_answers: BTreeMap<String, (PendingAnswer, u64)>,
    /// The stack that created each function (its `aws:cloudformation:stack-id` tag).
    stacks: BTreeMap<String, String>,
}

impl World {
    fn next_revision(&mut self) -> String {
        self.revisions += 1;
        format!("rev-{}", self.revisions)
    }

    /// Logs the call and answers the next fault injected for its operation, if any.
    fn call(&mut self, call: Call) -> Result<(), Error> {
        let operation = call.operation();
        self.calls.push(call);
        match self.faults.get_mut(operation).and_then(VecDeque::pop_front) {
            Some(fault) => Err(fault),
            None => Ok(()),
        }
    }
}

/// The fake AWS. Clones share one world: a test keeps one to arrange and inspect, the handler owns another.
#[derive(Debug, Clone, Default)]
pub struct FakeAws {
    world: Arc<Mutex<World>>,
}

/// A published, Active version with `role`, as a test usually wants it.
pub fn active_version(version: &str, role: &str) -> VersionConfig {
    VersionConfig {
        version: version.into(),
        state: "Active".into(),
        last_update_status: Some("Successful".into()),
        state_reason: None,
        role: Some(role.into()),
        dead_letter_target: None,
    }
}

impl FakeAws {
    pub fn new() -> Self {
        Self::default()
    }

    fn world(&self) -> MutexGuard<'_, World> {
        // A test that panicked while holding the lock has already failed; its world is still readable.
        self.world
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A function with `$LATEST` and each of `versions` published and Active, all with one role.
    pub fn function(&self, function: &str, versions: &[&str]) -> &Self {
        for v in std::iter::once(&"$LATEST").chain(versions) {
            self.version(
                function,
                active_version(v, "arn:aws:iam::123456789012:role/app"),
            );
        }
        self
    }

    /// Sets one version's configuration.
    pub fn version(&self, function: &str, config: VersionConfig) -> &Self {
        self.world()
            .versions
            .insert((function.into(), config.version.clone()), config);
        self
    }

    /// Answers a version's configuration from `configs` in turn, then keeps answering the last one.
    pub fn version_sequence(&self, function: &str, configs: Vec<VersionConfig>) -> &Self {
        let key = (function.to_owned(), configs[0].version.clone());
        self.world().version_sequences.insert(key, configs.into());
        self
    }

    /// Creates or changes an alias as a person would: a new revision, whatever was there.
    pub fn set_alias(&self, function: &str, alias: &str, version: &str, weights: &[(&str, f64)]) {
        let mut world = self.world();
        let revision_id = world.next_revision();
        world.aliases.insert(
            (function.into(), alias.into()),
            AliasState::new(version, weights, &revision_id),
        );
    }

    /// Someone else changes the alias between a handler's read and its next write (after the write is logged,
    /// before it lands), as a person would: a new revision, so the handler's write carries a stale one.
    pub fn set_alias_before_next_write(
        &self,
        function: &str,
        alias: &str,
        version: &str,
        weights: &[(&str, f64)],
    ) -> &Self {
        let change = AliasUpdate {
            function_version: version.into(),
            weights: weights.iter().map(|(v, w)| (v.to_string(), *w)).collect(),
        };
        self.world().interleaved_write = Some(((function.into(), alias.into()), change));
        self
    }

    /// The alias as it is now, without logging a call.
    pub fn alias(&self, function: &str, alias: &str) -> Option<AliasState> {
        self.world()
            .aliases
            .get(&(function.to_owned(), alias.to_owned()))
            .cloned()
    }

    /// Sets an alarm's state (a metric alarm unless `kind` says otherwise).
    pub fn alarm(&self, name: &str, state: &str, reason: &str) -> &Self {
        self.alarm_of_kind(name, "metric", state, reason)
    }

    /// Sets an alarm's state, changed at `updated_at` (RFC 3339).
    pub fn alarm_since(&self, name: &str, state: &str, reason: &str, updated_at: &str) -> &Self {
        self.alarm(name, state, reason);
        if let Some(a) = self.world().alarms.iter_mut().find(|a| a.name == name) {
            a.updated_at = Some(updated_at.into());
        }
        self
    }

    pub fn alarm_of_kind(&self, name: &str, kind: &str, state: &str, reason: &str) -> &Self {
        let mut world = self.world();
        world.alarms.retain(|a| a.name != name);
        world.alarms.push(AlarmEvidence {
            name: name.into(),
            kind: kind.into(),
            state: state.into(),
            reason: reason.into(),
            updated_at: Some("2026-11-29T10:00:00Z".into()),
        });
        self
    }

    /// What one version served in any window asked about.
    pub fn metrics(&self, version: &str, invocations: u64, errors: u64, throttles: u64) -> &Self {
        self.metrics_with_p99(version, invocations, errors, throttles, None)
    }

    /// `function`'s own metrics for `version`, over those [`FakeAws::metrics`] sets for every function: a
    /// release's targets, each judged on its own.
    pub fn metrics_of(
        &self,
        function: &str,
        version: &str,
        invocations: u64,
        errors: u64,
    ) -> &Self {
        self.world().metrics.insert(
            format!("{function}/{version}"),
            VersionMetrics {
                version: version.into(),
                invocations,
                errors,
                throttles: 0,
                p99_ms: None,
            },
        );
        self
    }

    pub fn metrics_with_p99(
        &self,
        version: &str,
        invocations: u64,
        errors: u64,
        throttles: u64,
        p99_ms: Option<f64>,
    ) -> &Self {
        self.world().metrics.insert(
            version.into(),
            VersionMetrics {
                version: version.into(),
                invocations,
                errors,
                throttles,
                p99_ms,
            },
        );
        self
    }

    /// A hook function that exists; it answers `null` (a pass) unless told otherwise with [`Self::hook_answers`].
    pub fn hook(&self, name: &str) -> &Self {
        self.world().hooks.entry(name.into()).or_default();
        self.hook_function(name)
    }

    /// The hook's function exists (Prepare looks it up), with `$LATEST` and version 1.
    fn hook_function(&self, name: &str) -> &Self {
        for v in ["$LATEST", "1"] {
            self.version(
                name,
                active_version(v, "arn:aws:iam::123456789012:role/hook"),
            );
        }
        self
    }

    /// The hook's next answer to a synchronous invocation.
    pub fn hook_answers(&self, name: &str, function_error: Option<&str>, payload: &str) -> &Self {
        self.world()
            .hooks
            .entry(name.into())
            .or_default()
            .push_back(HookResponse {
                function_error: function_error.map(str::to_owned),
                payload: payload.as_bytes().to_vec(),
            });
        self.hook_function(name)
    }

    /// An execution of [`STATE_MACHINE`] (its name is the ARN's last part), its status and input, and its
    /// successful tasks' outputs, oldest first.
    pub fn execution(&self, arn: &str, status: &str, input: Option<&str>, outputs: Vec<String>) {
        self.execution_of(STATE_MACHINE, arn, status, input, outputs);
    }

    pub fn execution_of(
        &self,
        state_machine_arn: &str,
        arn: &str,
        status: &str,
        input: Option<&str>,
        outputs: Vec<String>,
    ) {
        self.world().executions.insert(
            arn.into(),
            (
                ExecutionRecord {
                    name: arn.rsplit(':').next().unwrap_or_default().into(),
                    state_machine_arn: state_machine_arn.into(),
                    status: status.into(),
                    input: input.map(str::to_owned),
                    stopped_at: (status != "RUNNING").then_some(1_000),
                    error: None,
                    cause: None,
                },
                outputs,
            ),
        );
    }

    /// Ends an execution with `status` at `stopped_at` (Unix seconds).
    pub fn end_execution(&self, arn: &str, status: &str, stopped_at: u64) {
        if let Some((record, _)) = self.world().executions.get_mut(arn) {
            record.status = status.into();
            record.stopped_at = Some(stopped_at);
        }
    }

    /// Ends an execution FAILED with `error` and `cause`, as a rollback ends it.
    pub fn fail_execution(&self, arn: &str, error: &str, cause: &str) {
        if let Some((record, _)) = self.world().executions.get_mut(arn) {
            record.status = "FAILED".into();
            record.stopped_at = Some(1_000);
            record.error = Some(error.into());
            record.cause = Some(cause.into());
        }
    }

    /// Appends a successful task's output to an execution's history.
    pub fn record_output(&self, arn: &str, output: String) {
        if let Some((_, outputs)) = self.world().executions.get_mut(arn) {
            outputs.push(output);
        }
    }

    /// Who holds the lock on `key` now, without logging a call.
    pub fn lock(&self, key: &str) -> Option<LockHolder> {
        self.world().locks.get(key).map(|(h, _)| h.clone())
    }

    /// The lock on `key` goes away, without logging a call (as another process's release would).
    pub fn release_lock_quietly(&self, key: &str) {
        let mut world = self.world();
        world.locks.remove(key);
        world.task_tokens.remove(key);
    }

    /// A task waits with `task_token` (as a `.waitForTaskToken` state does until answered or timed out).
    pub fn task_waits(&self, task_token: &str) -> &Self {
        self.world().waiting.insert(task_token.into());
        self
    }

    /// The task waiting with `task_token` ended (its bake ran out): failing it finds nothing.
    pub fn task_ended(&self, task_token: &str) {
        self.world().waiting.remove(task_token);
    }

    /// Forgets the calls logged so far: what a test arranged through handlers is not what it examines.
    pub fn clear_calls(&self) {
        self.world().calls.clear();
    }

    /// Whether a task still waits with `task_token`.
    pub fn is_waiting(&self, task_token: &str) -> bool {
        self.world().waiting.contains(task_token)
    }

    /// The task the hold on `key` waits in, as registered.
    pub fn task_token(&self, key: &str) -> Option<String> {
        self.world()
            .task_tokens
            .get(key)
            .map(|(token, _)| token.clone())
    }

    /// Someone holds the lock on `key` until `expires_at`.
    pub fn hold_lock(&self, key: &str, holder: LockHolder, expires_at: u64) {
        self.world().locks.insert(key.into(), (holder, expires_at));
    }

    /// The next UpdateAlias lands, then answers `error`: a write whose answer was lost and whose retry found
    /// the revision it had changed itself.
    pub fn lose_next_write_answer(&self, error: Error) {
        self.world().lost_answer = Some(error);
    }

    /// The next call of `operation` (as [`Call::operation`] names it) fails with `error`; queue several to fail
    /// several calls.
    pub fn fail_next(&self, operation: &'static str, error: Error) -> &Self {
        self.world()
            .faults
            .entry(operation)
            .or_default()
            .push_back(error);
        self
    }

    /// The next UpdateAlias of `function` fails with `error`, before it lands; other functions' writes land.
    pub fn fail_next_write_of(&self, function: &str, error: Error) -> &Self {
        self.world()
            .write_faults
            .entry(function.to_owned())
            .or_default()
            .push_back(error);
        self
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.world().calls.clone()
    }

    /// The UpdateAlias calls so far (whether they landed or not).
    pub fn writes(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| matches!(c, Call::UpdateAlias { .. }))
            .collect()
    }

    /// The answers sent to CloudFormation so far: each response document.
    pub fn sent_answers(&self) -> Vec<serde_json::Value> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::SendAnswer { body, .. } => Some(body),
                _ => None,
            })
            .collect()
    }

    /// The answer held for an execution, if any.
    pub fn held_answer(&self, execution_arn: &str) -> Option<PendingAnswer> {
        self.world()
            .held_answers
            .get(execution_arn)
            .map(|(a, _)| a.clone())
    }

    /// The stack that created `function` (as CloudFormation tags it).
    pub fn owned_by_stack(&self, function: &str, stack_id: &str) -> &Self {
        self.world().stacks.insert(function.into(), stack_id.into());
        self
    }

    /// The description an alias carries.
    pub fn describe_alias_as(&self, function: &str, alias: &str, description: &str) {
        self.world()
            .descriptions
            .insert((function.into(), alias.into()), description.into());
    }

    /// The hook invocations so far.
    pub fn hook_calls(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| matches!(c, Call::Invoke { .. }))
            .collect()
    }
}

impl ReadAlias for FakeAws {
    async fn get_alias(&self, function: &str, alias: &str) -> Result<AliasState, Error> {
        let mut world = self.world();
        world.call(Call::GetAlias {
            function: function.into(),
            alias: alias.into(),
        })?;
        world
            .aliases
            .get(&(function.to_owned(), alias.to_owned()))
            .cloned()
            .ok_or_else(|| Error::ResourceNotFound {
                resource: Resource::Alias,
                name: format!("{function}:{alias}"),
            })
    }
}

impl WriteAlias for FakeAws {
    async fn update_alias(
        &self,
        function: &str,
        alias: &str,
        update: &AliasUpdate,
        revision_id: &str,
    ) -> Result<AliasState, Error> {
        let mut world = self.world();
        world.call(Call::UpdateAlias {
            function: function.into(),
            alias: alias.into(),
            update: update.clone(),
            revision_id: revision_id.into(),
        })?;
        if let Some(fault) = world
            .write_faults
            .get_mut(function)
            .and_then(VecDeque::pop_front)
        {
            return Err(fault);
        }
        if let Some((key, change)) = world.interleaved_write.take() {
            let revision_id = world.next_revision();
            world.aliases.insert(
                key,
                AliasState {
                    function_version: change.function_version,
                    weights: change.weights,
                    revision_id,
                },
            );
        }
        let key = (function.to_owned(), alias.to_owned());
        let current = world
            .aliases
            .get(&key)
            .ok_or_else(|| Error::ResourceNotFound {
                resource: Resource::Alias,
                name: format!("{function}:{alias}"),
            })?;
        // Lambda's PreconditionFailedException, as the adapter classifies it.
        if current.revision_id != revision_id {
            return Err(Error::AliasConflict {
                alias: alias.into(),
                reason: format!(
                    "its revision is no longer {revision_id}: someone else updated it; leaving it as it is"
                ),
            });
        }
        let written = AliasState {
            function_version: update.function_version.clone(),
            weights: update.weights.clone(),
            revision_id: world.next_revision(),
        };
        world.aliases.insert(key, written.clone());
        match world.lost_answer.take() {
            Some(error) => Err(error),
            None => Ok(written),
        }
    }
}

impl ReadVersion for FakeAws {
    async fn get_version(&self, function: &str, version: &str) -> Result<VersionConfig, Error> {
        let mut world = self.world();
        world.call(Call::GetVersion {
            function: function.into(),
            version: version.into(),
        })?;
        let key = (function.to_owned(), version.to_owned());
        if let Some(sequence) = world.version_sequences.get_mut(&key) {
            let config = if sequence.len() > 1 {
                sequence.pop_front()
            } else {
                sequence.front().cloned()
            };
            if let Some(config) = config {
                return Ok(config);
            }
        }
        world
            .versions
            .get(&key)
            .cloned()
            .ok_or_else(|| Error::ResourceNotFound {
                resource: Resource::Version,
                name: format!("{function}:{version}"),
            })
    }
}

impl ReadAlarms for FakeAws {
    async fn describe_alarms(&self, names: &[String]) -> Result<Vec<AlarmEvidence>, Error> {
        let mut world = self.world();
        world.call(Call::DescribeAlarms {
            names: names.to_vec(),
        })?;
        Ok(world
            .alarms
            .iter()
            .filter(|a| names.contains(&a.name))
            .cloned()
            .collect())
    }
}

impl ReadMetrics for FakeAws {
    async fn version_metrics(&self, q: &MetricsQuery<'_>) -> Result<[VersionMetrics; 2], Error> {
        let mut world = self.world();
        world.call(Call::VersionMetrics {
            function_name: q.function_name.into(),
            alias: q.alias.into(),
            versions: q.versions.map(str::to_owned),
            window: q.window,
            latency: q.latency,
        })?;
        Ok(q.versions.map(|v| {
            let mut m = world
                .metrics
                .get(&format!("{}/{v}", q.function_name))
                .or_else(|| world.metrics.get(v))
                .cloned()
                .unwrap_or_else(|| VersionMetrics::empty(v));
            if !q.latency {
                m.p99_ms = None;
            }
            m
        }))
    }
}

impl InvokeHook for FakeAws {
    async fn invoke(
        &self,
        function: &str,
        payload: Vec<u8>,
        mode: InvokeMode,
    ) -> Result<HookResponse, Error> {
        let mut world = self.world();
        world.call(Call::Invoke {
            function: function.into(),
            payload: serde_json::from_slice(&payload).unwrap_or(serde_json::Value::Null),
            mode,
        })?;
        let answers = world
            .hooks
            .get_mut(function)
            .ok_or_else(|| Error::ResourceNotFound {
                resource: Resource::Hook,
                name: function.into(),
            })?;
        let answer = match mode {
            // An asynchronous invocation answers only that it was queued.
            InvokeMode::Async => None,
            InvokeMode::Sync => answers.pop_front(),
        };
        Ok(answer.unwrap_or(HookResponse {
            function_error: None,
            payload: b"null".to_vec(),
        }))
    }
}

impl ReadExecution for FakeAws {
    async fn describe_execution(&self, arn: &str) -> Result<ExecutionRecord, Error> {
        let mut world = self.world();
        world.call(Call::DescribeExecution { arn: arn.into() })?;
        world
            .executions
            .get(arn)
            .map(|(record, _)| record.clone())
            .ok_or_else(|| Error::ResourceNotFound {
                resource: Resource::Execution,
                name: arn.into(),
            })
    }

    async fn task_outputs(&self, arn: &str) -> Result<Vec<String>, Error> {
        let mut world = self.world();
        world.call(Call::TaskOutputs { arn: arn.into() })?;
        // The port answers newest first, as the history is read in reverse.
        Ok(world
            .executions
            .get(arn)
            .map(|(_, outputs)| outputs.iter().rev().cloned().collect())
            .unwrap_or_default())
    }
}

impl AliasLock for FakeAws {
    async fn acquire(
        &self,
        key: &str,
        holder: &LockHolder,
        expires_at: u64,
        replacing: Option<&str>,
    ) -> Result<bool, Error> {
        let mut world = self.world();
        world.call(Call::AcquireLock {
            key: key.into(),
            execution_arn: holder.execution_arn.clone(),
            replacing: replacing.map(str::to_owned),
        })?;
        // The adapter's condition: free, ours, lapsed, or held by the execution being replaced.
        let free = match world.locks.get(key) {
            None => true,
            Some((h, expires)) => {
                h.execution_arn == holder.execution_arn
                    || *expires < holder.acquired_at
                    || replacing == Some(h.execution_arn.as_str())
            }
        };
        if free {
            // A put replaces the whole item: a fired alarm or a wait of an earlier holder does not carry over.
            let holder = LockHolder {
                fired: None,
                ..holder.clone()
            };
            world.locks.insert(key.into(), (holder, expires_at));
            world.task_tokens.remove(key);
        }
        Ok(free)
    }

    async fn holder(&self, key: &str) -> Result<Option<(LockHolder, u64)>, Error> {
        let mut world = self.world();
        world.call(Call::LockHolder { key: key.into() })?;
        Ok(world.locks.get(key).cloned())
    }

    async fn release(&self, key: &str, execution_arn: &str) -> Result<(), Error> {
        let mut world = self.world();
        world.call(Call::ReleaseLock {
            key: key.into(),
            execution_arn: execution_arn.into(),
        })?;
        if world
            .locks
            .get(key)
            .is_some_and(|(h, _)| h.execution_arn == execution_arn)
        {
            world.locks.remove(key);
            world.task_tokens.remove(key);
        }
        Ok(())
    }
}

impl WatchAlarms for FakeAws {
    async fn watch(
        &self,
        key: &str,
        execution_arn: &str,
        task_token: &str,
        since: u64,
    ) -> Result<Watch, Error> {
        let mut world = self.world();
        world.call(Call::Watch {
            key: key.into(),
            execution_arn: execution_arn.into(),
            task_token: task_token.into(),
        })?;
        // The adapter's condition: held by this execution, no alarm recorded, no later wait registered.
        let later = world
            .task_tokens
            .get(key)
            .is_some_and(|(_, registered)| *registered > since);
        let watch = match world.locks.get(key) {
            Some((h, _)) if h.execution_arn == execution_arn => match &h.fired {
                Some(fired) => Watch::Fired(fired.clone()),
                None if later => Watch::Superseded,
                None => Watch::Watching,
            },
            _ => Watch::NotHeld,
        };
        if watch == Watch::Watching {
            world
                .task_tokens
                .insert(key.into(), (task_token.into(), since));
        }
        Ok(watch)
    }

    async fn watchers(&self, alarm: &str) -> Result<Vec<Watcher>, Error> {
        let mut world = self.world();
        world.call(Call::Watchers {
            alarm: alarm.into(),
        })?;
        Ok(world
            .locks
            .iter()
            .filter(|(_, (h, _))| h.alarms.iter().any(|a| a == alarm))
            .map(|(key, (h, _))| Watcher {
                key: key.clone(),
                execution_arn: h.execution_arn.clone(),
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
        let mut world = self.world();
        world.call(Call::RecordFired {
            key: key.into(),
            execution_arn: execution_arn.into(),
            alarm: fired.alarm.clone(),
        })?;
        let task_token = world.task_tokens.get(key).map(|(token, _)| token.clone());
        // The adapter's condition: held by this execution, which read its alarms no later than the change.
        let Some((holder, _)) = world.locks.get_mut(key).filter(|(h, _)| {
            h.execution_arn == execution_arn && h.alarms_checked_at.is_none_or(|c| c <= changed_at)
        }) else {
            return Ok(None);
        };
        let fired = holder.fired.get_or_insert_with(|| fired.clone()).clone();
        Ok(Some(Interrupt { fired, task_token }))
    }
}

impl ReportTask for FakeAws {
    async fn fail_task(&self, task_token: &str, error: &str, cause: &str) -> Result<bool, Error> {
        let mut world = self.world();
        world.call(Call::FailTask {
            task_token: task_token.into(),
            error: error.into(),
            cause: cause.into(),
        })?;
        Ok(world.waiting.remove(task_token))
    }

    async fn succeed_task(&self, task_token: &str, output: &str) -> Result<bool, Error> {
        let mut world = self.world();
        world.call(Call::SucceedTask {
            task_token: task_token.into(),
            output: output.into(),
        })?;
        Ok(world.waiting.remove(task_token))
    }
}

fn alias_arn(function: &str, alias: &str) -> String {
    format!("arn:aws:lambda:us-east-1:123456789012:function:{function}:{alias}")
}

impl ManageAlias for FakeAws {
    async fn find_alias(&self, function: &str, alias: &str) -> Result<Option<OwnedAlias>, Error> {
        let mut world = self.world();
        world.call(Call::GetAlias {
            function: function.into(),
            alias: alias.into(),
        })?;
        let key = (function.to_owned(), alias.to_owned());
        if !world
            .versions
            .contains_key(&(function.to_owned(), "$LATEST".to_owned()))
        {
            return Err(Error::ResourceNotFound {
                resource: Resource::Function,
                name: function.into(),
            });
        }
        Ok(world.aliases.get(&key).cloned().map(|state| OwnedAlias {
            arn: alias_arn(function, alias),
            state,
            description: world.descriptions.get(&key).cloned(),
        }))
    }

    async fn create_alias(
        &self,
        function: &str,
        alias: &str,
        version: &str,
        description: &str,
    ) -> Result<OwnedAlias, Error> {
        let mut world = self.world();
        world.call(Call::CreateAlias {
            function: function.into(),
            alias: alias.into(),
            version: version.into(),
        })?;
        let key = (function.to_owned(), alias.to_owned());
        if world.aliases.contains_key(&key) {
            return Err(Error::AliasConflict {
                alias: alias.into(),
                reason: "it exists already".into(),
            });
        }
        if !world
            .versions
            .contains_key(&(function.to_owned(), version.to_owned()))
        {
            return Err(Error::ResourceNotFound {
                resource: Resource::Version,
                name: format!("{function}:{version}"),
            });
        }
        let state = AliasState {
            function_version: version.into(),
            weights: BTreeMap::new(),
            revision_id: world.next_revision(),
        };
        world.aliases.insert(key.clone(), state.clone());
        world.descriptions.insert(key, description.into());
        Ok(OwnedAlias {
            arn: alias_arn(function, alias),
            state,
            description: Some(description.into()),
        })
    }

    async fn owning_stack(&self, function: &str) -> Result<Option<String>, Error> {
        let mut world = self.world();
        world.call(Call::GetFunction {
            function: function.into(),
        })?;
        Ok(world.stacks.get(function).cloned())
    }

    async fn delete_alias(&self, function: &str, alias: &str) -> Result<(), Error> {
        let mut world = self.world();
        world.call(Call::DeleteAlias {
            function: function.into(),
            alias: alias.into(),
        })?;
        let key = (function.to_owned(), alias.to_owned());
        world.aliases.remove(&key);
        world.descriptions.remove(&key);
        Ok(())
    }
}

impl StartExecution for FakeAws {
    async fn start_execution(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &str,
    ) -> Result<String, Error> {
        let mut world = self.world();
        world.call(Call::StartExecution {
            name: name.into(),
            input: serde_json::from_str(input).unwrap_or(serde_json::Value::Null),
        })?;
        let arn = crate::guard::Scope::new(state_machine_arn).execution_arn(name);
        world.executions.entry(arn.clone()).or_insert((
            ExecutionRecord {
                name: name.into(),
                state_machine_arn: state_machine_arn.into(),
                status: "RUNNING".into(),
                input: Some(input.into()),
                stopped_at: None,
                error: None,
                cause: None,
            },
            Vec::new(),
        ));
        Ok(arn)
    }
}

impl PendingAnswers for FakeAws {
    async fn hold_answer(
        &self,
        execution_arn: &str,
        answer: &PendingAnswer,
        expires_at: u64,
    ) -> Result<(), Error> {
        let mut world = self.world();
        world.call(Call::HoldAnswer {
            execution_arn: execution_arn.into(),
        })?;
        world
            .held_answers
            .insert(execution_arn.into(), (answer.clone(), expires_at));
        Ok(())
    }

    async fn pending_answer(&self, execution_arn: &str) -> Result<Option<PendingAnswer>, Error> {
        let mut world = self.world();
        world.call(Call::PendingAnswer {
            execution_arn: execution_arn.into(),
        })?;
        Ok(world
            .held_answers
            .get(execution_arn)
            .map(|(a, _)| a.clone()))
    }

    async fn held_answers(&self) -> Result<Vec<(String, u64)>, Error> {
        let mut world = self.world();
        world.call(Call::HeldAnswers)?;
        Ok(world
            .held_answers
            .iter()
            .map(|(arn, (_, expires))| (arn.clone(), *expires))
            .collect())
    }

    async fn forget_answer(&self, execution_arn: &str) -> Result<(), Error> {
        let mut world = self.world();
        world.call(Call::ForgetAnswer {
            execution_arn: execution_arn.into(),
        })?;
        world.held_answers.remove(execution_arn);
        Ok(())
    }
}

impl AnswerStack for FakeAws {
    async fn send_answer(&self, url: &str, body: &str) -> Result<bool, Error> {
        self.world().call(Call::SendAnswer {
            url: url.into(),
            body: serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
        })?;
        // A URL the test marks expired refuses, as S3 does once a presigned URL lapsed.
        Ok(!url.contains("expired"))
    }

    fn check_url(&self, url: &str) -> Result<(), String> {
        if url.starts_with("https://") {
            Ok(())
        } else {
            Err(format!("{url} is not HTTPS"))
        }
    }
}
