//! The pure core of safeshift: the deployment input and its validation, strategies and the schedules they yield,
//! the plan's cost model, the alias and the step cursor, the gates, hooks and rollback decisions, and the error
//! taxonomy. No AWS or Lambda types live here, so everything is testable without a network and every Lambda
//! function, the CLI and the local stack agree on one set of rules.
//!
//! Dependencies run one way: `error`, `names`, `strategy`, `schedule` <- `gates` <- `deployment` <- `alias` <-
//! `prepare`, `rollout`, `rollback`, `hooks`.

pub mod alias;
pub mod asl;
pub mod control;
pub mod custom_resource;
pub mod deployment;
pub mod error;
pub mod events;
pub mod gates;
pub mod hooks;
pub mod names;
pub mod plan;
pub mod prepare;
pub mod rollback;
pub mod rollout;
pub mod schedule;
pub mod strategy;
pub mod transform;

pub use deployment::{Approval, Deployment, DeploymentInput, Hooks};
pub use error::{Error, ErrorType, FieldError, InvalidInput};
pub use plan::Plan;
pub use schedule::{Schedule, Step};
pub use strategy::{Predefined, Strategy};
