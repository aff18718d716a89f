//! The HTTP/TLS connection opened during init (`SAFESHIFT_WARM_UP`), off and on: `check-alarms` cold-started
//! against moto over HTTPS, so the connector, the root certificates and the handshakes all cost what they do.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use safeshift_core::Deployment;
use safeshift_core::names::Version;
use safeshift_core::rollout::Rollout;
use serde_json::{Value, json};

use crate::measure::{self, Launch, Medians};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Connection {
    /// Cold starts per setting.
    pub runs: usize,
    /// `SAFESHIFT_WARM_UP=0`: the first invocation opens the connection.
    pub off: Medians,
    /// The default: init opens it.
    pub on: Medians,
}

pub async fn measure(
    bins: &Path,
    venv: &Path,
    runs: usize,
    scratch: &Path,
) -> anyhow::Result<Connection> {
    let certs = scratch.join("tls");
    python(venv, &["certs", &certs.to_string_lossy()]).await?;
    let mut moto = TlsMoto::start(venv, &certs).await?;
    let endpoint = format!("https://127.0.0.1:{}", moto.port);
    let ca = certs.join("ca.pem");
    python(
        venv,
        &["alarm", &endpoint, &ca.to_string_lossy(), "orders-errors"],
    )
    .await?;
    let deployment = Deployment::from_value(json!({
        "functionName": "orders", "alias": "live", "targetVersion": "2",
        "strategy": "Canary10Percent5Minutes", "alarms": ["orders-errors"]
    }))?;
    let event = serde_json::to_value(Rollout::prepared(
        "bench".into(),
        deployment,
        vec![(Version::new(1).context("version 1")?, "r".into())],
    ))?;
    let launch = |warm_up: &str| Launch {
        name: "check-alarms".into(),
        program: bins.join("check-alarms"),
        args: vec![],
        env: vec![
            ("AWS_ENDPOINT_URL".into(), endpoint.clone()),
            // rustls-native-certs reads the trust store from here: our CA only.
            ("SSL_CERT_FILE".into(), ca.to_string_lossy().into_owned()),
            ("SAFESHIFT_WARM_UP".into(), warm_up.into()),
            // As every function is deployed; check-alarms reads no execution, so no state machine need exist.
            (
                "SAFESHIFT_STATE_MACHINE_ARN".into(),
                safeshift_local::stack::state_machine_arn(),
            ),
        ],
    };
    eprintln!("connection at init: warm-up 0 ({runs} cold starts)");
    let off = cold_starts(&launch("0"), &event, runs).await?;
    eprintln!("connection at init: warm-up 1 ({runs} cold starts)");
    let on = cold_starts(&launch("1"), &event, runs).await?;
    let _ = moto.child.kill().await;
    Ok(Connection { runs, off, on })
}

async fn cold_starts(launch: &Launch, event: &Value, runs: usize) -> anyhow::Result<Medians> {
    let mut cold = Vec::new();
    for _ in 0..runs {
        cold.push(measure::cold_start(launch, event).await?);
    }
    Ok(Medians::of(&cold))
}

/// A moto of its own, serving HTTPS with a certificate from a throwaway CA.
struct TlsMoto {
    child: tokio::process::Child,
    port: u16,
}

impl TlsMoto {
    async fn start(venv: &Path, certs: &Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = tokio::process::Command::new(venv.join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string(), "-c"])
            .arg(certs.join("server.pem"))
            .arg("-k")
            .arg(certs.join("server.key"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            ensure!(
                Instant::now() < deadline,
                "moto (TLS) not listening on {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self { child, port })
    }
}

async fn python(venv: &Path, args: &[&str]) -> anyhow::Result<()> {
    let status = tokio::process::Command::new(venv.join("bin/python"))
        .arg("bench/python/tls.py")
        .args(args)
        .status()
        .await?;
    ensure!(status.success(), "bench/python/tls.py {args:?} failed");
    Ok(())
}
