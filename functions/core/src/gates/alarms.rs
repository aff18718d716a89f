//! The alarm gate: the deployment's CloudWatch alarms. Any listed alarm in ALARM fails the step with
//! `AlarmFired`; a listed alarm that does not exist is an error, never "healthy".

use serde::{Deserialize, Serialize};

use super::{GateResult, Verdict};
use crate::error::{Error, ErrorType, Resource};

/// The gate's name in reports.
pub const GATE: &str = "alarms";

/// One alarm's state as CloudWatch reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmEvidence {
    pub name: String,
    /// `metric` or `composite`.
    pub kind: String,
    /// OK, ALARM or INSUFFICIENT_DATA.
    pub state: String,
    pub reason: String,
    /// When the state last changed, RFC 3339.
    pub updated_at: Option<String>,
}

/// What the alarm gate read: every listed alarm's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmsEvidence {
    pub alarms: Vec<AlarmEvidence>,
}

impl AlarmsEvidence {
    /// The alarms in ALARM, by name.
    pub fn failing(&self) -> Vec<&str> {
        self.alarms
            .iter()
            .filter(|a| a.state == "ALARM")
            .map(|a| a.name.as_str())
            .collect()
    }
}

/// Judges the alarms. Every listed alarm must be found: a missing one is an error, never "healthy". Only ALARM
/// fails a step (INSUFFICIENT_DATA passes, as in CodeDeploy, and stays visible in the evidence).
pub fn judge(listed: &[String], found: Vec<AlarmEvidence>) -> Result<GateResult, Error> {
    if let Some(missing) = listed
        .iter()
        .find(|name| !found.iter().any(|a| &a.name == *name))
    {
        return Err(Error::ResourceNotFound {
            resource: Resource::Alarm,
            name: missing.clone(),
        });
    }
    let evidence = AlarmsEvidence {
        alarms: found
            .into_iter()
            .filter(|a| listed.contains(&a.name))
            .collect(),
    };
    let failing = evidence.failing();
    // A passing step's finding stays one short line however many alarms there are: it is kept in the rollout's
    // record of every step, while the names and states are in the evidence.
    let (verdict, error, finding) = if failing.is_empty() {
        let n = evidence.alarms.len();
        (
            Verdict::Pass,
            None,
            format!("no alarm in ALARM ({n} checked)"),
        )
    } else {
        (
            Verdict::Fail,
            Some(ErrorType::AlarmFired),
            format!("in ALARM: {}", failing.join(", ")),
        )
    };
    let findings = vec![finding];
    Ok(GateResult {
        gate: GATE.into(),
        verdict,
        error,
        findings,
        evidence: serde_json::to_value(&evidence).expect("alarm evidence is plain data"),
    })
}

/// The alarm evidence of a report's alarm result, for displays.
pub fn evidence(result: &GateResult) -> Option<AlarmsEvidence> {
    serde_json::from_value(result.evidence.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(name: &str, state: &str) -> AlarmEvidence {
        AlarmEvidence {
            name: name.into(),
            kind: "metric".into(),
            state: state.into(),
            reason: format!("{name} is {state}"),
            updated_at: None,
        }
    }

    #[test]
    fn alarms_fail_closed_and_only_alarm_fails() {
        let listed = vec!["a".to_string(), "b".to_string()];
        let missing = judge(&listed, vec![alarm("a", "OK")]).unwrap_err();
        assert_eq!(missing.to_string(), "alarm `b` does not exist");

        let healthy = judge(
            &listed,
            vec![alarm("a", "OK"), alarm("b", "INSUFFICIENT_DATA")],
        )
        .unwrap();
        assert_eq!((healthy.verdict, healthy.error), (Verdict::Pass, None));
        assert_eq!(healthy.findings, ["no alarm in ALARM (2 checked)"]);

        let firing = judge(
            &listed,
            vec![
                alarm("a", "ALARM"),
                alarm("b", "OK"),
                alarm("unlisted", "ALARM"),
            ],
        )
        .unwrap();
        assert_eq!(
            (firing.verdict, firing.error),
            (Verdict::Fail, Some(ErrorType::AlarmFired))
        );
        assert_eq!(firing.findings, ["in ALARM: a"]);
        let evidence = evidence(&firing).unwrap();
        assert_eq!(evidence.failing(), ["a"]);
        assert_eq!(evidence.alarms.len(), 2, "unlisted alarms are not evidence");
        assert_eq!(judge(&[], vec![]).unwrap().verdict, Verdict::Pass);
    }
}
