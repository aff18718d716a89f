//! A local Lambda Runtime API: the part of it a function process uses — `GET …/invocation/next` (long-polled),
//! `POST …/invocation/{id}/response|error`, `POST …/init/error` — with a clock on each. One per function process,
//! so a killed process can leave nothing waiting that the next one would trip over.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// One invocation as the emulator saw it.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// When the event left for the process (the answer to its `next`).
    pub delivered: Instant,
    /// When its response (or error) arrived.
    pub answered: Instant,
    /// A response, not an error.
    pub ok: bool,
    pub body: Bytes,
}

impl Outcome {
    pub fn duration(&self) -> Duration {
        self.answered - self.delivered
    }
}

struct Shared {
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<Value>>,
    outcomes: mpsc::UnboundedSender<Outcome>,
    delivered: Mutex<HashMap<String, Instant>>,
    /// The process's first `next`: its init is over.
    first_next: OnceLock<Instant>,
    ids: AtomicU64,
}

pub struct RuntimeApi {
    pub port: u16,
    events: mpsc::UnboundedSender<Value>,
    outcomes: mpsc::UnboundedReceiver<Outcome>,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let (events, events_rx) = mpsc::unbounded_channel();
        let (outcomes_tx, outcomes) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            events: tokio::sync::Mutex::new(events_rx),
            outcomes: outcomes_tx,
            delivered: Mutex::new(HashMap::new()),
            first_next: OnceLock::new(),
            ids: AtomicU64::new(0),
        });
        let server = tokio::spawn(serve(listener, Arc::clone(&shared)));
        Ok(Self {
            port,
            events,
            outcomes,
            shared,
            server,
        })
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API` for the process.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Queues an event for the process's next `next`.
    pub fn invoke(&self, event: Value) {
        // The receiver lives as long as `self`.
        let _ = self.events.send(event);
    }

    /// The next invocation's outcome, or `None` if none arrives within `timeout`.
    pub async fn outcome(&mut self, timeout: Duration) -> Option<Outcome> {
        tokio::time::timeout(timeout, self.outcomes.recv())
            .await
            .ok()
            .flatten()
    }

    /// When the process first asked for an event.
    pub fn init_done(&self) -> Option<Instant> {
        self.shared.first_next.get().copied()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = tokio::task::JoinSet::new();
    while let Ok((stream, _)) = listener.accept().await {
        let shared = Arc::clone(&shared);
        // Connections die with the server task (the JoinSet aborts them on drop), long polls included.
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(handle(req, &shared).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

const PREFIX: &str = "/2018-06-01/runtime/";

async fn handle(req: Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    let arrived = Instant::now();
    let path = req.uri().path().to_owned();
    let Some(route) = path.strip_prefix(PREFIX) else {
        return reply(StatusCode::NOT_FOUND, Bytes::new());
    };
    match (req.method(), route) {
        (&Method::GET, "invocation/next") => {
            shared.first_next.get_or_init(|| arrived);
            let Some(event) = shared.events.lock().await.recv().await else {
                return reply(StatusCode::GONE, Bytes::new());
            };
            let id = format!("bench-{}", shared.ids.fetch_add(1, Ordering::Relaxed));
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                + Duration::from_secs(900);
            shared
                .delivered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id.clone(), Instant::now());
            Response::builder()
                .header("Lambda-Runtime-Aws-Request-Id", &id)
                .header(
                    "Lambda-Runtime-Deadline-Ms",
                    deadline.as_millis().to_string(),
                )
                .header(
                    "Lambda-Runtime-Invoked-Function-Arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:bench",
                )
                .header(
                    "Lambda-Runtime-Trace-Id",
                    "Root=1-00000000-000000000000000000000000",
                )
                .body(Full::new(Bytes::from(event.to_string())))
                .unwrap_or_else(|_| reply(StatusCode::INTERNAL_SERVER_ERROR, Bytes::new()))
        }
        (&Method::POST, "init/error") => {
            let body = body(req).await;
            let _ = shared.outcomes.send(Outcome {
                delivered: arrived,
                answered: arrived,
                ok: false,
                body,
            });
            reply(StatusCode::ACCEPTED, Bytes::new())
        }
        (&Method::POST, route) if route.starts_with("invocation/") => {
            let rest = &route["invocation/".len()..];
            let (id, ok) = match rest.rsplit_once('/') {
                Some((id, "response")) => (id.to_owned(), true),
                Some((id, "error")) => (id.to_owned(), false),
                _ => return reply(StatusCode::NOT_FOUND, Bytes::new()),
            };
            let body = body(req).await;
            let delivered = shared
                .delivered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id)
                .unwrap_or(arrived);
            let _ = shared.outcomes.send(Outcome {
                delivered,
                answered: arrived,
                ok,
                body,
            });
            reply(StatusCode::ACCEPTED, Bytes::new())
        }
        _ => reply(StatusCode::NOT_FOUND, Bytes::new()),
    }
}

async fn body(req: Request<Incoming>) -> Bytes {
    req.into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default()
}

fn reply(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r
}
