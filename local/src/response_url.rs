//! A local stand-in for CloudFormation's presigned response URL: it takes the PUT a custom resource answers with
//! and keeps each response document, so a test or the demo can read what CloudFormation would have been told.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::task::JoinHandle;

/// The answers received so far, oldest first; dropping it stops the server.
pub struct ResponseUrl {
    pub base: String,
    answers: Arc<Mutex<Vec<Value>>>,
    task: JoinHandle<()>,
}

impl ResponseUrl {
    /// Listens on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let base = format!("http://{}", listener.local_addr()?);
        let answers = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&answers);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let kept = Arc::clone(&kept);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let kept = Arc::clone(&kept);
                            async move {
                                let put = req.method() == Method::PUT;
                                let body = req
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let status = match serde_json::from_slice::<Value>(&body) {
                                    Ok(answer) if put => {
                                        kept.lock().expect("not poisoned").push(answer);
                                        StatusCode::OK
                                    }
                                    _ => StatusCode::BAD_REQUEST,
                                };
                                let mut r = Response::new(Full::new(bytes::Bytes::new()));
                                *r.status_mut() = status;
                                Ok::<_, Infallible>(r)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            base,
            answers,
            task,
        })
    }

    /// A response URL for one request.
    pub fn url(&self, request_id: &str) -> String {
        format!("{}/{request_id}", self.base)
    }

    /// Every answer received so far.
    pub fn answers(&self) -> Vec<Value> {
        self.answers.lock().expect("not poisoned").clone()
    }

    /// Waits up to `timeout` for the answer to `request_id`.
    pub async fn answer_to(&self, request_id: &str, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(a) = self
                .answers()
                .into_iter()
                .find(|a| a["RequestId"] == request_id)
            {
                return Some(a);
            }
            if tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for ResponseUrl {
    fn drop(&mut self) {
        self.task.abort();
    }
}
