//! CloudFormation's presigned response URL: a custom resource answers with an HTTP PUT of its response document
//! (S3 behind it, so no Content-Type is sent: the URL was signed without one).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use safeshift_core::Error;

use crate::ports::AnswerStack;

/// One PUT of a few hundred bytes: far less than a function's timeout, and retried by the caller's retry.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers CloudFormation over HTTPS (the system's trust roots), or plain HTTP for a local endpoint.
#[derive(Clone)]
pub struct ResponseUrlAdapter {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for ResponseUrlAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseUrlAdapter")
    }
}

impl ResponseUrlAdapter {
    pub fn new() -> Result<Self, Error> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| Error::Internal(format!("no TLS trust roots: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }
}

impl AnswerStack for ResponseUrlAdapter {
    async fn send_answer(&self, url: &str, body: &str) -> Result<(), Error> {
        let failed = |message: String| Error::AwsError {
            operation: "PUT ResponseURL".into(),
            message,
        };
        let request = hyper::Request::put(url)
            .header(hyper::header::CONTENT_LENGTH, body.len())
            .body(Full::new(Bytes::from(body.to_owned())))
            .map_err(|e| failed(format!("not a URL one can PUT to: {e}")))?;
        let response = tokio::time::timeout(ANSWER_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| failed(format!("no answer within {ANSWER_TIMEOUT:?}")))?
            .map_err(|e| failed(e.to_string()))?;
        if !response.status().is_success() {
            return Err(failed(format!("answered HTTP {}", response.status())));
        }
        Ok(())
    }
}
