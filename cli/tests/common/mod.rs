//! What the CLI's end-to-end tests share: a local stack of their own, fixtures on it, and the real binary
//! configured the aws CLI's way.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use safeshift_local::LocalStack;
use safeshift_local::fixtures::Fixtures;
use serde_json::{Value, json};

pub struct Env {
    pub stack: LocalStack,
    pub fx: Fixtures,
    pub dir: PathBuf,
}

pub async fn env(name: &str) -> Env {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv");
    let stack = LocalStack::start(0, &venv, None).await.unwrap();
    let fx = Fixtures::new(&stack);
    let dir = std::env::temp_dir().join(format!("safeshift-deploy-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    Env { stack, fx, dir }
}

impl Env {
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_safeshift"));
        c.current_dir(&self.dir)
            .args(args)
            .env("AWS_ENDPOINT_URL", self.stack.endpoint())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("SAFESHIFT_STATE_MACHINE", &self.stack.state_machine_arn);
        c
    }

    pub async fn run(&self, args: &[&str]) -> Output {
        let mut c = self.command(args);
        tokio::task::spawn_blocking(move || c.output().unwrap())
            .await
            .unwrap()
    }

    /// `safeshift start` of `deployment` (written to `file`), which must succeed; returns the execution's ARN.
    pub async fn start(&self, file: &str, deployment: &Value) -> String {
        let started = self
            .run(&[
                "start",
                "--input",
                &self.input(file, deployment),
                "--output",
                "json",
            ])
            .await;
        assert!(started.status.success(), "{}", text(&started.stderr));
        serde_json::from_slice::<Value>(&started.stdout).unwrap()["executionArn"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub fn input(&self, name: &str, deployment: &Value) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, deployment.to_string()).unwrap();
        path.to_string_lossy().into_owned()
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn deployment(target: &str, strategy: Value) -> Value {
    json!({"functionName": "orders", "alias": "live", "targetVersion": target, "strategy": strategy})
}
