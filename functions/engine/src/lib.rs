//! safeshift's engine: the ports the Lambda functions need, their AWS SDK adapters, and the handlers — each
//! generic over its ports, so the same code runs in Lambda, against a local AWS, and against mocked clients.
//! Each handler implements [`runtime::Handler`] (its event and output types); the Lambda crates
//! (`functions/shift-weight`, …) only build the clients and call [`runtime::serve`].

pub mod aws;
pub mod check_alarms;
pub mod cloudformation;
#[cfg(feature = "fake")]
pub mod fake;
pub mod gates;
pub mod guard;
pub mod ports;
pub mod rollback;
pub mod run_hook;
pub mod runtime;
pub mod shift_weight;
pub mod steer;
pub mod watch_gates;
pub mod write;

pub use aws::{
    CloudWatchAdapter, DynamoLockAdapter, EventBridgeAdapter, LambdaAdapter, ResponseUrlAdapter,
    StepFunctionsAdapter,
};

/// The wall clock in Unix seconds: when a step started, and the end of its metric window.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Unix seconds as RFC 3339, for messages people read.
pub fn rfc3339(secs: u64) -> String {
    safeshift_core::control::clock(secs)
}
