//! A real moto server for one test: started on a free loopback port from the repo's pinned venv (created by
//! `make moto` if missing), configured before any resource exists, and killed when the test ends — also when it
//! panics. Clients are the real SDK clients over the real wire protocols, pointed at it by endpoint URL.

#![allow(dead_code)] // Each test binary uses a different part of the support module.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use aws_sdk_lambda::config::{Credentials, Region};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{AliasRoutingConfiguration, FunctionCode, Runtime};
use serde_json::json;

pub const ACCOUNT: &str = "123456789012";
pub const ROLE: &str = "arn:aws:iam::123456789012:role/orders";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Installs moto once per test binary, through the Makefile so that there is one recipe and one pin.
fn ensure_moto() -> PathBuf {
    static INSTALL: Once = Once::new();
    let root = repo_root();
    INSTALL.call_once(|| {
        let status = Command::new("make")
            .args(["--no-print-directory", "-C"])
            .arg(&root)
            .arg("moto")
            .stdout(Stdio::null())
            .status()
            .expect("running `make moto`");
        assert!(
            status.success(),
            "`make moto` failed: python3 with venv and pip is needed"
        );
    });
    root.join(".venv/bin/moto_server")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Self {
        let server = ensure_moto();
        let port = free_port();
        let child = Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting moto_server");
        let moto = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto did not start listening on {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Must come before any resource exists: switching backends drops what was made before.
        moto.control(
            "/moto-api/config",
            json!({"lambda": {"use_docker": false}, "stepfunctions": {"execute_state_machine": true}}),
        );
        moto
    }

    /// POSTs JSON to one of moto's own control endpoints.
    pub fn control(&self, path: &str, body: serde_json::Value) {
        ureq::post(&format!("{}{path}", self.endpoint))
            .send_json(body)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
    }

    /// Queues results that moto's Invoke returns, in order, instead of echoing the payload.
    pub fn queue_invoke_results(&self, results: &[serde_json::Value]) {
        let results: Vec<String> = results.iter().map(|r| r.to_string()).collect();
        self.control(
            "/moto-api/static/lambda-simple/response",
            json!({"results": results, "region": "us-east-1"}),
        );
    }

    /// Creates an IAM role through the IAM query protocol: the one fixture there is no SDK client for here.
    pub fn create_role(&self, name: &str) {
        ureq::post(&self.endpoint)
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=test/20261128/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
            )
            .send_form([
                ("Action", "CreateRole"),
                ("Version", "2010-05-08"),
                ("RoleName", name),
                ("AssumeRolePolicyDocument", "{}"),
            ])
            .expect("CreateRole");
    }

    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
            .retry_config(safeshift_engine::aws::retry_config())
            .load()
            .await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An empty zip whose comment makes its bytes (and so its code hash) unique, so that each publish is a new version.
fn zip(comment: &str) -> Vec<u8> {
    let mut bytes = vec![0x50, 0x4b, 0x05, 0x06];
    bytes.extend([0u8; 16]);
    bytes.extend((comment.len() as u16).to_le_bytes());
    bytes.extend(comment.as_bytes());
    bytes
}

/// One moto with the clients the engine uses.
pub struct World {
    pub moto: Moto,
    pub config: aws_config::SdkConfig,
    pub lambda: aws_sdk_lambda::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub sfn: aws_sdk_sfn::Client,
}

/// An alias as the test reads it back: its version and weights.
pub type Routing = (String, Vec<(String, f64)>);

impl World {
    pub async fn new() -> Self {
        let moto = Moto::start();
        moto.create_role("orders");
        let config = moto.sdk_config().await;
        Self {
            lambda: aws_sdk_lambda::Client::new(&config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
            sfn: aws_sdk_sfn::Client::new(&config),
            config,
            moto,
        }
    }

    /// A function with `versions` published versions and alias `live` on version 1.
    pub async fn function(&self, name: &str, versions: usize) {
        self.lambda
            .create_function()
            .function_name(name)
            .runtime(Runtime::Providedal2023)
            .role(ROLE)
            .handler("bootstrap")
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(zip("v0")))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        for v in 1..=versions {
            self.publish(name, &format!("v{v}")).await;
        }
        self.lambda
            .create_alias()
            .function_name(name)
            .name("live")
            .function_version("1")
            .send()
            .await
            .unwrap();
    }

    /// Publishes new code as the next version; returns its number.
    pub async fn publish(&self, name: &str, code: &str) -> String {
        self.lambda
            .update_function_code()
            .function_name(name)
            .zip_file(Blob::new(zip(code)))
            .send()
            .await
            .unwrap();
        let out = self
            .lambda
            .publish_version()
            .function_name(name)
            .send()
            .await
            .unwrap();
        out.version().unwrap().to_owned()
    }

    pub async fn routing(&self, function: &str) -> Routing {
        let a = self
            .lambda
            .get_alias()
            .function_name(function)
            .name("live")
            .send()
            .await
            .unwrap();
        let mut weights: Vec<(String, f64)> = a
            .routing_config()
            .and_then(|r| r.additional_version_weights())
            .map(|w| w.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        weights.sort_by(|a, b| a.0.cmp(&b.0));
        (a.function_version().unwrap().to_owned(), weights)
    }

    /// Someone else's write to the alias.
    pub async fn set_alias(&self, function: &str, version: &str, weights: &[(&str, f64)]) {
        self.lambda
            .update_alias()
            .function_name(function)
            .name("live")
            .function_version(version)
            .routing_config(
                AliasRoutingConfiguration::builder()
                    .set_additional_version_weights(Some(
                        weights.iter().map(|(v, w)| (v.to_string(), *w)).collect(),
                    ))
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }

    pub async fn alarm(&self, name: &str) {
        self.cloudwatch
            .put_metric_alarm()
            .alarm_name(name)
            .namespace("AWS/Lambda")
            .metric_name("Errors")
            .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
            .period(60)
            .evaluation_periods(1)
            .threshold(1.0)
            .comparison_operator(
                aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanOrEqualToThreshold,
            )
            .send()
            .await
            .unwrap();
    }

    pub async fn set_alarm_state(
        &self,
        name: &str,
        state: aws_sdk_cloudwatch::types::StateValue,
        reason: &str,
    ) {
        self.cloudwatch
            .set_alarm_state()
            .alarm_name(name)
            .state_value(state)
            .state_reason(reason)
            .send()
            .await
            .unwrap();
    }
}
