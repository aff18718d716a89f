//! Follows an execution's history and says what the rollout does, as it happens: each step and weight, each
//! gate's verdict with its evidence, hooks, the rollback, and the end.

use std::time::Duration;

use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent, HistoryEventType};
use safeshift_core::gates::GateReport;
use safeshift_local::executions::history;
use serde_json::Value;

/// How often the history is read while the execution runs.
const POLL: Duration = Duration::from_millis(300);

/// The execution's end, as `describe-execution` reports it.
pub struct Ended {
    pub status: ExecutionStatus,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// Reports progress until the execution ends: each line, with the bake it starts when it is a step.
pub async fn follow(
    sfn: &aws_sdk_sfn::Client,
    arn: &str,
    mut say: impl FnMut(String, Option<u64>),
) -> anyhow::Result<Ended> {
    let mut last_id = 0;
    loop {
        // Status first, history second: every event written before the end is read before we return.
        let d = sfn.describe_execution().execution_arn(arn).send().await?;
        for event in history(sfn, arn).await? {
            if event.id() > last_id {
                last_id = event.id();
                if let Some(line) = describe(&event) {
                    say(line, bake_started(&event));
                }
            }
        }
        if *d.status() != ExecutionStatus::Running {
            return Ok(Ended {
                status: d.status().clone(),
                error: d.error().map(str::to_owned),
                cause: d.cause().map(str::to_owned),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The rollout state the execution last recorded (after Prepare or a ShiftWeight), if any.
pub async fn latest_rollout(sfn: &aws_sdk_sfn::Client, arn: &str) -> anyhow::Result<Option<Value>> {
    // Read forward and take the last: moto ignores reverseOrder.
    Ok(history(sfn, arn)
        .await?
        .iter()
        .rev()
        .find_map(rollout_written))
}

/// The rollout a state wrote, when the event is the exit of one that writes it (Prepare, ShiftWeight, Steer).
fn rollout_written(event: &HistoryEvent) -> Option<Value> {
    let d = event.state_exited_event_details()?;
    matches!(d.name(), "ShiftWeight" | "Prepare" | "Steer")
        .then(|| serde_json::from_str(d.output()?).ok())?
}

/// The bake a ShiftWeight exit starts, in seconds.
fn bake_started(event: &HistoryEvent) -> Option<u64> {
    let d = event
        .state_exited_event_details()
        .filter(|d| d.name() == "ShiftWeight")?;
    serde_json::from_str::<Value>(d.output()?).ok()?["bakeSeconds"].as_u64()
}

/// The states that wait for a task token an operator may answer.
const WAITS: [&str; 4] = ["Bake", "ExtendBake", "Paused", "Approval"];

/// The wait the execution is in, and its task token, if it is in one whose token is known yet.
pub async fn pending_wait(
    sfn: &aws_sdk_sfn::Client,
    arn: &str,
) -> anyhow::Result<Option<(String, String)>> {
    Ok(current_wait(sfn, arn).await?.map(|w| (w.state, w.token)))
}

/// The wait the execution is in, read in one pass over its history with the rollout as it entered it.
pub struct Waiting {
    pub state: String,
    pub token: String,
    /// The step (1-based) the rollout was at when it entered the wait.
    pub step: Option<u64>,
    /// How many controls the rollout had recorded.
    pub operations: usize,
}

pub async fn current_wait(sfn: &aws_sdk_sfn::Client, arn: &str) -> anyhow::Result<Option<Waiting>> {
    let mut waiting: Option<String> = None;
    let mut token = None;
    let mut rollout = Value::Null;
    for event in history(sfn, arn).await? {
        if let Some(o) = rollout_written(&event) {
            rollout = o;
        }
        if let Some(d) = event.state_entered_event_details() {
            waiting = WAITS.contains(&d.name()).then(|| d.name().to_owned());
            token = None;
        } else if event.state_exited_event_details().is_some() {
            waiting = None;
            token = None;
        } else if waiting.is_some()
            && let Some(d) = event.task_scheduled_event_details()
        {
            let parameters: Value = serde_json::from_str(d.parameters()).unwrap_or_default();
            let payload = &parameters["Payload"];
            token = payload["taskToken"]
                .as_str()
                .or_else(|| payload["bake"]["taskToken"].as_str())
                .map(str::to_owned);
        }
    }
    Ok(waiting.zip(token).map(|(state, token)| Waiting {
        state,
        token,
        step: rollout["step"].as_u64().map(|s| s + 1),
        operations: rollout["operations"].as_array().map_or(0, Vec::len),
    }))
}

fn describe(event: &HistoryEvent) -> Option<String> {
    match event.r#type() {
        HistoryEventType::TaskStateEntered if event.state_entered_event_details()?.name() == "Approval" => {
            Some("waiting for approval: `safeshift approve EXECUTION` to go on, `safeshift reject EXECUTION` to roll back".into())
        }
        HistoryEventType::TaskStateEntered if event.state_entered_event_details()?.name() == "Paused" => {
            Some("  paused: `safeshift resume EXECUTION` goes on, `safeshift promote EXECUTION` ends the bake".into())
        }
        HistoryEventType::TaskStateExited | HistoryEventType::PassStateExited => {
            let d = event.state_exited_event_details()?;
            let output: Value = serde_json::from_str(d.output()?).ok()?;
            exited(d.name(), &output)
        }
        HistoryEventType::ExecutionSucceeded => Some("deployment succeeded".into()),
        HistoryEventType::ExecutionAborted => Some("execution stopped".into()),
        HistoryEventType::ExecutionTimedOut => Some("execution timed out".into()),
        _ => None,
    }
}

/// The aliases a rollout moves: `aliases` (a release's, or one), or the single `alias` older engines wrote.
pub fn aliases(o: &Value) -> Vec<&Value> {
    match (&o["aliases"], &o["alias"]) {
        (Value::Array(a), _) => a.iter().collect(),
        (_, a @ Value::Object(_)) => vec![a],
        _ => Vec::new(),
    }
}

/// `function:alias on version S -> version T`, for one alias of a rollout.
pub fn alias_line(a: &Value) -> String {
    let function = a["functionName"].as_str().unwrap_or("?");
    // A function given by ARN reads by its name.
    let function = function
        .rsplit(':')
        .find(|p| !p.is_empty())
        .unwrap_or(function);
    format!(
        "{function}:{} on version {} -> version {}",
        a["name"].as_str().unwrap_or("?"),
        a["stableVersion"].as_str().unwrap_or("?"),
        a["targetVersion"].as_str().unwrap_or("?")
    )
}

/// `function:alias: outcome (reason)`, for one alias of a rollback's report (its `targets`).
pub fn rolled_back_line(t: &Value) -> String {
    format!(
        "{}:{}: {} ({})",
        t["functionName"].as_str().unwrap_or("?"),
        t["aliasName"].as_str().unwrap_or("?"),
        t["outcome"].as_str().unwrap_or("?"),
        t["reason"].as_str().unwrap_or("")
    )
}

fn exited(state: &str, o: &Value) -> Option<String> {
    let moved = aliases(o);
    let release = o["deployment"]["release"].as_str();
    let target = match (release, moved.as_slice()) {
        (None, [a]) => format!("version {}", a["targetVersion"].as_str().unwrap_or("?")),
        _ => format!("the new versions of {} targets", moved.len()),
    };
    match state {
        // A Prepare that failed exits with the input and its error, not a rollout: the failure is the end's to say.
        "Prepare" if o.get("deploymentId").is_none() => None,
        "Prepare" => Some(match (release, moved.as_slice()) {
            (None, [a]) => format!("prepared: {}, {} steps", alias_line(a), o["stepCount"]),
            _ => {
                // A release reads as one deployment with a line per target.
                let mut s = format!(
                    "prepared release {}: {} targets, {} steps",
                    release.unwrap_or("(unnamed)"),
                    moved.len(),
                    o["stepCount"]
                );
                for a in &moved {
                    s.push_str(&format!("\n  {}", alias_line(a)));
                }
                s
            }
        }),
        "ShiftWeight" => {
            let step = o["step"].as_u64().map_or(0, |s| s + 1);
            let what = if o["promoted"] == true {
                format!("promoted: 100% on {target}")
            } else {
                format!("{}% on {target}", o["percent"])
            };
            Some(format!(
                "step {step}/{}: {what}, baking {} s",
                o["stepCount"], o["bakeSeconds"]
            ))
        }
        "CheckGates" => {
            let g: GateReport = serde_json::from_value(o["gates"].clone()).ok()?;
            let findings: Vec<&str> = g
                .results
                .iter()
                .flat_map(|r| r.findings.iter().map(String::as_str))
                .collect();
            let evidence = if findings.is_empty() {
                "no gates configured".to_owned()
            } else {
                findings.join("; ")
            };
            if g.baking {
                // A look while the step bakes: nothing failed so far.
                let next = g.extend_seconds.unwrap_or_default();
                return Some(format!(
                    "  look: {} so far ({evidence}); next look in {next} s",
                    g.verdict
                ));
            }
            let extend = g
                .extend_seconds
                .map(|s| format!(", extending the bake by {s} s"))
                .unwrap_or_default();
            Some(format!("  gates: {} ({evidence}){extend}", g.verdict))
        }
        "PreTrafficHook" | "BeforeStepHook" | "PostTrafficHook" | "AfterStepHook"
        | "OnRollbackHook" => {
            let (point, key) = match state {
                "PreTrafficHook" => ("preTraffic", "hook"),
                "BeforeStepHook" => ("beforeStep", "hook"),
                "PostTrafficHook" => ("postTraffic", "hook"),
                "AfterStepHook" => ("afterStep", "afterStep"),
                _ => ("onRollback", "onRollback"),
            };
            let h = &o[key];
            // A callback hook's record is whatever it answered with: it passed.
            (h["verdict"] != "skipped").then(|| {
                format!(
                    "  {point} hook {}: {}",
                    h["hook"].as_str().unwrap_or("(callback)"),
                    h["verdict"].as_str().unwrap_or("answered")
                )
            })
        }
        "GateFailed" => Some(format!(
            "  gate failed: {}",
            o["gates"]["error"].as_str().unwrap_or("?")
        )),
        "Steer" => {
            // An applied control is the last record; a refused one may have left none (only Steer's answer).
            let applied = o["steered"]["outcome"] == "applied";
            let op = o["operations"]
                .as_array()
                .and_then(|ops| ops.last())
                .filter(|op| applied || (!op["id"].is_null() && op["id"] == o["steered"]["id"]));
            let Some(op) = op else {
                return Some(format!(
                    "  a control was refused: {}",
                    o["steered"]["note"].as_str().unwrap_or_default()
                ));
            };
            let by = op["by"]["arn"].as_str().unwrap_or("an unknown caller");
            let reason = op["reason"]
                .as_str()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            let full = if op["full"] == true { " --full" } else { "" };
            let what = op["action"].as_str().unwrap_or("?");
            Some(match o["steered"]["outcome"].as_str() {
                Some("refused") => format!(
                    "  {what}{full} by {by}{reason} refused: {}",
                    o["steered"]["note"].as_str().unwrap_or_default()
                ),
                _ => format!(
                    "  {what}{full} by {by}{reason}: {}",
                    op["note"].as_str().unwrap_or_default()
                ),
            })
        }
        "PauseTimedOut" => Some("  the pause ran out (maxPauseSeconds): rolling back".into()),
        "RollBack" => {
            let r = &o["rollback"];
            let targets = r["targets"].as_array().filter(|t| t.len() > 1);
            let mut s = format!(
                "rollback: {} ({})",
                r["outcome"].as_str().unwrap_or("?"),
                if targets.is_some() {
                    "every alias of the release below"
                } else {
                    r["reason"].as_str().unwrap_or("")
                }
            );
            for t in targets.into_iter().flatten() {
                s.push_str(&format!("\n  {}", rolled_back_line(t)));
            }
            Some(s)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn steps_gates_and_rollbacks_read_as_sentences() {
        let rollout = json!({"deploymentId": "d-1", "deployment": {"functionName": "orders", "alias": "live", "targetVersion": "7"},
            "alias": {"functionName": "orders", "name": "live", "stableVersion": "6", "targetVersion": "7"}, "step": 0, "stepCount": 3, "percent": 10.0, "bakeSeconds": 5, "promoted": false,
            "gates": {"verdict": "fail", "step": 0, "error": "AlarmFired", "results": [{"gate": "alarms", "verdict": "fail",
                "error": "AlarmFired", "findings": ["in ALARM: errors"], "evidence": {"alarms": [{"name": "errors", "state": "ALARM"}]}}]},
            "rollback": {"outcome": "reverted", "reason": "back on 6"}});
        assert_eq!(
            exited("ShiftWeight", &rollout).unwrap(),
            "step 1/3: 10.0% on version 7, baking 5 s"
        );
        assert_eq!(
            exited("CheckGates", &rollout).unwrap(),
            "  gates: fail (in ALARM: errors)"
        );
        assert_eq!(
            exited("Prepare", &rollout).unwrap(),
            "prepared: orders:live on version 6 -> version 7, 3 steps"
        );
        assert_eq!(
            exited("RollBack", &rollout).unwrap(),
            "rollback: reverted (back on 6)"
        );
        assert_eq!(exited("Bake", &rollout), None);
        // A release: one deployment, a line per target.
        let release = json!({"deploymentId": "d-2", "deployment": {"release": "orders-1", "targets": []},
            "aliases": [{"functionName": "orders-api", "name": "live", "stableVersion": "6", "targetVersion": "7"},
                        {"functionName": "arn:aws:lambda:us-east-1:123456789012:function:orders-worker", "name": "live", "stableVersion": "30", "targetVersion": "31"}],
            "step": 1, "stepCount": 2, "percent": 100.0, "bakeSeconds": 1, "promoted": true,
            "rollback": {"outcome": "reverted", "reason": "…", "targets": [
                {"functionName": "orders-api", "aliasName": "live", "outcome": "reverted", "reason": "back on 6"},
                {"functionName": "orders-worker", "aliasName": "live", "outcome": "leftAlone", "reason": "someone moved it"}]}});
        assert_eq!(
            exited("Prepare", &release).unwrap(),
            "prepared release orders-1: 2 targets, 2 steps\n  orders-api:live on version 6 -> version 7\n  orders-worker:live on version 30 -> version 31"
        );
        assert_eq!(
            exited("ShiftWeight", &release).unwrap(),
            "step 2/2: promoted: 100% on the new versions of 2 targets, baking 1 s"
        );
        assert_eq!(
            exited("RollBack", &release).unwrap(),
            "rollback: reverted (every alias of the release below)\n  orders-api:live: reverted (back on 6)\n  orders-worker:live: leftAlone (someone moved it)"
        );
        let refused = json!({"functionName": "orders", "alias": "live", "error": {"Error": "AlarmFiringAtStart"}});
        assert_eq!(exited("Prepare", &refused), None);
    }

    #[test]
    fn an_analysis_shows_its_findings_and_an_extension() {
        let state = json!({"gates": {"verdict": "inconclusive", "step": 0, "extendSeconds": 300, "results": [
            {"gate": "alarms", "verdict": "pass", "findings": ["no alarm in ALARM (1 checked)"]},
            {"gate": "analysis", "verdict": "inconclusive",
             "findings": ["version 7 served 3 invocations in the window; minInvocations is 50"]}]}});
        assert_eq!(
            exited("CheckGates", &state).unwrap(),
            "  gates: inconclusive (no alarm in ALARM (1 checked); version 7 served 3 invocations in the window; minInvocations is 50), extending the bake by 300 s"
        );
        let look = json!({"gates": {"verdict": "pass", "step": 0, "baking": true, "extendSeconds": 60, "results": [
            {"gate": "analysis", "verdict": "pass", "findings": ["error rate 0.50% (1/200) is within maxErrorRate 5.00%"]}]}});
        assert_eq!(
            exited("CheckGates", &look).unwrap(),
            "  look: pass so far (error rate 0.50% (1/200) is within maxErrorRate 5.00%); next look in 60 s"
        );
        let none = json!({"gates": {"verdict": "pass", "step": 1, "results": []}});
        assert_eq!(
            exited("CheckGates", &none).unwrap(),
            "  gates: pass (no gates configured)"
        );
    }

    #[test]
    fn a_truncated_report_reads_as_one_line_with_its_count() {
        use safeshift_core::gates::alarms::{self, AlarmEvidence};
        use safeshift_core::gates::{Extensions, analysis::OnInconclusive, decide};
        // The report check-alarms writes for 100 alarms in ALARM: the evidence and the finding are cut.
        let listed: Vec<String> = (0..100).map(|i| format!("orders-errors-{i:03}")).collect();
        let found = listed
            .iter()
            .map(|name| AlarmEvidence {
                name: name.clone(),
                kind: "metric".into(),
                state: "ALARM".into(),
                reason: "r".repeat(1_023),
                updated_at: None,
            })
            .collect();
        let result = alarms::judge(&listed, found).unwrap();
        let once = Extensions {
            max: 0,
            seconds: 60,
            then: OnInconclusive::Fail,
        };
        let report = decide(Some(0), vec![result], once, None, None);
        let state = json!({"gates": report});
        assert_eq!(
            state["gates"]["results"][0]["evidence"]["truncated"]["alarms"],
            90
        );
        let line = exited("CheckGates", &state).unwrap();
        // The names that fit in a finding, then the count of the rest; never the evidence.
        assert!(
            line.starts_with("  gates: fail (in ALARM: orders-errors-000, orders-errors-001, "),
            "{line}"
        );
        assert!(line.ends_with(" more (not shown))"), "{line}");
        assert!(line.len() < 600 && !line.contains("rrrr"), "{line}");
    }
}
