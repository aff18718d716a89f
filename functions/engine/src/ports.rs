//! One narrow trait per capability the functions need. The AWS adapters (`crate::aws`) implement them with the
//! SDK; the in-memory fake (`crate::fake`, feature `fake`) implements them all for handler tests.

use std::future::Future;

use safeshift_core::Error;
use safeshift_core::alias::{AliasState, AliasUpdate};
use safeshift_core::gates::alarms::{AlarmEvidence, FiredAlarm};
use safeshift_core::gates::analysis::{VersionMetrics, Window};
use safeshift_core::hooks::HookResponse;
use safeshift_core::prepare::VersionConfig;

/// Reads an alias.
pub trait ReadAlias: Send + Sync {
    /// `ResourceNotFound` when the function or the alias does not exist.
    fn get_alias(
        &self,
        function: &str,
        alias: &str,
    ) -> impl Future<Output = Result<AliasState, Error>> + Send;
}

/// Writes an alias, guarded by the revision the caller read: never a blind overwrite.
pub trait WriteAlias: Send + Sync {
    /// `AliasConflict` when the alias's revision is no longer `revision_id`.
    fn update_alias(
        &self,
        function: &str,
        alias: &str,
        update: &AliasUpdate,
        revision_id: &str,
    ) -> impl Future<Output = Result<AliasState, Error>> + Send;
}

/// Reads a function version's configuration.
pub trait ReadVersion: Send + Sync {
    /// `ResourceNotFound` when the function or that version does not exist.
    fn get_version(
        &self,
        function: &str,
        version: &str,
    ) -> impl Future<Output = Result<VersionConfig, Error>> + Send;
}

/// Reads CloudWatch alarms.
pub trait ReadAlarms: Send + Sync {
    /// The alarms found among `names`, metric and composite, across every page. Missing names are simply absent.
    fn describe_alarms(
        &self,
        names: &[String],
    ) -> impl Future<Output = Result<Vec<AlarmEvidence>, Error>> + Send;
}

/// Which Lambda metrics to read: two versions of one function, as invoked through one alias, over one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsQuery<'a> {
    /// The function's name (the `FunctionName` dimension; never an ARN).
    pub function_name: &'a str,
    pub alias: &'a str,
    /// The target version first, then the stable one.
    pub versions: [&'a str; 2],
    pub window: Window,
    /// Also read p99 Duration.
    pub latency: bool,
}

/// Reads CloudWatch metrics.
pub trait ReadMetrics: Send + Sync {
    /// Each version's Invocations, Errors and Throttles (and p99 Duration when asked) over the window, in the
    /// query's order, read in one batched request. A version without data gets zero counts, not an error.
    fn version_metrics(
        &self,
        query: &MetricsQuery<'_>,
    ) -> impl Future<Output = Result<[VersionMetrics; 2], Error>> + Send;
}

/// How a hook is invoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvokeMode {
    /// Wait for the hook's answer.
    Sync,
    /// Start it and return; it reports back itself (with a task token).
    Async,
}

/// Invokes a hook function.
pub trait InvokeHook: Send + Sync {
    fn invoke(
        &self,
        function: &str,
        payload: Vec<u8>,
        mode: InvokeMode,
    ) -> impl Future<Output = Result<HookResponse, Error>> + Send;
}

/// What the engine needs to know of an execution: whether it is running, whose it is, and what it was asked.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionRecord {
    /// The execution's name (the deployment id).
    pub name: String,
    pub state_machine_arn: String,
    /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED, PENDING_REDRIVE.
    pub status: String,
    /// The execution's input, as JSON text.
    pub input: Option<String>,
    /// When it ended, in Unix seconds; `None` while it runs.
    pub stopped_at: Option<u64>,
    /// Why it failed, when it did: the error name and cause its last state ended with.
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// Reads Step Functions executions.
pub trait ReadExecution: Send + Sync {
    fn describe_execution(
        &self,
        arn: &str,
    ) -> impl Future<Output = Result<ExecutionRecord, Error>> + Send;
    /// The outputs of the execution's successful tasks, newest first.
    fn task_outputs(&self, arn: &str) -> impl Future<Output = Result<Vec<String>, Error>> + Send;
}

/// Who holds an alias's deployment lock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockHolder {
    /// The execution that holds it: its ARN is what the engine checks (is it still running?).
    pub execution_arn: String,
    pub deployment_id: String,
    /// When it was taken, in Unix seconds.
    pub acquired_at: u64,
    /// The stable version the holder's Prepare found: what every later step of that execution must still
    /// claim, so a forged rollout cannot name another.
    pub stable_version: Option<String>,
    /// When Prepare read the alarms (Unix seconds): an alarm that changed before then is not this holder's.
    pub alarms_checked_at: Option<u64>,
    /// The alarms the holder's deployment lists: a listed alarm's state change interrupts the holder.
    pub alarms: Vec<String>,
    /// The first listed alarm that went to ALARM since the lock was taken (written by the alarm events, never by
    /// [`AliasLock::acquire`]).
    pub fired: Option<FiredAlarm>,
}

/// The per-alias deployment lock: one deployment per alias, taken atomically in Prepare.
pub trait AliasLock: Send + Sync {
    /// Takes the lock on `key` for `holder` — or confirms it is already theirs (a retried Prepare), or takes it
    /// over from `replacing`, an execution found to have ended. `false` when someone else holds it. The lock
    /// lapses at `expires_at` (Unix seconds), past the longest execution, whatever happens to its holder.
    fn acquire(
        &self,
        key: &str,
        holder: &LockHolder,
        expires_at: u64,
        replacing: Option<&str>,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Who holds the lock on `key`, if anyone (expired locks included: the caller judges them).
    fn holder(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<(LockHolder, u64)>, Error>> + Send;

    /// Releases the lock on `key` if `execution_arn` holds it; anyone else's lock is left as it is.
    fn release(
        &self,
        key: &str,
        execution_arn: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// A hold on an alias whose deployment lists an alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watcher {
    /// The lock's key (`function:alias`).
    pub key: String,
    pub execution_arn: String,
}

/// What registering a wait found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watch {
    /// The wait is registered: an alarm event fails it at once.
    Watching,
    /// A wait the execution entered later is registered already (this registration arrived late): left as is.
    Superseded,
    /// A listed alarm fired since the lock was taken: the deployment must not wait, it fails.
    Fired(FiredAlarm),
    /// The execution does not hold the alias (any more).
    NotHeld,
}

/// What recording a fired alarm against a hold found: the record that stands (the first alarm that fired) and
/// the task the holder waits in now, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interrupt {
    pub fired: FiredAlarm,
    pub task_token: Option<String>,
}

/// Where a deployment's waits are watched: on its hold of the alias, so that the hold, the alarms it lists, the
/// task it waits in and the alarm that fired are one item, written atomically by the two sides.
pub trait WatchAlarms: Send + Sync {
    /// Registers `task_token` as the task `execution_arn` waits in now, on its hold of `key`, unless a wait
    /// entered after `since` (the state's entry time, Unix milliseconds) is registered already; refused when an
    /// alarm already fired against the hold.
    fn watch(
        &self,
        key: &str,
        execution_arn: &str,
        task_token: &str,
        since: u64,
    ) -> impl Future<Output = Result<Watch, Error>> + Send;

    /// Every hold whose deployment lists `alarm`.
    fn watchers(&self, alarm: &str) -> impl Future<Output = Result<Vec<Watcher>, Error>> + Send;

    /// Records `fired`, which changed at `changed_at` (Unix seconds), against `execution_arn`'s hold of `key` (a
    /// first record stays); `None` when that execution does not hold the alias, or read its alarms after the
    /// change (a late or redelivered event about an earlier deployment's alarm).
    fn record_fired(
        &self,
        key: &str,
        execution_arn: &str,
        fired: &FiredAlarm,
        changed_at: u64,
    ) -> impl Future<Output = Result<Option<Interrupt>, Error>> + Send;
}

/// Answers a task that waits with a task token.
pub trait ReportTask: Send + Sync {
    /// Fails the task with `error` and `cause`. `false` when no task waits with the token any more (it ended).
    fn fail_task(
        &self,
        task_token: &str,
        error: &str,
        cause: &str,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Ends the task with `output`. `false` when no task waits with the token any more (it ended).
    fn succeed_task(
        &self,
        task_token: &str,
        output: &str,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
}

/// Publishes lifecycle events, best effort: it never fails, and never takes longer than its own bound, so a
/// deployment is never failed or held up by its notifications. Object-safe, so a handler holds any publisher
/// (`Arc<dyn Publish>`) without another type parameter; [`NoEvents`] publishes nothing.
pub trait Publish: Send + Sync {
    fn publish<'a>(
        &'a self,
        event: &'a safeshift_core::events::LifecycleEvent,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// The publisher of a handler built without one.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl Publish for NoEvents {
    fn publish<'a>(
        &'a self,
        _event: &'a safeshift_core::events::LifecycleEvent,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async {})
    }
}

/// Records what would have been published: for tests, and for showing a run's events.
#[derive(Debug, Clone, Default)]
pub struct Recorded(
    pub std::sync::Arc<std::sync::Mutex<Vec<safeshift_core::events::LifecycleEvent>>>,
);

impl Recorded {
    /// The detail-types published so far, in order.
    pub fn detail_types(&self) -> Vec<&'static str> {
        self.0
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|e| e.detail_type.as_str())
            .collect()
    }

    pub fn events(&self) -> Vec<safeshift_core::events::LifecycleEvent> {
        self.0.lock().expect("not poisoned").clone()
    }
}

impl Publish for Recorded {
    fn publish<'a>(
        &'a self,
        event: &'a safeshift_core::events::LifecycleEvent,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        self.0.lock().expect("not poisoned").push(event.clone());
        Box::pin(async {})
    }
}

/// A handler's publisher: [`NoEvents`] unless the function's `main` gives it one (`with_events`).
#[derive(Clone)]
pub struct Events(pub std::sync::Arc<dyn Publish>);

impl Default for Events {
    fn default() -> Self {
        Self(std::sync::Arc::new(NoEvents))
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Events")
    }
}

impl Events {
    pub async fn publish(&self, event: safeshift_core::events::LifecycleEvent) {
        self.0.publish(&event).await;
    }
}

/// An alias as a stack sees it: its ARN (the custom resource's physical ID), where it routes, and its
/// description, which carries the mark of the resource that created it.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedAlias {
    pub arn: String,
    pub state: AliasState,
    pub description: Option<String>,
}

/// Creates, finds and deletes aliases: what the `Custom::SafeshiftAlias` provider does beyond a rollout.
pub trait ManageAlias: Send + Sync {
    /// `None` when the alias does not exist; a missing function is `ResourceNotFound`.
    fn find_alias(
        &self,
        function: &str,
        alias: &str,
    ) -> impl Future<Output = Result<Option<OwnedAlias>, Error>> + Send;

    /// Creates the alias on `version`; `AliasConflict` when it exists already.
    fn create_alias(
        &self,
        function: &str,
        alias: &str,
        version: &str,
        description: &str,
    ) -> impl Future<Output = Result<OwnedAlias, Error>> + Send;

    /// The stack that owns the function: its `aws:cloudformation:stack-id` tag, which CloudFormation puts on every
    /// function it creates. `None` for a function no stack created.
    fn owning_stack(
        &self,
        function: &str,
    ) -> impl Future<Output = Result<Option<String>, Error>> + Send;

    /// Deletes the alias; one that is gone already is fine.
    fn delete_alias(
        &self,
        function: &str,
        alias: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Starts executions of the rollout state machine.
pub trait StartExecution: Send + Sync {
    /// Starts `name` with `input`; returns its ARN. The same name and input again is the same execution.
    fn start_execution(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &str,
    ) -> impl Future<Output = Result<String, Error>> + Send;
}

/// What answering a CloudFormation request later needs: where to answer, and the request's identity.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingAnswer {
    pub response_url: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    pub physical_resource_id: String,
    /// The version the rollout moves the alias to.
    pub function_version: String,
}

/// The answers owed to CloudFormation for rollouts in flight, by execution ARN, in the engine's own table (only
/// the engine writes there: no execution input can make it answer anyone).
pub trait PendingAnswers: Send + Sync {
    /// Keeps `answer` for `execution_arn` until `expires_at` (Unix seconds).
    fn hold_answer(
        &self,
        execution_arn: &str,
        answer: &PendingAnswer,
        expires_at: u64,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The answer owed for `execution_arn`, if any.
    fn pending_answer(
        &self,
        execution_arn: &str,
    ) -> impl Future<Output = Result<Option<PendingAnswer>, Error>> + Send;

    /// Forgets the answer for `execution_arn` once sent.
    fn forget_answer(&self, execution_arn: &str) -> impl Future<Output = Result<(), Error>> + Send;

    /// Every execution an answer is held for, with when the answer lapses (Unix seconds): what the sweep looks at
    /// when an end event was lost. Few: one per stack update waiting for a rollout.
    fn held_answers(&self) -> impl Future<Output = Result<Vec<(String, u64)>, Error>> + Send;
}

/// Sends a custom resource's answer: an HTTP PUT of the response document to CloudFormation's presigned URL.
pub trait AnswerStack: Send + Sync {
    /// `false` when the URL refuses the answer for good (HTTP 4xx: expired, or not CloudFormation's to take):
    /// sending it again cannot help.
    fn send_answer(
        &self,
        url: &str,
        body: &str,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Whether `url` is one this sender would answer at all: checked before anything is written for a request.
    fn check_url(&self, url: &str) -> Result<(), String>;
}
