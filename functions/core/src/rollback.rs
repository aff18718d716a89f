//! The rollback's decision: put the alias back on the stable version, but only while it still routes what this
//! deployment set. Anything else is someone else's change, and theirs wins.

use serde::Serialize;

use crate::alias::{AliasState, AliasTarget, AliasUpdate};

/// What a rollback does.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum RollbackDecision {
    /// Already on the stable version with no weights: nothing to write.
    AlreadyStable,
    /// Put the alias back on the stable version, routing cleared.
    Revert { update: AliasUpdate },
    /// The alias is not in a state this deployment made: someone else owns it now. Never overwrite.
    LeaveAlone { reason: String },
}

/// Decides a rollback from the alias as just read: revert only what this deployment did (split toward its
/// target, or promoted to it).
pub fn decide_rollback(target: &AliasTarget, alias: &AliasState) -> RollbackDecision {
    let stable = target.stable_only();
    if alias.shows(&stable) {
        RollbackDecision::AlreadyStable
    } else if target.is_ours(alias) {
        RollbackDecision::Revert { update: stable }
    } else {
        RollbackDecision::LeaveAlone {
            reason: format!(
                "the alias routes {}, which this deployment ({} -> {}) did not set; leaving it as it is",
                alias.describe(),
                target.stable_version,
                target.target_version
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Version;

    fn alias(version: &str, weights: &[(&str, f64)], revision: &str) -> AliasState {
        AliasState::new(version, weights, revision)
    }

    #[test]
    fn rollback_reverts_only_what_this_deployment_did() {
        let t = AliasTarget {
            function_name: "orders".into(),
            name: "live".into(),
            stable_version: Version::new(6).unwrap(),
            target_version: Version::new(7).unwrap(),
            revision_id: "r0".into(),
        };
        assert_eq!(
            decide_rollback(&t, &alias("6", &[], "r")),
            RollbackDecision::AlreadyStable
        );
        for ours in [alias("6", &[("7", 0.3)], "r"), alias("7", &[], "r")] {
            let RollbackDecision::Revert { update } = decide_rollback(&t, &ours) else {
                panic!()
            };
            assert_eq!(
                (update.function_version.as_str(), update.weights.len()),
                ("6", 0)
            );
        }
        for theirs in [
            alias("6", &[("8", 0.3)], "r"),
            alias("8", &[], "r"),
            alias("6", &[("7", 0.1), ("8", 0.1)], "r"),
        ] {
            let decision = decide_rollback(&t, &theirs);
            let RollbackDecision::LeaveAlone { reason } = decision else {
                panic!("{theirs:?}: {decision:?}")
            };
            assert!(reason.contains("(6 -> 7) did not set"), "{reason}");
        }
    }
}
