//! moto, our local AWS: installed pinned into a venv, started on a loopback port, configured before any resource
//! exists.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

/// The pin, shared with the Makefile.
pub const REQUIREMENT: &str = include_str!("../moto-requirements.txt");

#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    #[error("could not install {requirement} into {venv}: {reason}")]
    Install {
        requirement: String,
        venv: String,
        reason: String,
    },
    #[error("could not start moto_server: {0}")]
    Start(std::io::Error),
    #[error("moto did not listen on port {0} within 30 s")]
    NotListening(u16),
    #[error("configuring moto failed: {0}")]
    Configure(String),
}

fn stamp(venv: &Path) -> PathBuf {
    venv.join(format!(
        ".moto-{}",
        REQUIREMENT.trim().rsplit("==").next().unwrap_or("unpinned")
    ))
}

/// Creates the venv and installs the pinned moto unless already done; returns the `moto_server` path.
pub fn ensure_installed(venv: &Path) -> Result<PathBuf, MotoError> {
    let server = venv.join("bin/moto_server");
    if stamp(venv).exists() && server.exists() {
        return Ok(server);
    }
    let fail = |reason: String| MotoError::Install {
        requirement: REQUIREMENT.trim().to_owned(),
        venv: venv.display().to_string(),
        reason,
    };
    let run = |cmd: &mut Command| -> Result<(), MotoError> {
        let status = cmd
            .stdout(Stdio::null())
            .status()
            .map_err(|e| fail(e.to_string()))?;
        if status.success() {
            Ok(())
        } else {
            Err(fail(format!("{cmd:?} exited with {status}")))
        }
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .arg(REQUIREMENT.trim()))?;
    std::fs::write(stamp(venv), "").map_err(|e| fail(e.to_string()))?;
    Ok(server)
}

/// A running moto on a loopback port, stopped when dropped (also when a test panics).
pub struct MotoServer {
    child: Child,
    pub port: u16,
}

impl MotoServer {
    /// Installs moto into `venv` if needed and starts it on a free port. `callback_port` is where moto's Step
    /// Functions executor sends its AWS calls (it reads `MOTO_PORT`): the gateway's port, so that Invoke of an
    /// engine function runs the real handler; `None` means moto itself.
    pub fn start(
        venv: &Path,
        callback_port: Option<u16>,
        log: Option<&Path>,
    ) -> Result<Self, MotoError> {
        let server = ensure_installed(venv)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(MotoError::Start)?
            .port();
        let child = start(&server, port, callback_port.unwrap_or(port), log)?;
        Ok(Self { child, port })
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto's server with the local stack's fixes to its Step Functions executor.
const PATCHED_SERVER: &str = include_str!("../moto/server.py");

fn start(
    server: &Path,
    port: u16,
    callback_port: u16,
    log: Option<&Path>,
) -> Result<Child, MotoError> {
    let stderr = match log {
        Some(path) => Stdio::from(std::fs::File::create(path).map_err(MotoError::Start)?),
        None => Stdio::null(),
    };
    // moto's own server, with the fixes local/moto/server.py describes, run by the venv's Python.
    let python = server.with_file_name("python");
    let child = Command::new(python)
        .args([
            "-c",
            PATCHED_SERVER,
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .env("MOTO_PORT", callback_port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(MotoError::Start)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(MotoError::NotListening(port));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    configure(port)?;
    Ok(child)
}

/// Lambda without Docker; Step Functions that really executes definitions. Must precede every resource: the
/// setting swaps backends, and resources made earlier vanish.
fn configure(port: u16) -> Result<(), MotoError> {
    // A server that has just begun to listen can still reset the first connections (seen on a loaded machine):
    // a few tries before giving up.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match ureq::post(&format!("http://127.0.0.1:{port}/moto-api/config")).send_json(
            json!({"lambda": {"use_docker": false}, "stepfunctions": {"execute_state_machine": true}}),
        ) {
            Ok(_) => return Ok(()),
            Err(ureq::Error::Io(_)) if attempt < 5 => {
                std::thread::sleep(Duration::from_millis(200 * attempt))
            }
            Err(e) => return Err(MotoError::Configure(e.to_string())),
        }
    }
}

/// Queues results for moto's Invoke of functions the gateway does not serve (hooks), in order.
pub fn queue_invoke_results(port: u16, results: &[serde_json::Value]) -> Result<(), MotoError> {
    let results: Vec<String> = results.iter().map(|r| r.to_string()).collect();
    ureq::post(&format!(
        "http://127.0.0.1:{port}/moto-api/static/lambda-simple/response"
    ))
    .send_json(json!({"results": results, "region": "us-east-1"}))
    .map_err(|e| MotoError::Configure(e.to_string()))?;
    Ok(())
}

/// Creates an IAM role through IAM's query protocol (moto checks that a function's role exists).
pub fn create_role(port: u16, name: &str) -> Result<(), MotoError> {
    ureq::post(&format!("http://127.0.0.1:{port}/"))
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
        )
        .send_form([
            ("Action", "CreateRole"),
            ("Version", "2010-05-08"),
            ("RoleName", name),
            ("AssumeRolePolicyDocument", "{}"),
        ])
        .map_err(|e| MotoError::Configure(e.to_string()))?;
    Ok(())
}
