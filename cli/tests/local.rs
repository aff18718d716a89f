//! `safeshift local up` / `down` through the real binary: the stack answers as AWS does, and `down` leaves no
//! process and no port behind.

use std::net::TcpListener;
use std::process::Command;

fn safeshift(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_safeshift"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn pid_alive(pid: u64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn up_serves_the_state_machine_and_down_stops_everything_it_started() {
    let dir = std::env::temp_dir().join(format!("safeshift-local-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv");
    let port = free_port();

    let up = safeshift(
        &dir,
        &["local", "up", "--port", &port.to_string(), "--venv", venv],
    );
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let stdout = String::from_utf8(up.stdout).unwrap();
    assert!(
        stdout.contains(&format!("local AWS:      http://127.0.0.1:{port}")),
        "{stdout}"
    );
    assert!(
        stdout.contains("stateMachine:safeshift-rollout"),
        "{stdout}"
    );

    // A second `up` refuses instead of starting a second stack.
    let again = safeshift(
        &dir,
        &["local", "up", "--port", &port.to_string(), "--venv", venv],
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already running"));

    let running: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(".safeshift/local.json")).unwrap())
            .unwrap();
    let pids = [
        running["pid"].as_u64().unwrap(),
        running["motoPid"].as_u64().unwrap(),
    ];
    assert!(pids.iter().all(|p| pid_alive(*p)));
    // The gateway answers Step Functions calls with the state machine it created.
    let names = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let config = safeshift_local::stack::sdk_config(&format!("http://127.0.0.1:{port}")).await;
        let sfn = aws_sdk_sfn::Client::new(&config);
        let machines = sfn.list_state_machines().send().await.unwrap();
        machines
            .state_machines()
            .iter()
            .map(|m| m.name().to_owned())
            .collect::<Vec<_>>()
    });
    assert_eq!(names, ["safeshift-rollout"]);

    let down = safeshift(&dir, &["local", "down"]);
    assert!(down.status.success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    for pid in pids {
        assert!(
            !pid_alive(pid),
            "process {pid} is still running after `down`"
        );
    }
    assert!(
        TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "port {port} is still taken"
    );
    assert!(!dir.join(".safeshift/local.json").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
