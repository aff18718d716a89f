//! How much a gate's answer may carry. The state machine carries every report in its state, and Step Functions
//! ends an execution whose state passes 256 KB with `States.DataLimitExceeded`, which no Catch can take: the
//! deployment would then stop without its rollback. So the state carries a summary, never unbounded evidence,
//! and every cut says what it left out (CloudWatch keeps every alarm's state and history).
//!
//! The budget, at its worst legal input: the rollout itself — the deployment (up to 100 alarm names of 255
//! bytes and 100 custom steps, ~30 KB) and a record per passed step (101 × ~300 bytes, ~30 KB) — plus
//! this step's report (at most ~12.5 KB per gate that ran, and a failing alarm gate ends the list) and, after
//! `GateFailed`, the same report again as the failure's cause (a Fail state's cause holds at most 32,768
//! characters). That is ~110 KB at the very worst, far from 256 KB.
//!
//! The caps (bytes of UTF-8, cut at a character boundary, before JSON escaping):
//! - each finding: [`MAX_FINDING_BYTES`], ended with `…[+N bytes]` when cut;
//! - findings per gate: [`MAX_FINDINGS`], the last one then saying `… and N more findings (not shown)`;
//! - a gate's evidence: [`MAX_EVIDENCE_BYTES`] serialized; a gate keeps its own within it (the alarm gate: its
//!   first [`MAX_ALARMS_SHOWN`] alarms, those in ALARM first, each reason cut to [`MAX_ALARM_REASON_BYTES`],
//!   and `"truncated": {"alarms": N}`), and any evidence still larger is replaced by
//!   `{"truncated": {"evidenceBytes": N}}`;
//! - the summary the rollout keeps of each passed step: [`MAX_RECORD_SUMMARY_BYTES`];
//! - a whole report's results: [`MAX_RESULTS_BYTES`]. A release's analysis adds a result per target (up to ten),
//!   so past that the passing results give up their evidence and all but their first finding, then the others
//!   too, last first ([`fit_results`]): a failing target's evidence is what a person needs to see.

/// A finding is one sentence for people; the longest the gates write (an analysis comparison) is ~200 bytes, so
/// 512 only ever cuts a sentence that quotes something unbounded, such as a list of alarm names.
pub const MAX_FINDING_BYTES: usize = 512;

/// Findings per gate: the analysis writes at most 5 (plus one when its extensions run out); more than 8 is a
/// gate listing data, which belongs in its evidence.
pub const MAX_FINDINGS: usize = 8;

/// A gate's evidence, serialized. The alarm gate's worst (10 alarms with 255-byte names and cut reasons) is ~6 KB;
/// with findings, one gate's result stays under ~12.5 KB, so two gates' report stays under the 32,768 characters
/// of the cause `GateFailed` copies it into.
pub const MAX_EVIDENCE_BYTES: usize = 8 * 1024;

/// Alarms shown in the alarm gate's evidence. A deployment may list 100; ten in ALARM say what failed, and the
/// finding counts them all.
pub const MAX_ALARMS_SHOWN: usize = 10;

/// An alarm's state reason, as shown: CloudWatch allows 1,023 characters, mostly a data point dump; its first
/// 256 bytes name the threshold crossed.
pub const MAX_ALARM_REASON_BYTES: usize = 256;

/// The summary the rollout keeps of each passed step (`passedGates[].summary`). A rollout has up to 101 steps and
/// carries every record to its end; 240 bytes hold a typical pass ("no alarm in ALARM (3 checked); error rate
/// 0.50% (1/200) is within …"), and the step's full report is in its CheckGates output.
pub const MAX_RECORD_SUMMARY_BYTES: usize = 240;

/// All of a report's results together, serialized: with the rest of the report, well inside the 32,768
/// characters of the cause `GateFailed` copies it into, however many targets a release judges.
pub const MAX_RESULTS_BYTES: usize = 24 * 1024;

/// `results`, each already within its own caps, made to fit [`MAX_RESULTS_BYTES`] together: results are thinned
/// (evidence replaced by `{"truncated": {"evidenceBytes": N}}`, findings cut to the first) from the last passing
/// one back, then from the last of the others back, until they fit. `gate`, `verdict` and `error` are never
/// touched.
pub fn fit_results(mut results: Vec<super::GateResult>) -> Vec<super::GateResult> {
    let size = |r: &[super::GateResult]| serde_json::to_string(r).map_or(0, |s| s.len());
    let order: Vec<usize> = (0..results.len())
        .rev()
        .filter(|&i| results[i].verdict == super::Verdict::Pass)
        .chain(
            (0..results.len())
                .rev()
                .filter(|&i| results[i].verdict != super::Verdict::Pass),
        )
        .collect();
    for i in order {
        if size(&results) <= MAX_RESULTS_BYTES {
            break;
        }
        let r = &mut results[i];
        let evidence_bytes = serde_json::to_string(&r.evidence).map_or(0, |s| s.len());
        // A release's target name stays: which target this result is about.
        let target = r.evidence.get("targetAlias").cloned();
        r.evidence = serde_json::json!({"truncated": {"evidenceBytes": evidence_bytes}});
        if let Some(target) = target {
            r.evidence["targetAlias"] = target;
        }
        let more = r.findings.len().saturating_sub(1);
        r.findings.truncate(1);
        if more > 0 {
            r.findings
                .push(format!("… and {more} more findings (not shown)"));
        }
    }
    results
}

/// `text` whole when it is at most `max` bytes; otherwise cut at a character boundary and ended with
/// `…[+N bytes]` (N: the bytes left out), the whole then at most `max` bytes (for any `max` of 32 or more).
pub fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let marker = |left_out: usize| format!("…[+{left_out} bytes]");
    // The marker for the whole text is at least as long as the one finally written: reserve that much.
    let mut keep = max.saturating_sub(marker(text.len()).len());
    while !text.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{}", &text[..keep], marker(text.len() - keep))
}

/// `findings` as a gate's result carries them: at most [`MAX_FINDINGS`], each cut to [`MAX_FINDING_BYTES`]. When
/// there are more, the last one kept says how many are not shown.
pub fn findings(findings: Vec<String>) -> Vec<String> {
    let total = findings.len();
    let shown = if total > MAX_FINDINGS {
        MAX_FINDINGS - 1
    } else {
        total
    };
    let mut kept: Vec<String> = findings
        .into_iter()
        .take(shown)
        .map(|f| cut(&f, MAX_FINDING_BYTES))
        .collect();
    if total > shown {
        kept.push(format!("… and {} more findings (not shown)", total - shown));
    }
    kept
}

/// A gate's evidence as the report carries it: unchanged within [`MAX_EVIDENCE_BYTES`], otherwise replaced by
/// `{"truncated": {"evidenceBytes": N}}` (N: its serialized size). A gate keeps its own evidence within the cap;
/// this is the backstop for one that does not.
pub fn evidence(evidence: serde_json::Value) -> serde_json::Value {
    let size = serde_json::to_string(&evidence).map_or(0, |s| s.len());
    if size <= MAX_EVIDENCE_BYTES {
        evidence
    } else {
        serde_json::json!({"truncated": {"evidenceBytes": size}})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_releases_ten_analysis_results_and_its_alarms_fit_the_report_keeping_the_failures_evidence()
    {
        use super::super::{GateResult, Verdict};
        use crate::error::ErrorType;
        // The worst each gate may carry: evidence at its cap, every finding at its cap.
        let result = |gate: &str, target: usize, verdict| {
            let mut evidence = serde_json::json!({"blob": "e".repeat(MAX_EVIDENCE_BYTES - 64)});
            evidence["targetAlias"] = format!("orders-{target}:live").into();
            GateResult {
                gate: gate.into(),
                verdict,
                error: (verdict == Verdict::Fail).then_some(ErrorType::AnalysisFailed),
                findings: vec!["f".repeat(MAX_FINDING_BYTES); MAX_FINDINGS],
                evidence,
            }
            .bounded()
        };
        let mut results = vec![result("alarms", 0, Verdict::Pass)];
        results.extend((0..10).map(|i| {
            result(
                "analysis",
                i,
                if i == 7 { Verdict::Fail } else { Verdict::Pass },
            )
        }));
        let before = serde_json::to_string(&results).unwrap().len();
        assert!(before > 100 * 1024, "{before}");
        let fitted = fit_results(results);
        let after = serde_json::to_string(&fitted).unwrap().len();
        assert!(after <= MAX_RESULTS_BYTES, "{after}");
        assert_eq!(fitted.len(), 11);
        // The failing target keeps its evidence; every thinned one still names its target.
        assert!(fitted[8].evidence.get("blob").is_some());
        assert_eq!(fitted[8].verdict, Verdict::Fail);
        for r in &fitted[1..] {
            assert!(r.evidence["targetAlias"].is_string(), "{:?}", r.evidence);
        }
        // A thinned one says how much it left out.
        let left_out = fitted[3].evidence["truncated"]["evidenceBytes"].as_u64();
        assert!(
            left_out.is_some_and(|n| n > 8_000),
            "{:?}",
            fitted[3].evidence
        );
    }

    #[test]
    fn a_cut_keeps_short_text_and_marks_what_it_left_out() {
        assert_eq!(cut("short", 32), "short");
        let long = "x".repeat(1_023);
        let c = cut(&long, 256);
        assert!(c.len() <= 256, "{}", c.len());
        let kept = c.split('…').next().unwrap();
        assert!(
            c.ends_with(&format!("…[+{} bytes]", 1_023 - kept.len())),
            "{c}"
        );
        // Never inside a character: "é" is two bytes.
        let accents = "é".repeat(300);
        let c = cut(&accents, 101);
        assert!(c.len() <= 101);
        let kept = c.split('…').next().unwrap();
        assert!(kept.chars().all(|ch| ch == 'é'));
        assert!(
            c.ends_with(&format!("[+{} bytes]", 600 - kept.len())),
            "{c}"
        );
    }

    #[test]
    fn findings_are_capped_in_count_and_length_and_say_so() {
        let many: Vec<String> = (0..100)
            .map(|i| format!("{i}: {}", "y".repeat(2_000)))
            .collect();
        let kept = findings(many);
        assert_eq!(kept.len(), MAX_FINDINGS);
        assert!(kept.iter().all(|f| f.len() <= MAX_FINDING_BYTES));
        assert!(kept[0].starts_with("0: yyy") && kept[0].contains("bytes]"));
        assert_eq!(
            kept.last().unwrap(),
            &format!(
                "… and {} more findings (not shown)",
                100 - (MAX_FINDINGS - 1)
            )
        );
        let few = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(findings(few.clone()), few);
    }

    #[test]
    fn oversized_evidence_is_replaced_by_its_size() {
        let small = serde_json::json!({"n": 1});
        assert_eq!(evidence(small.clone()), small);
        let big = serde_json::json!({"blob": "z".repeat(MAX_EVIDENCE_BYTES)});
        let size = serde_json::to_string(&big).unwrap().len();
        assert_eq!(
            evidence(big),
            serde_json::json!({"truncated": {"evidenceBytes": size}})
        );
    }
}
