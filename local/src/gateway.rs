//! The gateway: one loopback endpoint that looks like one AWS. Lambda `Invoke` of an engine function runs the real
//! handler — the same engine code and the same `runtime::invoke` the Lambda binaries serve — and answers in
//! Lambda's wire format; every other request is forwarded to moto unchanged.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use safeshift_engine::check_alarms::CheckAlarms;
use safeshift_engine::cloudformation::CloudFormation;
use safeshift_engine::guard::Scope;
use safeshift_engine::ports::Events;
use safeshift_engine::rollback::Rollback;
use safeshift_engine::run_hook::RunHook;
use safeshift_engine::runtime;
use safeshift_engine::shift_weight::{ReadyWait, ShiftWeight};
use safeshift_engine::steer::Steer;
use safeshift_engine::watch_gates::WatchGates;
use safeshift_engine::{
    CloudWatchAdapter, DynamoLockAdapter, EventBridgeAdapter, LambdaAdapter, ResponseUrlAdapter,
    StepFunctionsAdapter,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The engine's functions, as the template names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineFunction {
    ShiftWeight,
    CheckAlarms,
    RunHook,
    Rollback,
    WatchGates,
    /// The `Safeshift` macro and the `Custom::SafeshiftAlias` provider (no state invokes it).
    CloudFormation,
}

impl EngineFunction {
    pub const ALL: [Self; 6] = [
        Self::ShiftWeight,
        Self::CheckAlarms,
        Self::RunHook,
        Self::Rollback,
        Self::WatchGates,
        Self::CloudFormation,
    ];

    /// The binary's name, and the function's name after the stack prefix.
    pub fn binary(self) -> &'static str {
        match self {
            Self::ShiftWeight => "shift-weight",
            Self::CheckAlarms => "check-alarms",
            Self::RunHook => "run-hook",
            Self::Rollback => "rollback",
            Self::WatchGates => "watch-gates",
            Self::CloudFormation => "cloudformation",
        }
    }

    /// The `${…}` placeholder the state machine definition uses for this function's ARN.
    pub fn placeholder(self) -> &'static str {
        match self {
            Self::ShiftWeight => "ShiftWeightFunctionArn",
            Self::CheckAlarms => "CheckAlarmsFunctionArn",
            Self::RunHook => "RunHookFunctionArn",
            Self::Rollback => "RollbackFunctionArn",
            Self::WatchGates => "WatchGatesFunctionArn",
            Self::CloudFormation => "CloudFormationFunctionArn",
        }
    }

    /// The function name in the local stack: as `sam deploy` names it in a stack called `safeshift`.
    pub fn function_name(self) -> String {
        format!("{}-{}", crate::stack::STACK_NAME, self.binary())
    }

    /// Which engine function a Lambda Invoke path names, if any (by name or any form of ARN).
    fn from_invoke_path(path: &str) -> Option<Self> {
        let encoded = path
            .strip_prefix("/2015-03-31/functions/")?
            .strip_suffix("/invocations")?;
        let name = percent_encoding::percent_decode_str(encoded)
            .decode_utf8()
            .ok()?;
        let name = match name.split_once(":function:") {
            Some((_, rest)) => rest.split(':').next()?.to_owned(),
            None => name.split(':').next()?.to_owned(),
        };
        Self::ALL.into_iter().find(|f| f.function_name() == name)
    }
}

/// The engine's handlers, built once with clients pointed at the gateway.
pub struct Engine {
    shift_weight:
        Arc<ShiftWeight<LambdaAdapter, StepFunctionsAdapter, DynamoLockAdapter, CloudWatchAdapter>>,
    check_alarms: Arc<CheckAlarms<CloudWatchAdapter>>,
    steer: Arc<Steer>,
    run_hook: Arc<RunHook<LambdaAdapter, StepFunctionsAdapter, DynamoLockAdapter>>,
    rollback: Arc<Rollback<LambdaAdapter, StepFunctionsAdapter, DynamoLockAdapter>>,
    watch_gates: Arc<
        WatchGates<
            DynamoLockAdapter,
            StepFunctionsAdapter,
            StepFunctionsAdapter,
            CloudWatchAdapter,
        >,
    >,
    cloudformation: Arc<
        CloudFormation<LambdaAdapter, StepFunctionsAdapter, DynamoLockAdapter, ResponseUrlAdapter>,
    >,
}

/// How long after a stopped execution the local reconciler looks at the alias again. The functions run in this
/// process, where a write takes milliseconds, not the seconds a Lambda function's timeout allows.
const LOCAL_LONGEST_WRITE: Duration = Duration::from_secs(2);

impl Engine {
    /// The engine's handlers, serving executions of the state machine in `scope`, with clients built on `config`.
    pub fn new(config: &aws_config::SdkConfig, scope: &Scope) -> Self {
        let lambda = LambdaAdapter::new(aws_sdk_lambda::Client::new(config));
        let executions = StepFunctionsAdapter::new(aws_sdk_sfn::Client::new(config));
        let cloudwatch = CloudWatchAdapter::new(aws_sdk_cloudwatch::Client::new(config));
        let locks =
            DynamoLockAdapter::new(aws_sdk_dynamodb::Client::new(config), scope.lock_table());
        // Published to moto's default bus, where the stack's own subscriber (a queue) receives them.
        let events = Events(Arc::new(EventBridgeAdapter::new(
            aws_sdk_eventbridge::Client::new(config),
            "default",
        )));
        Self {
            steer: Arc::new(Steer::with_events(events.clone())),
            shift_weight: Arc::new(
                ShiftWeight::new(
                    lambda.clone(),
                    executions.clone(),
                    locks.clone(),
                    cloudwatch.clone(),
                    scope.clone(),
                    ReadyWait::default(),
                )
                .with_events(events.clone()),
            ),
            check_alarms: Arc::new(
                CheckAlarms::new(cloudwatch.clone()).with_events(events.clone()),
            ),
            run_hook: Arc::new(
                RunHook::new(
                    lambda.clone(),
                    executions.clone(),
                    locks.clone(),
                    scope.clone(),
                )
                .with_events(events.clone()),
            ),
            rollback: Arc::new(
                Rollback::new(
                    lambda.clone(),
                    executions.clone(),
                    locks.clone(),
                    scope.clone(),
                    LOCAL_LONGEST_WRITE,
                )
                .with_events(events),
            ),
            cloudformation: Arc::new(CloudFormation::new(
                lambda.clone(),
                executions.clone(),
                locks.clone(),
                ResponseUrlAdapter::new().expect("the system's TLS roots load"),
                scope.clone(),
            )),
            watch_gates: Arc::new(WatchGates::new(
                locks,
                executions.clone(),
                executions,
                cloudwatch,
                scope.clone(),
            )),
        }
    }

    /// One invocation, exactly as the Lambda runtime glue runs it: panics become `Internal`, errors leave with
    /// their taxonomy name.
    pub async fn invoke(
        &self,
        function: EngineFunction,
        event: Value,
    ) -> Result<Value, (String, String)> {
        match function {
            EngineFunction::ShiftWeight => {
                runtime::invoke_routed(
                    Arc::clone(&self.shift_weight),
                    "steer",
                    Arc::clone(&self.steer),
                    event,
                )
                .await
            }
            EngineFunction::CheckAlarms => {
                runtime::invoke(Arc::clone(&self.check_alarms), event).await
            }
            EngineFunction::RunHook => runtime::invoke(Arc::clone(&self.run_hook), event).await,
            EngineFunction::Rollback => runtime::invoke(Arc::clone(&self.rollback), event).await,
            EngineFunction::WatchGates => {
                runtime::invoke(Arc::clone(&self.watch_gates), event).await
            }
            EngineFunction::CloudFormation => {
                runtime::invoke(Arc::clone(&self.cloudformation), event).await
            }
        }
        .map_err(|d| (d.error_type, d.error_message))
    }
}

pub struct Gateway {
    engine: Arc<Engine>,
    moto: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

impl Gateway {
    pub fn new(engine: Arc<Engine>, moto_port: u16) -> Self {
        Self {
            engine,
            moto: format!("http://127.0.0.1:{moto_port}"),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Serves until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let gateway = Arc::clone(&self);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let gateway = Arc::clone(&gateway);
                    async move { Ok::<_, Infallible>(gateway.route(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    async fn route(&self, req: Request<Incoming>) -> Reply {
        if req.method() == Method::POST
            && let Some(function) = EngineFunction::from_invoke_path(req.uri().path())
        {
            return self.invoke(function, req).await;
        }
        self.forward(req)
            .await
            .unwrap_or_else(|e| reply(StatusCode::BAD_GATEWAY, format!("gateway: {e}")))
    }

    async fn invoke(&self, function: EngineFunction, req: Request<Incoming>) -> Reply {
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return reply(StatusCode::BAD_REQUEST, e.to_string()),
        };
        let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        tracing::info!(function = function.binary(), "invoke");
        let (body, error) = match self.engine.invoke(function, event).await {
            Ok(output) => (output, false),
            Err((error_type, error_message)) => (
                json!({"errorType": error_type, "errorMessage": error_message}),
                true,
            ),
        };
        let mut r = reply(StatusCode::OK, body.to_string());
        let headers = r.headers_mut();
        headers.insert(
            "content-type",
            "application/json".parse().expect("static header"),
        );
        headers.insert(
            "x-amz-executed-version",
            "$LATEST".parse().expect("static header"),
        );
        if error {
            // How Lambda marks a function error: Step Functions names the error after the payload's errorType.
            headers.insert(
                "x-amz-function-error",
                "Unhandled".parse().expect("static header"),
            );
        }
        r
    }

    async fn forward(
        &self,
        req: Request<Incoming>,
    ) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
        let (parts, body) = req.into_parts();
        let body = body.collect().await?.to_bytes();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut out = Request::builder()
            .method(parts.method)
            .uri(format!("{}{path}", self.moto));
        for (name, value) in &parts.headers {
            out = out.header(name, value);
        }
        let response = self.client.request(out.body(Full::new(body))?).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Response::from_parts(parts, Full::new(body)))
    }
}

/// Binds the gateway's port on loopback only.
pub async fn bind(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoke_paths_name_engine_functions_by_name_or_arn() {
        let arn =
            "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Asafeshift-shift-weight";
        assert_eq!(
            EngineFunction::from_invoke_path(&format!("/2015-03-31/functions/{arn}/invocations")),
            Some(EngineFunction::ShiftWeight)
        );
        assert_eq!(
            EngineFunction::from_invoke_path(
                "/2015-03-31/functions/safeshift-rollback:live/invocations"
            ),
            Some(EngineFunction::Rollback)
        );
        assert_eq!(
            EngineFunction::from_invoke_path("/2015-03-31/functions/orders/invocations"),
            None
        );
        assert_eq!(
            EngineFunction::from_invoke_path(
                "/2015-03-31/functions/safeshift-rollback/configuration"
            ),
            None
        );
    }
}
