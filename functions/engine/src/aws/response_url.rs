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

/// Whether `url` is one to answer: CloudFormation's presigned S3 URLs are HTTPS on an AWS host; plain HTTP only to
/// this machine (a local endpoint). Anything else is never contacted, whoever put it in a request.
pub fn answerable(url: &str) -> Result<hyper::Uri, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    let host = uri.host().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let aws = host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn");
    match uri.scheme_str() {
        Some("https") if aws || loopback => Ok(uri),
        Some("http") if loopback => Ok(uri),
        _ => Err(format!(
            "{}://{host}/… is not CloudFormation's: a response URL is HTTPS on an amazonaws.com host",
            uri.scheme_str().unwrap_or("?")
        )),
    }
}

impl AnswerStack for ResponseUrlAdapter {
    async fn send_answer(&self, url: &str, body: &str) -> Result<bool, Error> {
        let failed = |message: String| Error::AwsError {
            operation: "PUT ResponseURL".into(),
            message,
        };
        let uri = answerable(url).map_err(|reason| {
            Error::InvalidInput(safeshift_core::InvalidInput::one("ResponseURL", reason))
        })?;
        let request = hyper::Request::put(uri)
            .header(hyper::header::CONTENT_LENGTH, body.len())
            .body(Full::new(Bytes::from(body.to_owned())))
            .map_err(|e| failed(format!("not a URL one can PUT to: {e}")))?;
        let response = tokio::time::timeout(ANSWER_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| failed(format!("no answer within {ANSWER_TIMEOUT:?}")))?
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        if status.is_client_error() {
            tracing::warn!(%status, "the response URL refuses the answer (expired?)");
            return Ok(false);
        }
        if !status.is_success() {
            return Err(failed(format!("answered HTTP {status}")));
        }
        Ok(true)
    }

    fn check_url(&self, url: &str) -> Result<(), String> {
        answerable(url).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::answerable;

    #[test]
    fn only_cloudformations_urls_and_this_machine_are_answered() {
        for ok in [
            "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/arn%3A?X-Amz-Signature=1",
            "https://cloudformation-custom-resource-response-cnnorth1.s3.cn-north-1.amazonaws.com.cn/x",
            "http://127.0.0.1:8080/r1",
            "http://localhost/r1",
        ] {
            assert!(answerable(ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/x",
            "https://attacker.example/collect",
            "https://amazonaws.com.attacker.example/x",
            "http://169.254.169.254/latest/meta-data",
            "file:///etc/passwd",
        ] {
            assert!(answerable(refused).is_err(), "{refused}");
        }
    }
}
