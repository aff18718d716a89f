//! State transitions counted from real execution histories on the local stack, next to what `safeshift plan`
//! predicts: transitions are what Step Functions Standard bills.

use std::time::Duration;

use anyhow::ensure;
use aws_sdk_sfn::types::ExecutionStatus;
use safeshift_core::Deployment;
use safeshift_core::asl::{Definition, TransitionModel};
use safeshift_core::plan::Plan;
use safeshift_core::strategy::Predefined;
use safeshift_local::LocalStack;
use safeshift_local::executions::{self, history};
use safeshift_local::fixtures::Fixtures;
use serde_json::{Value, json};
use strum::VariantArray;

#[derive(Debug, Clone)]
pub struct Transitions {
    /// States entered once per execution, outside the step loop: what a per-step figure leaves out.
    pub fixed: u64,
    pub strategies: Vec<StrategyRun>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StrategyRun {
    pub strategy: String,
    pub steps: usize,
    /// What `safeshift plan` says.
    pub planned: u64,
    /// States the execution entered, from its history.
    pub counted: u64,
}

/// Each predefined strategy, run once.
pub async fn measure(stack: &LocalStack) -> anyhow::Result<Transitions> {
    let fx = Fixtures::new(stack);
    let sfn = aws_sdk_sfn::Client::new(&stack.config);
    let model: TransitionModel = Definition::rollout().transition_model()?;

    let mut strategies = Vec::new();
    for (i, predefined) in Predefined::VARIANTS.iter().enumerate() {
        let name = predefined.name();
        let function = format!("strategy{i}");
        fx.function(&function, 2).await?;
        let planned = Deployment::from_value(
            json!({"functionName": function, "alias": "live", "targetVersion": "2", "strategy": name}),
        )?;
        let plan = Plan::new(&planned, &model);
        // The same steps, baked 1 s each: transitions depend on the steps, not on how long each is held.
        let traffic: Vec<Value> = planned
            .schedule()
            .traffic_steps()
            .iter()
            .map(|s| json!({"percent": s.percent, "bakeSeconds": 1}))
            .collect();
        let strategy = if traffic.is_empty() {
            json!(name)
        } else {
            json!({"steps": traffic})
        };
        let input = json!({"functionName": function, "alias": "live", "targetVersion": "2", "strategy": strategy});
        eprintln!("transitions: {name}");
        let arn = stack
            .start_execution(&format!("{function}-live-2"), &input)
            .await?;
        let status = finish(&sfn, &arn).await?;
        ensure!(
            status == ExecutionStatus::Succeeded,
            "{name}: execution {status:?}"
        );
        let counted = history(&sfn, &arn)
            .await?
            .iter()
            .filter(|e| e.state_entered_event_details().is_some())
            .count() as u64;
        strategies.push(StrategyRun {
            strategy: name.to_owned(),
            steps: plan.steps.len(),
            planned: plan.state_transitions,
            counted,
        });
    }
    Ok(Transitions {
        fixed: model.fixed,
        strategies,
    })
}

/// Waits for the execution to end; its final status.
pub async fn finish(sfn: &aws_sdk_sfn::Client, arn: &str) -> anyhow::Result<ExecutionStatus> {
    let done = executions::wait_for_end(sfn, arn, Duration::from_secs(180)).await?;
    Ok(done.status().clone())
}
