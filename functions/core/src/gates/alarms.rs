//! The alarm gate: the deployment's CloudWatch alarms. Any listed alarm in ALARM fails the step with
//! `AlarmFired`; a listed alarm that does not exist is an error, never "healthy".

use serde::{Deserialize, Serialize};

use super::bounds::{self, MAX_ALARM_REASON_BYTES, MAX_ALARMS_SHOWN, MAX_FINDING_BYTES};
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

/// What the alarm gate read: the listed alarms' states, bounded because the report travels in the state
/// machine's state (see [`super::bounds`]). Up to [`MAX_ALARMS_SHOWN`] alarms, every one in the order read;
/// beyond that, the first [`MAX_ALARMS_SHOWN`] after putting those in ALARM first, then INSUFFICIENT_DATA, then
/// the rest (read order within each), with `"truncated": {"alarms": N}` counting the ones left out. Each reason
/// is cut to [`MAX_ALARM_REASON_BYTES`], ending `…[+N bytes]` when cut. The finding counts every alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmsEvidence {
    pub alarms: Vec<AlarmEvidence>,
    /// What was left out, when anything was; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<AlarmsTruncated>,
}

/// How much of the alarm evidence is not shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmsTruncated {
    /// Alarms read but not listed in `alarms`.
    pub alarms: usize,
}

impl AlarmsEvidence {
    /// The evidence of `alarms` (all of them read), within the caps.
    fn shown(mut alarms: Vec<AlarmEvidence>) -> Self {
        let read = alarms.len();
        if read > MAX_ALARMS_SHOWN {
            // A stable sort: what failed the step first, then what could not be judged, each in read order.
            alarms.sort_by_key(|a| match a.state.as_str() {
                "ALARM" => 0,
                "INSUFFICIENT_DATA" => 1,
                _ => 2,
            });
            alarms.truncate(MAX_ALARMS_SHOWN);
        }
        for a in &mut alarms {
            if a.reason.len() > MAX_ALARM_REASON_BYTES {
                a.reason = bounds::cut(&a.reason, MAX_ALARM_REASON_BYTES);
            }
        }
        let truncated = (read > alarms.len()).then(|| AlarmsTruncated {
            alarms: read - alarms.len(),
        });
        Self { alarms, truncated }
    }

    /// The alarms in ALARM among those shown, by name.
    pub fn failing(&self) -> Vec<&str> {
        failing(&self.alarms)
    }
}

fn failing(alarms: &[AlarmEvidence]) -> Vec<&str> {
    alarms
        .iter()
        .filter(|a| a.state == "ALARM")
        .map(|a| a.name.as_str())
        .collect()
}

/// The failing finding: `in ALARM: a, b`, naming as many as fit in [`MAX_FINDING_BYTES`] and ending
/// ` and N more (not shown)` when some do not (the first always fits: names are at most 255 bytes).
fn in_alarm(names: &[&str]) -> String {
    let more = |n: usize| format!(" and {n} more (not shown)");
    let mut finding = String::from("in ALARM: ");
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            // Room for this name and, if any follow, for the count of those.
            let after = names.len() - i - 1;
            let tail = if after > 0 { more(after).len() } else { 0 };
            if finding.len() + ", ".len() + name.len() + tail > MAX_FINDING_BYTES {
                finding.push_str(&more(names.len() - i));
                break;
            }
            finding.push_str(", ");
        }
        finding.push_str(name);
    }
    finding
}

/// Judges the alarms. Every listed alarm must be found: a missing one is an error, never "healthy". Only ALARM
/// fails a step (INSUFFICIENT_DATA passes, as in CodeDeploy, and stays visible in the evidence).
pub fn judge(listed: &[String], found: Vec<AlarmEvidence>) -> Result<GateResult, Error> {
    judge_during(listed, found, &[])
}

/// An alarm that was already in ALARM when an `incidentFix` deployment started: the incident the fix is for.
/// It does not judge the fix while it stays in that same ALARM (its state unchanged since `since`); once it has
/// left ALARM, it judges as any other — going back to ALARM fails the step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncidentAlarm {
    pub name: String,
    /// When it went to ALARM, as CloudWatch stamped it (`StateUpdatedTimestamp`, RFC 3339).
    pub since: String,
}

/// Whether `alarm` is still in the ALARM an incident fix started under.
fn still_the_incident(alarm: &AlarmEvidence, incident: &[IncidentAlarm]) -> bool {
    alarm.state == "ALARM"
        && incident
            .iter()
            .any(|i| i.name == alarm.name && alarm.updated_at.as_deref() == Some(i.since.as_str()))
}

/// [`judge`] for a deployment shipping an incident's fix: the `incident` alarms, still in the ALARM they were
/// in at the start, are shown but do not fail the step.
pub fn judge_during(
    listed: &[String],
    found: Vec<AlarmEvidence>,
    incident: &[IncidentAlarm],
) -> Result<GateResult, Error> {
    if let Some(missing) = listed
        .iter()
        .find(|name| !found.iter().any(|a| &a.name == *name))
    {
        return Err(Error::ResourceNotFound {
            resource: Resource::Alarm,
            name: missing.clone(),
        });
    }
    let read: Vec<AlarmEvidence> = found
        .into_iter()
        .filter(|a| listed.contains(&a.name))
        .collect();
    // Judged on every alarm read; only what the report shows is bounded.
    let waived: Vec<&str> = read
        .iter()
        .filter(|a| still_the_incident(a, incident))
        .map(|a| a.name.as_str())
        .collect();
    let failing: Vec<&str> = failing(&read)
        .into_iter()
        .filter(|name| !waived.contains(name))
        .collect();
    // A passing step's finding stays one short line however many alarms there are: it is kept in the rollout's
    // record of every step, while the names and states are in the evidence.
    let (verdict, error, finding) = if failing.is_empty() {
        let n = read.len();
        (
            Verdict::Pass,
            None,
            format!("no alarm in ALARM ({n} checked)"),
        )
    } else {
        (
            Verdict::Fail,
            Some(ErrorType::AlarmFired),
            in_alarm(&failing),
        )
    };
    let mut findings = vec![finding];
    if !waived.is_empty() {
        findings.push(format!(
            "still in the incident's ALARM, not judging this fix until it leaves ALARM (incidentFix): {}",
            waived.join(", ")
        ));
    }
    let evidence = AlarmsEvidence::shown(read);
    Ok(GateResult {
        gate: GATE.into(),
        verdict,
        error,
        findings,
        evidence: serde_json::to_value(&evidence).expect("alarm evidence is plain data"),
    })
}

/// Prepare's check of the alarms, before any traffic moves: every listed alarm must exist (a typo is found now,
/// not after the first step has baked), and none may already be in ALARM (the deployment would roll back at its
/// first step: `AlarmFiringAtStart`, naming them).
///
/// Shipping an incident's fix (`incident_fix`), the alarms in ALARM are the incident: they are returned, with
/// when each went to ALARM, instead of refusing.
pub fn check_before_start(
    listed: &[String],
    found: Vec<AlarmEvidence>,
    incident_fix: bool,
) -> Result<Vec<IncidentAlarm>, Error> {
    judge(listed, found.clone())?;
    let in_alarm: Vec<&AlarmEvidence> = found
        .iter()
        .filter(|a| a.state == "ALARM" && listed.contains(&a.name))
        .collect();
    if in_alarm.is_empty() {
        return Ok(Vec::new());
    }
    if !incident_fix {
        return Err(Error::AlarmFiringAtStart {
            alarms: firing(listed, found)?,
        });
    }
    Ok(in_alarm
        .into_iter()
        .map(|a| IncidentAlarm {
            name: a.name.clone(),
            // An alarm without its change time cannot be told apart from a new ALARM: it stays judged.
            since: a.updated_at.clone().unwrap_or_default(),
        })
        .collect())
}

/// The listed alarms in ALARM, by name, as the alarm gate's bounded evidence shows them (those in ALARM first);
/// a listed alarm that does not exist is an error, as in [`judge`].
pub fn firing(listed: &[String], found: Vec<AlarmEvidence>) -> Result<Vec<String>, Error> {
    firing_during(listed, found, &[])
}

/// [`firing`], leaving out the alarms still in an incident's ALARM (see [`judge_during`]).
pub fn firing_during(
    listed: &[String],
    found: Vec<AlarmEvidence>,
    incident: &[IncidentAlarm],
) -> Result<Vec<String>, Error> {
    let result = judge_during(listed, found, incident)?;
    Ok(evidence(&result)
        .map(|e| {
            e.alarms
                .iter()
                .filter(|a| a.state == "ALARM" && !still_the_incident(a, incident))
                .map(|a| a.name.clone())
                .collect()
        })
        .unwrap_or_default())
}

/// A listed alarm that went to ALARM while its deployment ran, as the alarm's state-change event told it. The
/// engine records the first one against the deployment's hold on the alias, so a step that starts after the
/// event (the alarm may be OK again by then) still fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FiredAlarm {
    pub alarm: String,
    /// CloudWatch's reason, cut to [`MAX_ALARM_REASON_BYTES`].
    pub reason: String,
    /// When it went to ALARM, as the event says.
    pub changed_at: String,
}

impl FiredAlarm {
    pub fn new(alarm: impl Into<String>, reason: &str, changed_at: impl Into<String>) -> Self {
        Self {
            alarm: alarm.into(),
            reason: bounds::cut(reason, MAX_ALARM_REASON_BYTES),
            changed_at: changed_at.into(),
        }
    }

    /// The error a deployment ends with: `AlarmFired`, naming the alarm, when and why.
    pub fn error(&self) -> Error {
        Error::AlarmFired {
            alarms: vec![format!(
                "{} (went to ALARM at {}: {})",
                self.alarm, self.changed_at, self.reason
            )],
        }
    }
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
    fn a_fired_alarm_names_itself_when_and_why_with_its_reason_bounded() {
        let fired = FiredAlarm::new("orders-errors", &"x".repeat(1000), "2026-11-29T10:00:05Z");
        assert!(fired.reason.len() <= MAX_ALARM_REASON_BYTES && fired.reason.ends_with("bytes]"));
        let short = FiredAlarm::new("orders-errors", "Threshold Crossed", "2026-11-29T10:00:05Z");
        assert_eq!(
            short.error().to_string(),
            "alarm in ALARM: orders-errors (went to ALARM at 2026-11-29T10:00:05Z: Threshold Crossed)"
        );
        assert_eq!(short.error().error_type(), ErrorType::AlarmFired);
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

    #[test]
    fn before_start_a_missing_or_firing_alarm_refuses_the_deployment() {
        let listed = vec!["a".to_string(), "b".to_string()];
        let missing = check_before_start(&listed, vec![alarm("a", "OK")], false).unwrap_err();
        assert_eq!(missing.to_string(), "alarm `b` does not exist");
        let firing =
            check_before_start(&listed, vec![alarm("a", "ALARM"), alarm("b", "OK")], false)
                .unwrap_err();
        assert_eq!(firing.error_type(), ErrorType::AlarmFiringAtStart);
        assert_eq!(
            firing.to_string(),
            "alarm already in ALARM at start: a; resolve it before deploying"
        );
        assert!(
            check_before_start(
                &listed,
                vec![alarm("a", "OK"), alarm("b", "INSUFFICIENT_DATA")],
                false
            )
            .is_ok_and(|incident| incident.is_empty())
        );
    }

    fn since(name: &str, state: &str, at: &str) -> AlarmEvidence {
        AlarmEvidence {
            updated_at: Some(at.into()),
            ..alarm(name, state)
        }
    }

    #[test]
    fn an_incident_fix_starts_under_its_alarm_and_is_judged_once_the_alarm_left_it() {
        let listed = vec!["a".to_string(), "b".to_string()];
        let start = vec![
            since("a", "ALARM", "2026-11-29T10:00:00Z"),
            since("b", "OK", "2026-11-29T09:00:00Z"),
        ];
        // A missing alarm is still refused, incident or not.
        assert!(check_before_start(&listed, vec![start[0].clone()], true).is_err());
        let incident = check_before_start(&listed, start.clone(), true).unwrap();
        assert_eq!(
            incident,
            [IncidentAlarm {
                name: "a".into(),
                since: "2026-11-29T10:00:00Z".into()
            }]
        );
        // Still in the same ALARM: shown, not judged.
        let during = judge_during(&listed, start.clone(), &incident).unwrap();
        assert_eq!(during.verdict, Verdict::Pass);
        assert!(
            during.findings[1].contains("incidentFix): a"),
            "{:?}",
            during.findings
        );
        assert!(firing_during(&listed, start, &incident).unwrap().is_empty());
        // It left ALARM and came back (a later change time): the fix is judged by it again, and fails.
        let again = vec![
            since("a", "ALARM", "2026-11-29T10:07:00Z"),
            since("b", "OK", "2026-11-29T09:00:00Z"),
        ];
        let judged = judge_during(&listed, again.clone(), &incident).unwrap();
        assert_eq!(
            (judged.verdict, judged.error),
            (Verdict::Fail, Some(ErrorType::AlarmFired))
        );
        assert_eq!(firing_during(&listed, again, &incident).unwrap(), ["a"]);
        // Another alarm going to ALARM is never the incident's.
        let other = vec![
            since("a", "ALARM", "2026-11-29T10:00:00Z"),
            since("b", "ALARM", "2026-11-29T10:05:00Z"),
        ];
        assert_eq!(
            judge_during(&listed, other, &incident).unwrap().verdict,
            Verdict::Fail
        );
    }

    /// The worst a deployment can list: 100 alarms (its limit), each name 255 bytes (CloudWatch's), each reason
    /// 1,023 characters (CloudWatch's).
    fn worst(state: &str) -> (Vec<String>, Vec<AlarmEvidence>) {
        let listed: Vec<String> = (0..100)
            .map(|i| format!("{i:03}-{}", "n".repeat(251)))
            .collect();
        let found = listed
            .iter()
            .map(|name| AlarmEvidence {
                reason: "r".repeat(1_023),
                updated_at: Some("2026-01-01T00:00:00.000Z".into()),
                ..alarm(name, state)
            })
            .collect();
        (listed, found)
    }

    #[test]
    fn the_worst_legal_alarm_report_is_small_and_says_what_it_left_out() {
        let (listed, found) = worst("ALARM");
        assert!(listed.iter().all(|n| n.len() == 255));
        let result = judge(&listed, found).unwrap();
        assert_eq!(
            (result.verdict, result.error),
            (Verdict::Fail, Some(ErrorType::AlarmFired))
        );
        let report = crate::gates::decide(
            Some(0),
            vec![result],
            crate::gates::Extensions {
                max: 0,
                seconds: 60,
                then: crate::gates::analysis::OnInconclusive::Fail,
            },
            None,
            None,
        );
        let size = serde_json::to_string(&report).unwrap().len();
        // Unbounded, this was ~160 KB, and twice that in the state after GateFailed: past 256 KB.
        assert!(size < 16 * 1024, "the report is {size} bytes");

        let result = &report.results[0];
        let evidence = evidence(result).unwrap();
        assert_eq!(evidence.alarms.len(), MAX_ALARMS_SHOWN);
        assert_eq!(
            evidence.truncated,
            Some(AlarmsTruncated {
                alarms: 100 - MAX_ALARMS_SHOWN
            })
        );
        assert_eq!(
            serde_json::to_value(&evidence).unwrap()["truncated"],
            serde_json::json!({"alarms": 90})
        );
        for a in &evidence.alarms {
            assert!(a.reason.len() <= MAX_ALARM_REASON_BYTES, "{}", a.reason);
            let kept = a.reason.split('…').next().unwrap().len();
            assert!(
                a.reason.ends_with(&format!("…[+{} bytes]", 1_023 - kept)),
                "{}",
                a.reason
            );
        }
        // The finding names the first alarm and counts the rest.
        let finding = &result.findings[0];
        assert!(finding.len() <= MAX_FINDING_BYTES, "{finding}");
        assert!(finding.starts_with("in ALARM: 000-nnn"), "{finding}");
        let named = finding.matches("-nnn").count();
        assert!(
            finding.ends_with(&format!(" and {} more (not shown)", 100 - named)),
            "{finding}"
        );
    }

    #[test]
    fn alarms_in_alarm_are_shown_first_when_not_all_fit() {
        let (listed, mut found) = worst("OK");
        found[97].state = "ALARM".into();
        found[42].state = "INSUFFICIENT_DATA".into();
        found[3].state = "ALARM".into();
        let result = judge(&listed, found).unwrap();
        assert_eq!(result.verdict, Verdict::Fail);
        let e = evidence(&result).unwrap();
        let names: Vec<&str> = e.alarms.iter().map(|a| &a.name[..3]).collect();
        assert_eq!(
            names,
            [
                "003", "097", "042", "000", "001", "002", "004", "005", "006", "007"
            ]
        );
        assert_eq!(e.failing().len(), 2);
        // Two 255-byte names do not fit in one finding: it names the first and counts the other.
        assert_eq!(
            result.findings,
            [format!("in ALARM: {} and 1 more (not shown)", listed[3])]
        );
        let short = vec!["a".to_string(), "b".to_string()];
        let both = judge(&short, vec![alarm("a", "ALARM"), alarm("b", "ALARM")]).unwrap();
        assert_eq!(both.findings, ["in ALARM: a, b"]);
        // A passing step's finding counts all 100.
        let (listed, found) = worst("OK");
        let healthy = judge(&listed, found).unwrap();
        assert_eq!(healthy.findings, ["no alarm in ALARM (100 checked)"]);
        assert_eq!(
            evidence(&healthy).unwrap().truncated,
            Some(AlarmsTruncated { alarms: 90 })
        );
    }

    #[test]
    fn few_alarms_are_shown_whole_in_the_order_read() {
        let listed = vec!["b".to_string(), "a".to_string()];
        let result = judge(&listed, vec![alarm("b", "OK"), alarm("a", "ALARM")]).unwrap();
        let value = &result.evidence;
        assert!(value.get("truncated").is_none(), "{value}");
        assert_eq!(value["alarms"][0]["name"], "b");
        assert_eq!(value["alarms"][1]["reason"], "a is ALARM");
    }
}
