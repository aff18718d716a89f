//! The machine and toolchain a run was on: timings mean little without them, so the report opens with them.

use std::path::Path;
use std::process::Stdio;
use std::time::SystemTime;

#[derive(Debug, Clone)]
pub struct Machine {
    /// When the run started.
    pub date: SystemTime,
    pub cpu: String,
    pub cores: usize,
    pub kernel: String,
    /// `rustc --version`.
    pub rustc: String,
    /// Python's, boto3's and moto's versions, from the venv the run used.
    pub python: String,
}

impl Machine {
    /// Best effort: an unknown field reads as such rather than stopping a run that took minutes.
    pub async fn describe(venv: &Path) -> Self {
        let date = SystemTime::now();
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, m)| m.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let python = venv.join("bin/python");
        let python = output(
            &python.to_string_lossy(),
            &[
                "-c",
                "import sys, boto3, moto; print(f'Python {sys.version.split()[0]}, boto3 {boto3.__version__}, moto {moto.__version__}')",
            ],
        )
        .await;
        Self {
            date,
            cpu,
            cores,
            kernel: kernel.trim().to_owned(),
            rustc: output("rustc", &["--version"]).await,
            python,
        }
    }
}

async fn output(program: &str, args: &[&str]) -> String {
    tokio::process::Command::new(program)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .await
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "?".into())
}
