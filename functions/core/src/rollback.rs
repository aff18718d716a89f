//! The rollback's decision: put the alias back on the stable version, but only while it still carries what this
//! execution wrote. Anything else is someone else's change — a person's, or a newer deployment's — and theirs
//! wins.

use serde::Serialize;

use crate::alias::{AliasState, AliasTarget, AliasUpdate};
use crate::rollout::Rollout;

/// What a rollback does.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum RollbackDecision {
    /// Already on the stable version with no weights: nothing to write.
    AlreadyStable,
    /// Put the alias back on the stable version, routing cleared.
    Revert { update: AliasUpdate },
    /// The alias is not in a state this execution made: someone else owns it now. Never overwrite.
    LeaveAlone { reason: String },
}

/// Decides a rollback from the alias as just read. The alias is this execution's to revert only while it carries
/// the revision its last write produced with the routing that write set, or — for a write whose answer was lost,
/// so whose revision was never read — exactly the routing of the step it was writing, and only while such a write
/// may still be in play (`lost_write_may_land`: the execution's own failure, or shortly after it stopped; long
/// after, the same routing is someone else's). Lambda gives every write a new revision, so a person's change, even
/// one that restores the same routing, and a newer deployment's are never taken for ours.
///
/// A release decides this for each of its aliases (`target`, one of `rollout.aliases`) on its own: one shifted
/// before a write on another failed shows the step being written, so it is reverted; one someone changed
/// meanwhile is left alone, whatever the others show.
pub fn decide_rollback(
    rollout: &Rollout,
    target: &AliasTarget,
    alias: &AliasState,
    lost_write_may_land: bool,
) -> RollbackDecision {
    let stable = target.stable_only();
    if alias.shows(&stable) {
        return RollbackDecision::AlreadyStable;
    }
    let last_write_stands = rollout
        .last_written(target)
        .is_some_and(|written| alias.revision_id == target.revision_id && alias.shows(&written));
    let lost_write_landed = lost_write_may_land
        && rollout
            .next_write(target)
            .is_some_and(|next| alias.shows(&next));
    if last_write_stands || lost_write_landed {
        RollbackDecision::Revert { update: stable }
    } else {
        RollbackDecision::LeaveAlone {
            reason: format!(
                "the alias routes {} (revision {}), which this deployment ({} -> {}) did not leave it at; leaving it \
                 as it is",
                alias.describe(),
                alias.revision_id,
                target.stable_version,
                target.target_version
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Deployment;
    use crate::names::Version;

    fn alias(version: &str, weights: &[(&str, f64)], revision: &str) -> AliasState {
        AliasState::new(version, weights, revision)
    }

    /// `orders:live` from 6 to 7 over 10%, 20%, … 100%, prepared at revision r0.
    fn linear() -> Rollout {
        let d = Deployment::parse(
            r#"{"functionName":"orders","alias":"live","targetVersion":"7","strategy":"Linear10PercentEvery1Minute"}"#,
        )
        .unwrap();
        Rollout::prepared(
            "d-1".into(),
            d,
            vec![(Version::new(6).unwrap(), "r0".into())],
        )
    }

    fn reverts(decision: RollbackDecision) -> bool {
        match decision {
            RollbackDecision::Revert { update } => {
                assert_eq!(
                    (update.function_version.as_str(), update.weights.len()),
                    ("6", 0)
                );
                true
            }
            _ => false,
        }
    }

    #[test]
    fn the_stable_alias_needs_nothing() {
        let r = linear().advanced(1, vec!["r2".into()], 0);
        assert_eq!(
            decide_rollback(&r, &r.aliases[0], &alias("6", &[], "r9"), true),
            RollbackDecision::AlreadyStable
        );
    }

    #[test]
    fn the_alias_as_this_execution_left_it_is_reverted() {
        let r = linear().advanced(1, vec!["r2".into()], 0);
        assert!(reverts(decide_rollback(
            &r,
            &r.aliases[0],
            &alias("6", &[("7", 0.2)], "r2"),
            true
        )));
        let promoted = linear().advanced(9, vec!["r10".into()], 0);
        assert!(reverts(decide_rollback(
            &promoted,
            &promoted.aliases[0],
            &alias("7", &[], "r10"),
            true
        )));
    }

    #[test]
    fn a_write_whose_answer_was_lost_is_still_ours() {
        // Step 2 is recorded; the write of step 3 landed (new revision, never read) before the failure.
        let r = linear().advanced(1, vec!["r2".into()], 0);
        assert!(reverts(decide_rollback(
            &r,
            &r.aliases[0],
            &alias("6", &[("7", 0.3)], "r3"),
            true
        )));
        // Prepared, never shifted: the first write landed unseen.
        assert!(reverts(decide_rollback(
            &linear(),
            &linear().aliases[0],
            &alias("6", &[("7", 0.1)], "r1"),
            true
        )));
    }

    #[test]
    fn long_after_a_stop_the_next_steps_routing_is_someone_elses() {
        // The reconciler, hours after the stop: 30% is what step 3 would have written, but no write of this
        // execution can land any more, so whoever set it owns it.
        let r = linear().advanced(1, vec!["r2".into()], 0);
        assert!(matches!(
            decide_rollback(&r, &r.aliases[0], &alias("6", &[("7", 0.3)], "r3"), false),
            RollbackDecision::LeaveAlone { .. }
        ));
        // Its own last write still stands, and is still its to revert.
        assert!(reverts(decide_rollback(
            &r,
            &r.aliases[0],
            &alias("6", &[("7", 0.2)], "r2"),
            false
        )));
    }

    #[test]
    fn a_persons_or_a_newer_deployments_change_is_left_alone() {
        let r = linear().advanced(1, vec!["r2".into()], 0);
        for theirs in [
            // A person moved the weight, or restored ours by hand (a new revision).
            alias("6", &[("7", 0.5)], "r2"),
            alias("6", &[("7", 0.2)], "r-person"),
            // Another version, another target, several weights.
            alias("6", &[("8", 0.3)], "r2"),
            alias("8", &[], "r2"),
            alias("6", &[("7", 0.2), ("8", 0.1)], "r2"),
            // A newer deployment promoted this same target.
            alias("7", &[], "r-newer"),
        ] {
            let decision = decide_rollback(&r, &r.aliases[0], &theirs, true);
            let RollbackDecision::LeaveAlone { reason } = &decision else {
                panic!("{theirs:?}: {decision:?}")
            };
            assert!(reason.contains("(6 -> 7) did not leave it at"), "{reason}");
        }
        // Before any shift, only the first step's routing can be ours.
        assert!(matches!(
            decide_rollback(
                &linear(),
                &linear().aliases[0],
                &alias("7", &[], "r0"),
                true
            ),
            RollbackDecision::LeaveAlone { .. }
        ));
    }

    #[test]
    fn a_release_reverts_only_the_aliases_it_changed() {
        // Step 1 of a three-target release is recorded; step 2 was being written when it failed: the api's write
        // landed, the worker's did not, and meanwhile a person pointed the feed at version 9.
        let r = crate::rollout::tests::release().advanced(
            0,
            vec!["a1".into(), "w1".into(), "f1".into()],
            0,
        );
        let found = [
            alias("6", &[("7", 0.2)], "a2"),
            alias("30", &[("31", 0.1)], "w1"),
            alias("9", &[], "f7"),
        ];
        let decisions: Vec<RollbackDecision> = r
            .aliases
            .iter()
            .zip(&found)
            .map(|(a, now)| decide_rollback(&r, a, now, true))
            .collect();
        assert!(
            matches!(&decisions[0], RollbackDecision::Revert { update } if update.describe() == "version 6")
        );
        assert!(
            matches!(&decisions[1], RollbackDecision::Revert { update } if update.describe() == "version 30")
        );
        assert!(
            matches!(&decisions[2], RollbackDecision::LeaveAlone { .. }),
            "{:?}",
            decisions[2]
        );
        // An alias the release never got to is already stable.
        let untouched = alias("2", &[], "f0");
        assert_eq!(
            decide_rollback(&r.clone(), &r.aliases[2], &untouched, true),
            RollbackDecision::AlreadyStable
        );
    }
}
