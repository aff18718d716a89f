//! Operator controls: what a person does to a rollout in flight — pause it, resume it, end a bake early
//! (`promote`) or go to 100% now (`promote --full`), answer the approval gate — and the record each one leaves.
//!
//! A control is the output an operator sends to the task token of the wait the rollout is in (`Bake`,
//! `ExtendBake`, `Paused`, `Approval`: every wait of the state machine is a `waitForTaskToken` task, and its
//! token is in the execution's history). The wait ends with that output, and the state machine's `Steer` task
//! hands it here with the wait it ended: [`steer`] records who did what, when and why, and says where the rollout
//! goes next. A control that does not fit the wait (a resume while not paused) is recorded as refused and the
//! rollout goes back to the wait it was in, for the time that wait had left.

use serde::{Deserialize, Serialize};

use crate::gates::bounds;
use crate::rollout::Rollout;

/// The most controls one deployment records: each costs a handful of history events, and the history is
/// bounded (`asl::Definition::worst_case_history` counts them). Beyond it a control is refused, unrecorded —
/// except a way out of a pause or of the approval gate, so a rollout is never stuck.
pub const MAX_OPERATIONS: usize = 25;
/// How much of a reason, and of each identity field, an operation keeps.
pub const MAX_REASON_BYTES: usize = 512;
const MAX_IDENTITY_BYTES: usize = 256;

/// What an operator asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Hold at the current weight; the alarms stay watched.
    Pause,
    /// Go on from a pause, with the bake the wait had left.
    Resume,
    /// End the current bake now and go on (`full`: to 100% at once, past any approval gate).
    Promote,
    /// Let the rollout past its approval gate.
    Approve,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Promote => "promote",
            Action::Approve => "approve",
        }
    }
}

/// Who acted, as the caller's STS identity says (`GetCallerIdentity`). The CLI fills it in; Step Functions does
/// not tell a task who sent its token, so CloudTrail's `SendTaskSuccess` record is the authoritative one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// The output an operator sends to the wait's task token.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Control {
    /// Absent in `{"approved": true}`, what approvals sent before controls existed: an approval.
    #[serde(default)]
    pub action: Option<Action>,
    #[serde(default)]
    pub approved: Option<bool>,
    /// With `promote`: go to 100% now.
    #[serde(default)]
    pub full: bool,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub by: Option<Identity>,
    /// The sender's own id for this control, so it can find the record it left.
    #[serde(default)]
    pub id: Option<String>,
    /// The step (1-based) the sender saw the rollout at: a control that arrives once the rollout moved on is
    /// refused rather than applied to a step nobody looked at.
    #[serde(default)]
    pub step: Option<usize>,
}

/// The wait a control ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WaitState {
    Bake,
    ExtendBake,
    Paused,
    Approval,
}

/// Whether a control was carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Applied,
    Refused,
}

/// One control, as the rollout records it (in its output, and in the history of every later state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    pub action: Action,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub full: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Identity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the engine received it, Unix seconds.
    pub at: u64,
    /// The step (1-based) and weight the rollout was at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    pub percent: f64,
    pub outcome: Outcome,
    /// What it did, or why it was refused.
    pub note: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// A pause in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pause {
    pub since: u64,
    /// When the pause ends with a rollback (`PauseTimedOut`) unless resumed, Unix seconds.
    pub until: u64,
    /// The `Paused` wait's timeout: `until - now` when it was (re)entered.
    pub timeout_seconds: u64,
    /// The wait the pause interrupted had this long left: a resume waits it.
    pub remaining_wait_seconds: u64,
}

/// A bake an operator ended early: the gates still look at the alarms, not at the step's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Skip {
    /// 0-based, as `Rollout::step`.
    pub step: Option<usize>,
    /// Straight to the promotion: the next shift is the last step.
    #[serde(default)]
    pub full: bool,
    /// The promote's record in `Rollout::operations`: who ended the bake, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<usize>,
}

/// The most controls one deployment refuses without recording them (unreadable, or past [`MAX_OPERATIONS`]);
/// past it, `Steer` fails and the rollout rolls back: something is sending controls in a loop, and the history
/// must stay bounded.
pub const MAX_UNRECORDED: u32 = 10;

/// Where the rollout goes after `Steer` (the state machine's `Steered` choice reads `steered.next`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Next {
    /// Back to a watched bake for `waitSeconds`.
    Wait,
    /// Hold in `Paused` for `paused.timeoutSeconds`.
    Pause,
    /// Back to the approval gate.
    Approval,
    /// Judge the gates now (after a promote or an approval).
    Check,
}

/// What `Steer` decided about one control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Steered {
    pub next: Next,
    pub outcome: Outcome,
    pub note: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// Applies `control`, which ended the wait `wait` entered at `entered_ms` (Unix milliseconds), at `now_ms`.
/// `extend_seconds`: the `ExtendBake` wait's length (the gates' `extendSeconds`). Returns the rollout with the
/// control recorded, and where it goes.
pub fn steer(
    rollout: &Rollout,
    control: Control,
    wait: WaitState,
    entered_ms: u64,
    extend_seconds: Option<u64>,
    now_ms: u64,
) -> (Rollout, Steered) {
    let now = now_ms / 1000;
    let mut r = rollout.clone();
    let left = |length: u64| {
        let ends = entered_ms.saturating_add(length.saturating_mul(1000));
        ends.saturating_sub(now_ms).div_ceil(1000).max(1)
    };
    // Where a refused control sends the rollout: back to the wait it ended, for what that wait had left.
    let back = |r: &mut Rollout| match wait {
        WaitState::Bake => {
            r.wait_seconds = left(rollout.wait_seconds);
            Next::Wait
        }
        WaitState::ExtendBake => {
            r.wait_seconds = left(extend_seconds.unwrap_or(1));
            Next::Wait
        }
        WaitState::Paused => {
            if let Some(p) = r.paused.as_mut() {
                p.timeout_seconds = p.until.saturating_sub(now).max(1);
            }
            Next::Pause
        }
        WaitState::Approval => Next::Approval,
    };
    let action = match (control.action, control.approved) {
        (Some(a), _) => a,
        (None, Some(true)) => Action::Approve,
        _ => {
            let next = back(&mut r);
            r.unrecorded_controls += 1;
            return (r, refused(next, "the control names no action", control.id));
        }
    };
    let at = rollout.step.map(|s| s + 1);
    if control.step.is_some_and(|seen| Some(seen) != at) {
        let next = back(&mut r);
        r.unrecorded_controls += 1;
        let note = format!(
            "the rollout moved on (now step {}); the control was for step {}: not carried out",
            at.unwrap_or(0),
            control.step.unwrap_or(0)
        );
        return (r, refused(next, &note, control.id));
    }
    // Past the cap, only a way out of a pause or of the approval gate goes through (at most one per recorded
    // pause, one per gate): refusing it would leave the pause or the gate to time out and roll back.
    let progresses = matches!(
        (action, wait),
        (Action::Resume | Action::Promote, WaitState::Paused)
            | (Action::Approve | Action::Promote, WaitState::Approval)
    );
    if r.operations.len() >= MAX_OPERATIONS && !progresses {
        let next = back(&mut r);
        r.unrecorded_controls += 1;
        let note = format!(
            "a deployment records at most {MAX_OPERATIONS} controls; this one was not carried out"
        );
        return (r, refused(next, &note, control.id));
    }
    let percent = r.percent;
    let (outcome, next, note) = match (action, wait) {
        (Action::Pause, WaitState::Bake | WaitState::ExtendBake) => {
            let budget = r
                .deployment
                .max_pause_seconds
                .saturating_sub(r.paused_total_seconds);
            if budget == 0 {
                let next = back(&mut r);
                (
                    Outcome::Refused,
                    next,
                    format!(
                        "the deployment has been paused for its whole maxPauseSeconds ({} s) already",
                        r.deployment.max_pause_seconds
                    ),
                )
            } else {
                let remaining = if wait == WaitState::Bake {
                    left(rollout.wait_seconds)
                } else {
                    left(extend_seconds.unwrap_or(1))
                };
                r.paused = Some(Pause {
                    since: now,
                    until: now + budget,
                    timeout_seconds: budget,
                    remaining_wait_seconds: remaining,
                });
                (
                    Outcome::Applied,
                    Next::Pause,
                    format!(
                        "holding {percent}% with the alarms watched; rolls back at {} unless resumed ({remaining} s of the wait left)",
                        clock(now + budget)
                    ),
                )
            }
        }
        (Action::Resume | Action::Promote, WaitState::Paused) if r.paused.is_some() => {
            let pause = r.paused.take().expect("checked above");
            r.paused_total_seconds += now.saturating_sub(pause.since);
            if action == Action::Resume {
                r.wait_seconds = pause.remaining_wait_seconds;
                (
                    Outcome::Applied,
                    Next::Wait,
                    format!(
                        "paused {} s; baking the {} s the wait had left",
                        now.saturating_sub(pause.since),
                        pause.remaining_wait_seconds
                    ),
                )
            } else {
                promote(&mut r, control.full)
            }
        }
        (Action::Promote, WaitState::Bake | WaitState::ExtendBake) => promote(&mut r, control.full),
        (Action::Promote | Action::Approve, WaitState::Approval) => {
            r.approval_required = false;
            if action == Action::Promote {
                promote(&mut r, control.full)
            } else {
                (
                    Outcome::Applied,
                    Next::Check,
                    "approved: the gates are judged again, then the next step".to_owned(),
                )
            }
        }
        (_, _) => {
            let why = match (action, wait) {
                (Action::Pause, WaitState::Paused) => "already paused",
                (Action::Pause, WaitState::Approval) => {
                    "waiting for approval already holds the weight"
                }
                (Action::Resume, _) => "not paused",
                _ => "not waiting for approval",
            };
            let next = back(&mut r);
            (Outcome::Refused, next, why.to_owned())
        }
    };
    r.operations.push(Operation {
        action,
        full: control.full && action == Action::Promote,
        by: control.by.map(|b| Identity {
            arn: bounds::cut(&b.arn, MAX_IDENTITY_BYTES),
            account: b.account.map(|a| bounds::cut(&a, MAX_IDENTITY_BYTES)),
            user_id: b.user_id.map(|u| bounds::cut(&u, MAX_IDENTITY_BYTES)),
        }),
        reason: control
            .reason
            .filter(|r| !r.trim().is_empty())
            .map(|r| bounds::cut(&r, MAX_REASON_BYTES)),
        at: now,
        step: rollout.step.map(|s| s + 1),
        percent,
        outcome,
        note: note.clone(),
        id: control.id.clone().map(|i| bounds::cut(&i, 64)),
    });
    (
        r,
        Steered {
            next,
            outcome,
            note,
            id: control.id.map(|i| bounds::cut(&i, 64)),
        },
    )
}

fn promote(r: &mut Rollout, full: bool) -> (Outcome, Next, String) {
    r.skip = Some(Skip {
        step: r.step,
        full,
        // Recorded next, by `steer`.
        operation: Some(r.operations.len()),
    });
    let note = if full && !r.promoted {
        r.approval_required = false;
        "going to 100% now: the alarms are checked, then the promotion and the postTraffic hook"
            .to_owned()
    } else {
        "ending the bake now: the alarms are checked, then the next step".to_owned()
    };
    (Outcome::Applied, Next::Check, note)
}

fn refused(next: Next, note: &str, id: Option<String>) -> Steered {
    Steered {
        next,
        outcome: Outcome::Refused,
        note: note.to_owned(),
        id: id.map(|i| bounds::cut(&i, 64)),
    }
}

/// A Unix time as people read it in a note (RFC 3339, UTC).
pub fn clock(unix: u64) -> String {
    // A time past what the platform can represent (never a real one) is shown as its number.
    std::time::UNIX_EPOCH
        .checked_add(std::time::Duration::from_secs(unix))
        .map_or_else(
            || unix.to_string(),
            |t| humantime::format_rfc3339_seconds(t).to_string(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Deployment;
    use crate::names::Version;

    fn rollout(extra: &str) -> Rollout {
        let d = Deployment::parse(&format!(
            r#"{{"functionName":"orders","alias":"live","targetVersion":"7","strategy":"Linear10PercentEvery1Minute"{extra}}}"#
        ))
        .unwrap();
        Rollout::prepared(
            "d-1".into(),
            d,
            vec![(Version::new(6).unwrap(), "r0".into())],
        )
        .advanced(0, vec!["r1".into()], 1_000)
    }

    fn control(action: Action, full: bool) -> Control {
        Control {
            action: Some(action),
            full,
            reason: Some("looking at the dashboard".into()),
            by: Some(Identity {
                arn: "arn:aws:iam::123456789012:user/alice".into(),
                account: Some("123456789012".into()),
                user_id: None,
            }),
            id: Some("c-1".into()),
            ..Control::default()
        }
    }

    #[test]
    fn a_pause_holds_with_what_the_wait_had_left_and_a_resume_waits_it() {
        let r = rollout("");
        assert_eq!(r.wait_seconds, 60);
        // Paused 20 s into the step's 60-s bake.
        let (paused, s) = steer(
            &r,
            control(Action::Pause, false),
            WaitState::Bake,
            1_000_000,
            None,
            1_020_000,
        );
        assert_eq!((s.next, s.outcome), (Next::Pause, Outcome::Applied));
        let p = paused.paused.clone().unwrap();
        assert_eq!(
            (p.since, p.remaining_wait_seconds, p.timeout_seconds),
            (1_020, 40, 86_400)
        );
        let op = &paused.operations[0];
        assert_eq!(
            (op.action, op.step, op.percent, op.at),
            (Action::Pause, Some(1), 10.0, 1_020)
        );
        assert_eq!(
            op.by.as_ref().unwrap().arn,
            "arn:aws:iam::123456789012:user/alice"
        );
        assert_eq!(op.reason.as_deref(), Some("looking at the dashboard"));
        // Resumed 100 s later: the 40 s left, and the pause counted against the limit.
        let (resumed, s) = steer(
            &paused,
            control(Action::Resume, false),
            WaitState::Paused,
            1_020_000,
            None,
            1_120_000,
        );
        assert_eq!((s.next, s.outcome), (Next::Wait, Outcome::Applied));
        assert_eq!(
            (resumed.wait_seconds, resumed.paused_total_seconds),
            (40, 100)
        );
        assert!(resumed.paused.is_none());
        assert_eq!(resumed.operations.len(), 2);
        // A second pause gets only what is left of the limit.
        let (again, _) = steer(
            &resumed,
            control(Action::Pause, false),
            WaitState::Bake,
            1_120_000,
            None,
            1_121_000,
        );
        assert_eq!(again.paused.unwrap().timeout_seconds, 86_300);
    }

    #[test]
    fn a_control_that_does_not_fit_goes_back_to_its_wait_recorded_as_refused() {
        let r = rollout("");
        // An ExtendBake of 30 s, 10 s in: a resume there is refused and the 20 s left are waited.
        let (back, s) = steer(
            &r,
            control(Action::Resume, false),
            WaitState::ExtendBake,
            1_000_000,
            Some(30),
            1_010_000,
        );
        assert_eq!(
            (s.next, s.outcome, s.note.as_str()),
            (Next::Wait, Outcome::Refused, "not paused")
        );
        assert_eq!(back.wait_seconds, 20);
        assert_eq!(back.operations[0].outcome, Outcome::Refused);
        // An approval where none is awaited; a control naming nothing.
        let (_, s) = steer(
            &r,
            control(Action::Approve, false),
            WaitState::Bake,
            1_000_000,
            None,
            1_001_000,
        );
        assert_eq!((s.next, s.outcome), (Next::Wait, Outcome::Refused));
        let (unrecorded, s) = steer(
            &r,
            Control::default(),
            WaitState::Bake,
            1_000_000,
            None,
            1_001_000,
        );
        assert_eq!((s.next, s.outcome), (Next::Wait, Outcome::Refused));
        assert!(unrecorded.operations.is_empty());
        // No pausing allowed at all.
        let none = rollout(r#","maxPauseSeconds":0"#);
        let (_, s) = steer(
            &none,
            control(Action::Pause, false),
            WaitState::Bake,
            1_000_000,
            None,
            1_001_000,
        );
        assert_eq!((s.next, s.outcome), (Next::Wait, Outcome::Refused));
    }

    #[test]
    fn promote_ends_the_bake_and_full_goes_to_the_promotion_past_the_approval_gate() {
        let r = rollout(r#","approval":"beforePromotion""#);
        let (next, s) = steer(
            &r,
            control(Action::Promote, false),
            WaitState::Bake,
            1_000_000,
            None,
            1_001_000,
        );
        assert_eq!(s.next, Next::Check);
        assert!(next.bake_skipped() && next.next_look(1_001).is_none());
        assert_eq!(next.next_step(), Some(1));
        let (full, s) = steer(
            &r,
            control(Action::Promote, true),
            WaitState::Bake,
            1_000_000,
            None,
            1_001_000,
        );
        assert_eq!(s.next, Next::Check);
        assert_eq!(full.next_step(), Some(full.step_count - 1));
        let promoted = full.advanced(full.step_count - 1, vec!["r2".into()], 1_002);
        assert!(promoted.promoted && !promoted.approval_required && promoted.skip.is_none());
        assert!(full.operations[0].full);
    }

    #[test]
    fn an_approval_is_recorded_and_the_old_approved_output_still_approves() {
        let mut r = rollout(r#","approval":{"beforeStep":2}"#);
        assert!(r.approval_required);
        let (approved, s) = steer(
            &r,
            control(Action::Approve, false),
            WaitState::Approval,
            1_000_000,
            None,
            1_001_000,
        );
        assert_eq!((s.next, s.outcome), (Next::Check, Outcome::Applied));
        assert!(!approved.approval_required);
        let legacy = Control {
            approved: Some(true),
            ..Control::default()
        };
        let (approved, s) = steer(&r, legacy, WaitState::Approval, 1_000_000, None, 1_001_000);
        assert_eq!(
            (s.next, approved.operations[0].action),
            (Next::Check, Action::Approve)
        );
        // A pause at the gate is refused and the gate waits on.
        let (_, s) = steer(
            &r,
            control(Action::Pause, false),
            WaitState::Approval,
            1_000_000,
            None,
            1_001_000,
        );
        assert_eq!((s.next, s.outcome), (Next::Approval, Outcome::Refused));
        // The record is bounded: past the limit a control that would loop is refused and not recorded, while an
        // approval still goes through (refusing it would leave the gate to time out).
        r.operations = vec![approved.operations[0].clone(); MAX_OPERATIONS];
        let at_gate = |r: &Rollout, action| {
            steer(
                r,
                control(action, false),
                WaitState::Approval,
                1_000_000,
                None,
                1_001_000,
            )
        };
        let (full, s) = at_gate(&r, Action::Pause);
        assert_eq!(
            (s.next, s.outcome, full.operations.len()),
            (Next::Approval, Outcome::Refused, MAX_OPERATIONS)
        );
        let (through, s) = at_gate(&r, Action::Approve);
        assert_eq!(
            (s.next, s.outcome, through.operations.len()),
            (Next::Check, Outcome::Applied, MAX_OPERATIONS + 1)
        );
    }

    #[test]
    fn a_control_for_a_step_the_rollout_left_is_refused_and_counted() {
        let r = rollout("");
        let late = Control {
            step: Some(2),
            ..control(Action::Promote, false)
        };
        let (back, s) = steer(&r, late, WaitState::Bake, 1_000_000, None, 1_010_000);
        assert_eq!((s.next, s.outcome), (Next::Wait, Outcome::Refused));
        assert!(s.note.contains("moved on (now step 1)"), "{}", s.note);
        assert!(back.skip.is_none() && back.operations.is_empty());
        assert_eq!(back.unrecorded_controls, 1);
        let on_time = Control {
            step: Some(1),
            ..control(Action::Promote, false)
        };
        let (promoted, s) = steer(&r, on_time, WaitState::Bake, 1_000_000, None, 1_010_000);
        assert_eq!((s.next, s.outcome), (Next::Check, Outcome::Applied));
        assert_eq!(promoted.skip.unwrap().operation, Some(0));
    }
}
