//! The pure core of safeshift: the deployment input and its validation, strategies and the schedules they yield,
//! the plan's cost model, and the error taxonomy. No AWS or Lambda types live here, so everything is testable
//! without a network and every Lambda function, the CLI and the local stack agree on one set of rules.

pub mod analysis;
pub mod asl;
pub mod deployment;
pub mod error;
pub mod names;
pub mod plan;
pub mod rollout;
pub mod schedule;
pub mod strategy;

pub use deployment::{Approval, Deployment, DeploymentInput, Hooks};
pub use error::{Error, ErrorType, FieldError, InvalidInput};
pub use plan::Plan;
pub use schedule::{Schedule, Step};
pub use strategy::{Predefined, Strategy};
