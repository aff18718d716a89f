//! Lifecycle events: what the engine tells anyone who subscribes (EventBridge, source [`SOURCE`]) at each moment of
//! a deployment — started, a step shifted, gates passed or failed, an approval pending, paused or resumed, rolled
//! back, deployed, a rollback that failed. README.md documents every detail-type and its JSON; this is their one
//! definition. Publishing is best effort: an event that cannot be sent never fails or holds up a deployment.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::control::Operation;
use crate::gates::bounds;
use crate::gates::{GateReport, Verdict};
use crate::rollout::Rollout;

/// The events' `source`.
pub const SOURCE: &str = "safeshift";
/// The most a reason or summary takes in an event: an event is a notification, the evidence is in the execution.
const MAX_TEXT_BYTES: usize = 1_024;

/// The events' `detail-type`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DetailType {
    #[serde(rename = "Deployment Started")]
    DeploymentStarted,
    #[serde(rename = "Step Shifted")]
    StepShifted,
    #[serde(rename = "Gates Passed")]
    GatesPassed,
    #[serde(rename = "Gate Failed")]
    GateFailed,
    #[serde(rename = "Approval Pending")]
    ApprovalPending,
    #[serde(rename = "Deployment Paused")]
    DeploymentPaused,
    #[serde(rename = "Deployment Resumed")]
    DeploymentResumed,
    #[serde(rename = "Deployment Rolled Back")]
    DeploymentRolledBack,
    #[serde(rename = "Deployment Succeeded")]
    DeploymentSucceeded,
    #[serde(rename = "Rollback Failed")]
    RollbackFailed,
}

impl DetailType {
    pub const ALL: [DetailType; 10] = [
        DetailType::DeploymentStarted,
        DetailType::StepShifted,
        DetailType::GatesPassed,
        DetailType::GateFailed,
        DetailType::ApprovalPending,
        DetailType::DeploymentPaused,
        DetailType::DeploymentResumed,
        DetailType::DeploymentRolledBack,
        DetailType::DeploymentSucceeded,
        DetailType::RollbackFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DetailType::DeploymentStarted => "Deployment Started",
            DetailType::StepShifted => "Step Shifted",
            DetailType::GatesPassed => "Gates Passed",
            DetailType::GateFailed => "Gate Failed",
            DetailType::ApprovalPending => "Approval Pending",
            DetailType::DeploymentPaused => "Deployment Paused",
            DetailType::DeploymentResumed => "Deployment Resumed",
            DetailType::DeploymentRolledBack => "Deployment Rolled Back",
            DetailType::DeploymentSucceeded => "Deployment Succeeded",
            DetailType::RollbackFailed => "Rollback Failed",
        }
    }

    /// The events a person should see (the template forwards these to the optional topic and chat webhook).
    pub fn needs_a_human(self) -> bool {
        matches!(
            self,
            DetailType::DeploymentRolledBack
                | DetailType::ApprovalPending
                | DetailType::RollbackFailed
        )
    }
}

/// One event: its detail-type and its detail.
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleEvent {
    pub detail_type: DetailType,
    pub detail: Value,
}

impl LifecycleEvent {
    /// An event about `rollout`: every detail carries the deployment, the alias, both versions and where the
    /// rollout stands; `extra`'s fields follow.
    pub fn about(
        detail_type: DetailType,
        rollout: &Rollout,
        execution_arn: Option<&str>,
        extra: Value,
    ) -> Self {
        let mut detail = Map::new();
        detail.insert("deploymentId".into(), json!(rollout.deployment_id));
        if let Some(arn) = execution_arn.filter(|a| !a.is_empty()) {
            detail.insert("executionArn".into(), json!(arn));
        }
        // The first target's alias at the top, as a single deployment's events always had it; a release's
        // subscribers read `release` and every target in `targets`.
        let first = &rollout.aliases[0];
        detail.insert("functionName".into(), json!(first.function_name));
        detail.insert("alias".into(), json!(first.name));
        detail.insert(
            "stableVersion".into(),
            json!(first.stable_version.to_string()),
        );
        detail.insert(
            "targetVersion".into(),
            json!(first.target_version.to_string()),
        );
        if let Some(release) = &rollout.deployment.release {
            detail.insert("release".into(), json!(release));
        }
        detail.insert(
            "targets".into(),
            Value::Array(
                rollout
                    .aliases
                    .iter()
                    .map(|a| json!(crate::hooks::HookTarget::from(a)))
                    .collect(),
            ),
        );
        detail.insert("step".into(), json!(rollout.step.map(|s| s + 1)));
        detail.insert("stepCount".into(), json!(rollout.step_count));
        detail.insert("percent".into(), json!(rollout.percent));
        if let Value::Object(extra) = extra {
            detail.extend(extra);
        }
        Self {
            detail_type,
            detail: Value::Object(detail),
        }
    }

    pub fn started(rollout: &Rollout, execution_arn: Option<&str>) -> Self {
        Self::about(
            DetailType::DeploymentStarted,
            rollout,
            execution_arn,
            json!({"strategy": rollout.deployment.strategy, "alarms": rollout.deployment.alarms.len()}),
        )
    }

    pub fn shifted(rollout: &Rollout, execution_arn: Option<&str>) -> Self {
        Self::about(
            DetailType::StepShifted,
            rollout,
            execution_arn,
            json!({"promoted": rollout.promoted, "bakeSeconds": rollout.bake_seconds}),
        )
    }

    /// The gates' verdict on a step, when it is one: passed (after the step's last look) or failed. A look while
    /// the step still bakes, or an extension, is no event.
    pub fn judged(rollout: &Rollout, report: &GateReport) -> Option<Self> {
        let summary = bounds::cut(&report.summary(), MAX_TEXT_BYTES);
        match report.verdict {
            Verdict::Pass if !report.baking => Some(Self::about(
                DetailType::GatesPassed,
                rollout,
                None,
                json!({"summary": summary}),
            )),
            Verdict::Fail => Some(Self::about(
                DetailType::GateFailed,
                rollout,
                None,
                json!({
                    "error": report.error.map(|e| e.as_str()),
                    "summary": summary,
                    "gates": report.results.iter().map(|r| json!({
                        "gate": r.gate,
                        "verdict": r.verdict,
                        "findings": r.findings.iter().map(|f| bounds::cut(f, MAX_TEXT_BYTES)).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                }),
            )),
            _ => None,
        }
    }

    pub fn approval_pending(rollout: &Rollout, execution_arn: Option<&str>) -> Self {
        Self::about(
            DetailType::ApprovalPending,
            rollout,
            execution_arn,
            json!({"approve": format!("safeshift approve {}", execution_arn.unwrap_or(&rollout.deployment_id))}),
        )
    }

    /// A pause an operator applied, or its end (a resume, or a promote out of the pause: `action` says which).
    pub fn steered(
        rollout: &Rollout,
        execution_arn: Option<&str>,
        operation: &Operation,
        ended_a_pause: bool,
    ) -> Option<Self> {
        use crate::control::Action;
        let by = operation.by.as_ref().map(|b| &b.arn);
        match operation.action {
            Action::Pause => Some(Self::about(
                DetailType::DeploymentPaused,
                rollout,
                execution_arn,
                json!({"by": by, "reason": operation.reason, "until": rollout.paused.as_ref().map(|p| p.until)}),
            )),
            Action::Resume | Action::Promote if ended_a_pause => Some(Self::about(
                DetailType::DeploymentResumed,
                rollout,
                execution_arn,
                json!({"by": by, "reason": operation.reason, "action": operation.action}),
            )),
            _ => None,
        }
    }

    /// The rollback's end: `outcome` (reverted, left alone, nothing to revert) and why; `error` is what caused
    /// the rollback, when known.
    pub fn rolled_back(
        rollout: &Rollout,
        execution_arn: Option<&str>,
        outcome: &str,
        reason: &str,
        error: Option<&str>,
    ) -> Self {
        Self::about(
            DetailType::DeploymentRolledBack,
            rollout,
            execution_arn,
            json!({
                "outcome": outcome,
                "reason": bounds::cut(reason, MAX_TEXT_BYTES),
                "error": error,
            }),
        )
    }

    pub fn rollback_failed(rollout: &Rollout, execution_arn: Option<&str>, error: &str) -> Self {
        Self::about(
            DetailType::RollbackFailed,
            rollout,
            execution_arn,
            json!({"error": bounds::cut(error, MAX_TEXT_BYTES)}),
        )
    }

    pub fn succeeded(rollout: &Rollout, execution_arn: Option<&str>) -> Self {
        Self::about(
            DetailType::DeploymentSucceeded,
            rollout,
            execution_arn,
            json!({"operations": rollout.operations.len()}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Deployment;
    use crate::names::Version;

    fn rollout() -> Rollout {
        let d = Deployment::parse(
            r#"{"functionName":"orders","alias":"live","targetVersion":"7","strategy":"Canary10Percent5Minutes","alarms":["errors"]}"#,
        )
        .unwrap();
        Rollout::prepared(
            "d-1".into(),
            d,
            vec![(Version::new(6).unwrap(), "r0".into())],
        )
        .advanced(0, vec!["r1".into()], 1_000)
    }

    #[test]
    fn every_detail_names_the_deployment_the_alias_and_where_it_stands() {
        let e = LifecycleEvent::shifted(&rollout(), Some("arn:x"));
        assert_eq!(e.detail_type.as_str(), "Step Shifted");
        assert_eq!(
            e.detail,
            json!({"deploymentId": "d-1", "executionArn": "arn:x", "functionName": "orders", "alias": "live",
                "stableVersion": "6", "targetVersion": "7", "step": 1, "stepCount": 2, "percent": 10.0,
                "targets": [{"functionName": "orders", "alias": "live", "stableVersion": "6", "targetVersion": "7"}],
                "promoted": false, "bakeSeconds": 300})
        );
        // Serialized names are the documented detail-types.
        for t in DetailType::ALL {
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
        }
    }

    #[test]
    fn only_a_verdict_is_an_event_and_a_failure_says_why_briefly() {
        use crate::gates::{Extensions, GateResult, analysis::OnInconclusive, decide};
        let once = Extensions {
            max: 0,
            seconds: 60,
            then: OnInconclusive::Fail,
        };
        let failing = GateResult {
            gate: "alarms".into(),
            verdict: Verdict::Fail,
            error: Some(crate::ErrorType::AlarmFired),
            findings: vec!["in ALARM: errors".into(), "x".repeat(5_000)],
            evidence: json!({"alarms": []}),
        };
        let report = decide(Some(0), vec![failing], once, None, None);
        let e = LifecycleEvent::judged(&rollout(), &report).unwrap();
        assert_eq!(e.detail_type, DetailType::GateFailed);
        assert_eq!(e.detail["error"], "AlarmFired");
        assert!(e.detail.to_string().len() < 4_000, "{}", e.detail);
        let baking = decide(Some(0), vec![], once, None, Some(60));
        assert!(baking.baking && LifecycleEvent::judged(&rollout(), &baking).is_none());
        let passed = decide(Some(0), vec![], once, None, None);
        assert_eq!(
            LifecycleEvent::judged(&rollout(), &passed)
                .unwrap()
                .detail_type,
            DetailType::GatesPassed
        );
    }

    #[test]
    fn a_pause_and_its_end_are_events_and_nothing_else_an_operator_does() {
        use crate::control::{Action, Operation, Outcome};
        let op = |action| Operation {
            action,
            full: false,
            by: None,
            reason: Some("why".into()),
            at: 1,
            step: Some(1),
            percent: 10.0,
            outcome: Outcome::Applied,
            note: String::new(),
            id: None,
        };
        let r = rollout();
        let paused = LifecycleEvent::steered(&r, Some("arn:x"), &op(Action::Pause), false).unwrap();
        assert_eq!(
            (paused.detail_type, paused.detail["executionArn"].as_str()),
            (DetailType::DeploymentPaused, Some("arn:x"))
        );
        let resumed = LifecycleEvent::steered(&r, None, &op(Action::Promote), true).unwrap();
        assert_eq!(
            (resumed.detail_type, resumed.detail["action"].as_str()),
            (DetailType::DeploymentResumed, Some("promote"))
        );
        assert!(LifecycleEvent::steered(&r, None, &op(Action::Promote), false).is_none());
        assert!(LifecycleEvent::steered(&r, None, &op(Action::Approve), false).is_none());
    }
}
