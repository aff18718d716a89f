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

/// `f` over `items`, at most [`safeshift_core::deployment::SHIFT_CONCURRENCY`] at once, every one to its end
/// (none is cancelled when another fails: a cancelled write's fate would be unknown); results in `items`' order.
/// The futures are made before the returned one is polled, so it holds no closure: a handler's future stays
/// `Send` (a stream mapped by a closure over borrowed items trips the compiler's higher-ranked `Send` check).
pub fn each<T, Fut>(
    items: impl IntoIterator<Item = T>,
    f: impl FnMut(T) -> Fut,
) -> impl std::future::Future<Output = Vec<Fut::Output>>
where
    Fut: std::future::Future,
{
    use futures_util::{FutureExt, StreamExt};
    // Unordered, then put back in order: an ordered buffer counts a finished future against the bound until
    // every earlier one has finished too, so one slow alias would hold the others back.
    let futures: Vec<_> = items
        .into_iter()
        .map(f)
        .enumerate()
        .map(|(i, future)| future.map(move |out| (i, out)))
        .collect();
    futures_util::stream::iter(futures)
        .buffer_unordered(safeshift_core::deployment::SHIFT_CONCURRENCY)
        .collect::<Vec<_>>()
        .map(in_order)
}

fn in_order<R>(mut done: Vec<(usize, R)>) -> Vec<R> {
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, out)| out).collect()
}

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
