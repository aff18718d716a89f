//! Reads the rollout state machine's definition (`statemachine/rollout.asl.json`) so that what the plan says a
//! deployment costs, and how long its history can grow, come from the real definition rather than a copy of it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::Value;

/// The rollout state machine, as deployed (with `${…}` placeholders that SAM's DefinitionSubstitutions fill).
pub const ROLLOUT_DEFINITION: &str = include_str!("../../../statemachine/rollout.asl.json");

/// Step Functions' limit on one execution's history.
pub const HISTORY_EVENT_LIMIT: u64 = 25_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AslError {
    #[error("the definition is not JSON: {0}")]
    NotJson(String),
    #[error("the definition has no `{0}`")]
    Missing(&'static str),
    #[error("state `{from}` goes to `{to}`, which does not exist")]
    UnknownTarget { from: String, to: String },
    #[error("the definition should have exactly one step loop; found {0}")]
    Loops(usize),
    #[error("no path from `StartAt` reaches a Succeed state")]
    NoSuccess,
    #[error("the step loop branches on `{0}`, which the cost model does not know")]
    UnknownBranch(String),
}

/// A state machine definition, as far as counting goes.
#[derive(Debug, Clone)]
pub struct Definition {
    start_at: String,
    states: BTreeMap<String, Value>,
}

/// States entered (and so billed as transitions) by one execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransitionModel {
    /// States on the step loop's shortest cycle, entered once per schedule step (the promotion included).
    pub per_step: u64,
    /// States entered once per execution on the success path, outside the loop.
    pub fixed: u64,
    /// States the approval gate adds, once (the Verdict's branch on `$.approvalRequired`).
    pub approval: u64,
    /// States one bake extension adds (the Verdict's branch on an `inconclusive` gate verdict).
    pub extension: u64,
    /// States one look at a step still baking adds (the Verdict's branch on `$.gates.baking`).
    pub look: u64,
    /// States a `beforeStep` hook adds to each step from the second (the Verdict's branch on it).
    pub before_step_hook: u64,
    /// States an `afterStep` hook adds to each traffic step (the hook, then the gates again).
    pub after_step_hook: u64,
}

impl TransitionModel {
    /// Transitions of a successful execution of `steps` steps, with or without an approval gate, with
    /// `extensions` bake extensions and `looks` looks at baking steps (before their last) in all.
    pub fn transitions(&self, steps: usize, approval: bool, extensions: u64, looks: u64) -> u64 {
        self.fixed
            + self.per_step * steps as u64
            + if approval { self.approval } else { 0 }
            + self.extension * extensions
            + self.look * looks
    }

    /// What `beforeStep` and `afterStep` hooks add to a schedule of `steps` steps: each runs once per traffic
    /// step (the promotion is no traffic step; beforeStep runs before each shift from the second on).
    pub fn hook_transitions(&self, steps: usize, before_step: bool, after_step: bool) -> u64 {
        let traffic = steps.saturating_sub(1) as u64;
        u64::from(before_step) * self.before_step_hook * traffic
            + u64::from(after_step) * self.after_step_hook * traffic
    }
}

/// The step loop: its shortest cycle, and the states each conditional branch off it adds when taken.
struct LoopModel {
    looped: BTreeSet<String>,
    cycle: Vec<String>,
    approval: Vec<String>,
    extension: Vec<String>,
    look: Vec<String>,
    before_step_hook: Vec<String>,
    after_step_hook: Vec<String>,
}

impl Definition {
    pub fn parse(text: &str) -> Result<Self, AslError> {
        let v: Value = serde_json::from_str(text).map_err(|e| AslError::NotJson(e.to_string()))?;
        let start_at = v["StartAt"]
            .as_str()
            .ok_or(AslError::Missing("StartAt"))?
            .to_owned();
        let states: BTreeMap<String, Value> = v["States"]
            .as_object()
            .ok_or(AslError::Missing("States"))?
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let d = Self { start_at, states };
        for name in d.states.keys() {
            for (to, _) in d.edges(name) {
                if !d.states.contains_key(&to) {
                    return Err(AslError::UnknownTarget {
                        from: name.clone(),
                        to,
                    });
                }
            }
        }
        Ok(d)
    }

    /// The rollout definition shipped with this build, parsed once.
    pub fn rollout() -> &'static Self {
        static ROLLOUT: std::sync::OnceLock<Definition> = std::sync::OnceLock::new();
        ROLLOUT.get_or_init(|| {
            Self::parse(ROLLOUT_DEFINITION)
                .expect("statemachine/rollout.asl.json is checked by the test suite")
        })
    }

    pub fn states(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.states.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn state(&self, name: &str) -> Option<&Value> {
        self.states.get(name)
    }

    pub fn start_at(&self) -> &str {
        &self.start_at
    }

    /// Every transition out of a state, each marked whether it is a Catch (the failure path). A Catch of
    /// `States.Timeout` alone is not: a watched wait (Bake, ExtendBake, Paused) ends by timing out.
    pub fn edges(&self, name: &str) -> Vec<(String, bool)> {
        let s = &self.states[name];
        let mut out = Vec::new();
        let mut push = |v: &Value, caught: bool| {
            if let Some(t) = v.as_str() {
                out.push((t.to_owned(), caught));
            }
        };
        push(&s["Next"], false);
        push(&s["Default"], false);
        for c in s["Choices"].as_array().into_iter().flatten() {
            push(&c["Next"], false);
        }
        for c in s["Catch"].as_array().into_iter().flatten() {
            let timeout_only = c["ErrorEquals"]
                .as_array()
                .is_some_and(|e| e.len() == 1 && e[0] == "States.Timeout");
            push(&c["Next"], !timeout_only);
        }
        out
    }

    fn normal_edges(&self, name: &str) -> Vec<String> {
        self.edges(name)
            .into_iter()
            .filter(|(_, caught)| !caught)
            .map(|(t, _)| t)
            .collect()
    }

    /// The states that can reach themselves again through normal transitions: the step loop.
    fn loop_states(&self) -> Result<BTreeSet<String>, AslError> {
        let reaches = |from: &str, to: &str| {
            let mut seen = BTreeSet::new();
            let mut queue: VecDeque<String> = self.normal_edges(from).into();
            while let Some(s) = queue.pop_front() {
                if s == to {
                    return true;
                }
                if seen.insert(s.clone()) {
                    queue.extend(self.normal_edges(&s));
                }
            }
            false
        };
        let cyclic: BTreeSet<String> = self
            .states
            .keys()
            .filter(|s| reaches(s, s))
            .cloned()
            .collect();
        // Group cyclic states into loops: two belong together when each reaches the other.
        let mut loops: Vec<BTreeSet<String>> = Vec::new();
        for s in &cyclic {
            match loops.iter_mut().find(|l| {
                l.iter()
                    .next()
                    .is_some_and(|o| reaches(s, o) && reaches(o, s))
            }) {
                Some(l) => {
                    l.insert(s.clone());
                }
                None => loops.push(BTreeSet::from([s.clone()])),
            }
        }
        match loops.len() {
            1 => Ok(loops.remove(0)),
            n => Err(AslError::Loops(n)),
        }
    }

    /// The shortest normal path from `StartAt` to a Succeed state.
    fn success_path(&self) -> Result<Vec<String>, AslError> {
        let mut previous: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = VecDeque::from([self.start_at.clone()]);
        let mut seen = BTreeSet::from([self.start_at.clone()]);
        while let Some(s) = queue.pop_front() {
            if self.states[&s]["Type"] == "Succeed" {
                let mut path = vec![s.clone()];
                let mut at = s;
                while let Some(p) = previous.get(&at) {
                    path.push(p.clone());
                    at = p.clone();
                }
                path.reverse();
                return Ok(path);
            }
            for t in self.normal_edges(&s) {
                if seen.insert(t.clone()) {
                    previous.insert(t.clone(), s.clone());
                    queue.push_back(t);
                }
            }
        }
        Err(AslError::NoSuccess)
    }

    /// Transitions billed for a successful execution, by what drives them.
    pub fn transition_model(&self) -> Result<TransitionModel, AslError> {
        let model = self.loop_model()?;
        let path = self.success_path()?;
        Ok(TransitionModel {
            per_step: model.cycle.len() as u64,
            fixed: path.iter().filter(|s| !model.looped.contains(*s)).count() as u64,
            approval: model.approval.len() as u64,
            extension: model.extension.len() as u64,
            look: model.look.len() as u64,
            before_step_hook: model.before_step_hook.len() as u64,
            after_step_hook: model.after_step_hook.len() as u64,
        })
    }

    fn loop_model(&self) -> Result<LoopModel, AslError> {
        let looped = self.loop_states()?;
        let path = self.success_path()?;
        let entry = path
            .iter()
            .find(|s| looped.contains(*s))
            .ok_or(AslError::Loops(0))?;
        let cycle = self.shortest_path(entry, entry, &looped);
        let (mut approval, mut extension, mut look) = (Vec::new(), Vec::new(), Vec::new());
        let (mut before_step_hook, mut after_step_hook) = (Vec::new(), Vec::new());
        for choice in cycle.iter().filter(|s| self.states[*s]["Type"] == "Choice") {
            for rule in self.states[choice]["Choices"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let Some(branch) = rule["Next"].as_str() else {
                    continue;
                };
                if !looped.contains(branch) || cycle.iter().any(|s| s == branch) {
                    continue;
                }
                // The states entered from the branch back to the Choice. A branch that goes round through the
                // step's start (the approval gate, then the next step) adds only its own states; one that
                // returns straight to the gates (an extension) repeats them too.
                let mut back = vec![branch.to_owned()];
                back.extend(self.shortest_path(branch, choice, &looped));
                let added: Vec<String> = if back.contains(entry) {
                    back.into_iter().filter(|s| !cycle.contains(s)).collect()
                } else {
                    back
                };
                let variable = rule["Variable"].as_str().unwrap_or_default();
                match (variable, rule["StringEquals"].as_str()) {
                    ("$.approvalRequired", _) => approval = added,
                    ("$.gates.verdict", Some("inconclusive")) => extension = added,
                    ("$.gates.baking", _) => look = added,
                    ("$.gates.afterStepDue", _) => after_step_hook = added,
                    ("$.deployment.hooks.beforeStep", _) => before_step_hook = added,
                    _ => return Err(AslError::UnknownBranch(variable.to_owned())),
                }
            }
        }
        Ok(LoopModel {
            looped,
            cycle,
            approval,
            extension,
            look,
            before_step_hook,
            after_step_hook,
        })
    }

    /// The states entered on the shortest normal path within `within` from `from` to `to`: `to` included, `from`
    /// not (so from a state to itself, the shortest cycle through it).
    fn shortest_path(&self, from: &str, to: &str, within: &BTreeSet<String>) -> Vec<String> {
        let mut previous: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = VecDeque::from([from.to_owned()]);
        while let Some(s) = queue.pop_front() {
            for t in self
                .normal_edges(&s)
                .into_iter()
                .filter(|t| within.contains(t))
            {
                if t == to {
                    let mut path = vec![t];
                    let mut at = s.clone();
                    while at != from {
                        path.push(at.clone());
                        at = previous[&at].clone();
                    }
                    path.reverse();
                    return path;
                }
                if t != from && !previous.contains_key(&t) {
                    previous.insert(t.clone(), s.clone());
                    queue.push_back(t);
                }
            }
        }
        Vec::new()
    }

    /// The most history events one state can add: a Task's scheduled/started/finished trio for every attempt
    /// its retriers allow (a `.waitForTaskToken` task's also has submitted: four), plus entered/exited; other
    /// states, entered/exited.
    fn worst_case_events(&self, name: &str) -> u64 {
        let s = &self.states[name];
        if s["Type"] != "Task" {
            return 2;
        }
        let per_attempt = if s["Resource"]
            .as_str()
            .is_some_and(|r| r.ends_with(".waitForTaskToken"))
        {
            4
        } else {
            3
        };
        let retries: u64 = s["Retry"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["MaxAttempts"].as_u64().unwrap_or(3))
            .sum();
        2 + per_attempt * (1 + retries)
    }

    /// An upper bound on the history of an execution of `steps` steps that fails at the last moment and rolls
    /// back: every state of the success path and of the failure path, every task retried to its limit, every
    /// step extended `extensions` times, and the approval branch (one gate per deployment) taken once.
    /// `looks`: the looks at baking steps, before each step's last, across the schedule.
    ///
    /// `step_hooks`: whether the deployment has a `beforeStep` and an `afterStep` hook, each run once a step.
    pub fn worst_case_history(
        &self,
        steps: usize,
        extensions: u32,
        looks: u64,
        step_hooks: (bool, bool),
    ) -> Result<u64, AslError> {
        let model = self.loop_model()?;
        let events =
            |states: &[String]| -> u64 { states.iter().map(|s| self.worst_case_events(s)).sum() };
        let per_step = events(&model.cycle)
            + events(&model.extension) * u64::from(extensions)
            + u64::from(step_hooks.0) * events(&model.before_step_hook)
            + u64::from(step_hooks.1) * events(&model.after_step_hook);
        // Everything outside the loop counts once: the success path and every failure-path state.
        let once: u64 = self
            .states
            .keys()
            .filter(|s| !model.looped.contains(*s))
            .map(|s| self.worst_case_events(s))
            .sum();
        // Each operator control ends a wait and goes through Steer (and its choice) into a wait again.
        let waits = self
            .states
            .iter()
            .filter(|(_, s)| s["Next"] == "Steer")
            .map(|(name, _)| self.worst_case_events(name))
            .max()
            .unwrap_or(0);
        // Steer, then its Choice (entered and exited), then a wait again: the recorded controls (past the cap,
        // only a way out of a pause or the approval gate: one per recorded pause, one per gate), and those refused
        // without a record until Steer ends the rollout.
        let controls = match self.states.contains_key("Steer") {
            true => {
                let recorded = 2 * crate::control::MAX_OPERATIONS as u64 + 1;
                let unrecorded = u64::from(crate::control::MAX_UNRECORDED) + 1;
                (self.worst_case_events("Steer") + 2 + waits) * (recorded + unrecorded)
            }
            false => 0,
        };
        // ExecutionStarted and the closing event.
        Ok(2 + once
            + controls
            + events(&model.approval)
            + events(&model.look) * looks
            + per_step * steps as u64)
    }

    /// Every error name the definition's Retry and Catch clauses match, and that its states raise.
    pub fn error_names(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for s in self.states.values() {
            for clause in s["Retry"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(s["Catch"].as_array().into_iter().flatten())
            {
                for e in clause["ErrorEquals"].as_array().into_iter().flatten() {
                    names.extend(e.as_str().map(str::to_owned));
                }
            }
            if let Some(e) = s["Parameters"]["Error"].as_str() {
                names.insert(e.to_owned());
            }
        }
        names
    }

    /// The `${Name}` placeholders that DefinitionSubstitutions must fill.
    pub fn placeholders(text: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            rest = &rest[start + 2..];
            if let Some(end) = rest.find('}') {
                out.insert(rest[..end].to_owned());
                rest = &rest[end..];
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_toy_definition_is_counted() {
        let d = Definition::parse(
            r#"{"StartAt": "A", "States": {
                "A": {"Type": "Task", "Next": "B", "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "F"}]},
                "B": {"Type": "Wait", "Seconds": 1, "Next": "C"},
                "C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "BooleanEquals": true, "Next": "D"}], "Default": "B"},
                "D": {"Type": "Succeed"},
                "F": {"Type": "Fail"}}}"#,
        )
        .unwrap();
        assert_eq!(
            d.transition_model().unwrap(),
            TransitionModel {
                per_step: 2,
                fixed: 2,
                approval: 0,
                extension: 0,
                look: 0,
                before_step_hook: 0,
                after_step_hook: 0,
            }
        );
        assert_eq!(d.error_names(), BTreeSet::from(["States.ALL".to_owned()]));
    }

    #[test]
    fn a_dangling_transition_is_an_error() {
        let err = Definition::parse(
            r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Z"}}}"#,
        )
        .unwrap_err();
        assert_eq!(
            err,
            AslError::UnknownTarget {
                from: "A".into(),
                to: "Z".into()
            }
        );
    }

    #[test]
    fn placeholders_are_found() {
        assert_eq!(
            Definition::placeholders(r#"{"a": "${One}", "b": "x${Two}y", "c": "$.not"}"#),
            BTreeSet::from(["One".to_owned(), "Two".to_owned()])
        );
    }
}
