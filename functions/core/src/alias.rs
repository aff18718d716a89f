//! The alias: how Lambda reports it ([`AliasState`]), what a write sets ([`AliasUpdate`]), and the one alias a
//! deployment moves ([`AliasTarget`]): which function and alias, from which stable version to which target, and
//! the revision the engine last left it at. The step cursor (`rollout.rs`) is kept apart from this, so several
//! aliases can one day move under one cursor.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::names::Version;
use crate::schedule::Step;

/// An alias as Lambda reports it: the version it points at, any additional version weights, its revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AliasState {
    pub function_version: String,
    /// Additional versions and their weight in (0, 1); empty when the alias is not split.
    #[serde(default)]
    pub weights: BTreeMap<String, f64>,
    pub revision_id: String,
}

impl AliasState {
    /// An alias routing `version` plus `weights`, at `revision`.
    pub fn new(version: &str, weights: &[(&str, f64)], revision: &str) -> Self {
        Self {
            function_version: version.into(),
            weights: weights.iter().map(|(v, w)| (v.to_string(), *w)).collect(),
            revision_id: revision.into(),
        }
    }

    pub fn is_split(&self) -> bool {
        !self.weights.is_empty()
    }

    /// Where traffic goes, for messages: `6` or `6 + 10% to 7`.
    pub fn describe(&self) -> String {
        describe(&self.function_version, &self.weights)
    }

    /// Whether the alias routes exactly as `update` sets it.
    pub fn shows(&self, update: &AliasUpdate) -> bool {
        self.function_version == update.function_version
            && self.weights.len() == update.weights.len()
            && update.weights.iter().all(|(version, weight)| {
                self.weights
                    .get(version)
                    .is_some_and(|w| same_weight(*w, *weight))
            })
    }
}

fn describe(function_version: &str, weights: &BTreeMap<String, f64>) -> String {
    let mut s = format!("version {function_version}");
    for (version, weight) in weights {
        s.push_str(&format!(" + {}% to version {version}", weight * 100.0));
    }
    s
}

/// Weights round-trip through JSON and Lambda as doubles; equal to well within any meaningful traffic share.
fn same_weight(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// What an alias update sets: the primary version and the additional weights (empty clears the routing).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AliasUpdate {
    pub function_version: String,
    pub weights: BTreeMap<String, f64>,
}

impl AliasUpdate {
    /// Where traffic goes, in the words of [`AliasState::describe`].
    pub fn describe(&self) -> String {
        describe(&self.function_version, &self.weights)
    }
}

/// The alias one deployment moves, and what the engine knows of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AliasTarget {
    /// The function as the input named it (name or ARN): what the AWS calls take.
    pub function_name: String,
    /// The alias's name.
    pub name: String,
    /// The version the alias pointed at, unsplit, when the deployment was prepared.
    pub stable_version: Version,
    pub target_version: Version,
    /// The alias revision after the engine's last write (or as prepared).
    pub revision_id: String,
}

impl AliasTarget {
    /// The alias on the stable version alone: before any step, and after a rollback.
    pub fn stable_only(&self) -> AliasUpdate {
        AliasUpdate {
            function_version: self.stable_version.to_string(),
            weights: BTreeMap::new(),
        }
    }

    /// The alias as a step leaves it: split toward the target, or promoted to it with routing cleared.
    pub fn at(&self, step: &Step) -> AliasUpdate {
        let target = self.target_version.to_string();
        if step.is_promotion() {
            AliasUpdate {
                function_version: target,
                weights: BTreeMap::new(),
            }
        } else {
            AliasUpdate {
                function_version: self.stable_version.to_string(),
                weights: BTreeMap::from([(target, step.weight())]),
            }
        }
    }

    /// Whether the alias routes something this deployment sets at some step: split toward its target from its
    /// stable version (at any weight), or promoted to its target.
    pub fn is_ours(&self, alias: &AliasState) -> bool {
        let (stable, target) = (
            self.stable_version.to_string(),
            self.target_version.to_string(),
        );
        let split_toward_target = alias.function_version == stable
            && alias.weights.len() == 1
            && alias.weights.contains_key(&target);
        let promoted = alias.function_version == target && !alias.is_split();
        split_toward_target || promoted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(version: &str, weights: &[(&str, f64)]) -> AliasState {
        AliasState::new(version, weights, "r")
    }

    fn target() -> AliasTarget {
        AliasTarget {
            function_name: "orders".into(),
            name: "live".into(),
            stable_version: Version::new(6).unwrap(),
            target_version: Version::new(7).unwrap(),
            revision_id: "r0".into(),
        }
    }

    #[test]
    fn an_alias_shows_an_update_only_when_it_routes_exactly_that() {
        let t = target();
        let split = AliasUpdate {
            function_version: "6".into(),
            weights: BTreeMap::from([("7".to_string(), 0.1)]),
        };
        assert!(alias("6", &[("7", 0.1 + 1e-12)]).shows(&split));
        assert!(!alias("6", &[("7", 0.2)]).shows(&split));
        assert!(!alias("6", &[("7", 0.1), ("8", 0.1)]).shows(&split));
        assert!(!alias("6", &[]).shows(&split));
        assert!(alias("6", &[]).shows(&t.stable_only()));
        assert!(!alias("7", &[]).shows(&t.stable_only()));
    }

    #[test]
    fn only_a_split_toward_the_target_or_the_promotion_is_ours() {
        let t = target();
        for ours in [alias("6", &[("7", 0.3)]), alias("7", &[])] {
            assert!(t.is_ours(&ours), "{ours:?}");
        }
        for theirs in [
            alias("6", &[]),
            alias("6", &[("8", 0.3)]),
            alias("8", &[]),
            alias("7", &[("6", 0.5)]),
            alias("6", &[("7", 0.1), ("8", 0.1)]),
        ] {
            assert!(!t.is_ours(&theirs), "{theirs:?}");
        }
    }

    #[test]
    fn routing_reads_as_people_say_it() {
        assert_eq!(
            alias("6", &[("7", 0.1)]).describe(),
            "version 6 + 10% to version 7"
        );
        assert_eq!(target().stable_only().describe(), "version 6");
    }
}
