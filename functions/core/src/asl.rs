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
    /// Loop states off the shortest cycle, entered only when a Choice sends the rollout there: the approval gate.
    pub conditional: u64,
}

impl TransitionModel {
    /// Transitions of a successful execution of `steps` steps, with or without its conditional states.
    pub fn transitions(&self, steps: usize, conditional: bool) -> u64 {
        self.fixed + self.per_step * steps as u64 + if conditional { self.conditional } else { 0 }
    }
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

    /// Every transition out of a state, each marked whether it is a Catch (the failure path).
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
            push(&c["Next"], true);
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
        let looped = self.loop_states()?;
        let path = self.success_path()?;
        let entry = path
            .iter()
            .find(|s| looped.contains(*s))
            .ok_or(AslError::Loops(0))?;
        let cycle = self.shortest_cycle(entry, &looped);
        Ok(TransitionModel {
            per_step: cycle as u64,
            fixed: path.iter().filter(|s| !looped.contains(*s)).count() as u64,
            conditional: (looped.len() - cycle) as u64,
        })
    }

    /// How many states the shortest way round the loop from `entry` back to it enters.
    fn shortest_cycle(&self, entry: &str, looped: &BTreeSet<String>) -> usize {
        let mut depth = BTreeMap::from([(entry.to_owned(), 1usize)]);
        let mut queue = VecDeque::from([entry.to_owned()]);
        while let Some(s) = queue.pop_front() {
            for t in self
                .normal_edges(&s)
                .into_iter()
                .filter(|t| looped.contains(t))
            {
                if t == entry {
                    return depth[&s];
                }
                if !depth.contains_key(&t) {
                    depth.insert(t.clone(), depth[&s] + 1);
                    queue.push_back(t);
                }
            }
        }
        looped.len()
    }

    /// The most history events one state can add: a Task's scheduled/started/finished trio for every attempt
    /// its retriers allow, plus entered/exited; other states, entered/exited.
    fn worst_case_events(&self, name: &str) -> u64 {
        let s = &self.states[name];
        if s["Type"] != "Task" {
            return 2;
        }
        let retries: u64 = s["Retry"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["MaxAttempts"].as_u64().unwrap_or(3))
            .sum();
        2 + 3 * (1 + retries)
    }

    /// An upper bound on the history of an execution of `steps` steps that fails at the last moment and rolls
    /// back: every state of the success path and of the failure path, every task retried to its limit.
    pub fn worst_case_history(&self, steps: usize) -> Result<u64, AslError> {
        let looped = self.loop_states()?;
        let per_step: u64 = looped.iter().map(|s| self.worst_case_events(s)).sum();
        // Everything outside the loop counts once: the success path and every failure-path state.
        let once: u64 = self
            .states
            .keys()
            .filter(|s| !looped.contains(*s))
            .map(|s| self.worst_case_events(s))
            .sum();
        // ExecutionStarted and the closing event.
        Ok(2 + once + per_step * steps as u64)
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
                conditional: 0
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
