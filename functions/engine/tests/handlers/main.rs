//! The handlers' decisions over the in-memory fake AWS (`safeshift_engine::fake`): what each handler returns or
//! fails with, which calls it made, and that nothing was written where nothing may be. What only the SDK can show
//! (retries, throttling, pagination, request shapes, error classification) is in `tests/adapters.rs`.

mod check_alarms;
mod guard;
mod lock;
mod release;
mod rollback;
mod run_hook;
mod shift_weight;
mod support;
mod watch_gates;
