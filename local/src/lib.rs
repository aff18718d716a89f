//! `safeshift local`: the real rollout state machine running the real engine functions on this machine, against
//! moto. Any AWS client pointed at the gateway's endpoint sees one coherent AWS: Lambda, CloudWatch, IAM and Step
//! Functions from moto, with Invoke of the engine's functions answered by the engine itself.

pub mod executions;
pub mod fixtures;
pub mod gateway;
pub mod moto;
pub mod response_url;
pub mod stack;

pub use stack::LocalStack;
