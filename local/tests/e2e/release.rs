//! Releases end to end on the local stack: three functions moved by one execution of the real state machine,
//! promoted together, rolled back together when one target's own metrics fail, restored together by the
//! reconciler after an abort, and refused whole when one alias is in another deployment. Every test ends with
//! every alias on exactly one version.

use std::time::{Duration, Instant};

use aws_sdk_sfn::types::ExecutionStatus;
use safeshift_local::executions;
use safeshift_local::fixtures::Routing;
use serde_json::{Value, json};

use super::{Env, stable};

const FUNCTIONS: [&str; 3] = ["orders-api", "orders-worker", "orders-feed"];

/// A local stack with the three functions, each with versions 1 and 2 and alias `live` on 1.
async fn env() -> Env {
    let e = super::env().await;
    for f in FUNCTIONS {
        e.fx.function(f, 2).await.unwrap();
    }
    e
}

/// The release of version 2 of all three functions.
fn release(strategy: Value) -> Value {
    json!({
        "release": "orders-r1",
        "targets": FUNCTIONS.iter().map(|f| json!({"functionName": f, "alias": "live", "targetVersion": "2"})).collect::<Vec<_>>(),
        "strategy": strategy
    })
}

/// Where each function's `live` alias routes now.
async fn routings(e: &Env) -> Vec<Routing> {
    let mut all = Vec::new();
    for f in FUNCTIONS {
        all.push(e.fx.routing(f).await.unwrap());
    }
    all
}

/// Waits until every alias routes part of its traffic to version 2.
async fn wait_until_all_split(e: &Env) {
    for f in FUNCTIONS {
        e.fx.wait_for_split(f).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_three_function_release_is_promoted() {
    let e = env().await;
    e.fx.alarm("orders-errors").await.unwrap();
    let mut input = release(json!({"linear": {"percent": 50, "intervalSeconds": 1}}));
    input["alarms"] = json!(["orders-errors"]);
    let arn = e.start("orders-r1", &input).await;
    let done = e.finish(&arn).await;
    assert_eq!(
        *done.status(),
        ExecutionStatus::Succeeded,
        "{:?} {:?}",
        done.error(),
        done.cause()
    );
    assert_eq!(routings(&e).await, vec![stable("2"); 3]);
    let output: Value = serde_json::from_str(done.output().unwrap()).unwrap();
    assert_eq!(output["promoted"], true);
    assert_eq!(output["aliases"].as_array().unwrap().len(), 3, "{output:#}");
    // One ShiftWeight task per step, whatever the number of targets.
    let history = executions::history(&e.sfn, &arn).await.unwrap();
    let shifts = executions::states_entered(&history)
        .iter()
        .filter(|s| *s == "ShiftWeight")
        .count();
    assert_eq!(shifts, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_targets_failing_analysis_rolls_all_three_back() {
    let e = env().await;
    let mut input = release(
        json!({"steps": [{"percent": 10, "bakeSeconds": 5}, {"percent": 50, "bakeSeconds": 5}]}),
    );
    input["analysis"] =
        json!({"maxErrorRate": 0.05, "minInvocations": 100, "metricDelaySeconds": 0});
    let arn = e.start("orders-r1", &input).await;
    wait_until_all_split(&e).await;
    // At 10%, the worker's version 2 fails 15% of its calls; the api's and the feed's are as healthy as 1.
    for f in FUNCTIONS {
        let target = if f == "orders-worker" {
            [200, 30, 0]
        } else {
            [200, 1, 0]
        };
        for (version, counts) in [("2", target), ("1", [1800, 9, 0])] {
            e.fx.put_version_metrics(f, "live", version, counts)
                .await
                .unwrap();
        }
    }
    let done = e.finish(&arn).await;
    assert_eq!(*done.status(), ExecutionStatus::Failed);
    assert_eq!(done.error(), Some("AnalysisFailed"), "{:?}", done.cause());
    // The evidence names the target that failed.
    let cause: Value = serde_json::from_str(done.cause().unwrap()).unwrap();
    let failed: Vec<&str> = cause["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["verdict"] == "fail")
        .map(|r| r["evidence"]["targetAlias"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["orders-worker:live"], "{cause:#}");
    assert_eq!(routings(&e).await, vec![stable("1"); 3]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_aborted_release_is_restored_on_all_three_by_the_reconciler() {
    let e = env().await;
    let input = release(json!({"canary": {"percent": 10, "intervalSeconds": 60}}));
    let arn = e.start("orders-r1", &input).await;
    wait_until_all_split(&e).await;
    e.fx.stop_execution(&arn).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = routings(&e).await;
        if now == vec![stable("1"); 3] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reconciler did not restore every alias: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_is_refused_when_one_alias_is_in_another_deployment() {
    let e = env().await;
    // A single deployment of the worker is under way.
    let single = json!({"functionName": "orders-worker", "alias": "live", "targetVersion": "2",
                        "strategy": {"canary": {"percent": 10, "intervalSeconds": 5}}});
    let first = e.start("orders-worker-live-2", &single).await;
    e.fx.wait_for_split("orders-worker").await.unwrap();
    let done = e
        .finish(
            &e.start(
                "orders-r1",
                &release(json!({"canary": {"percent": 10, "intervalSeconds": 1}})),
            )
            .await,
        )
        .await;
    assert_eq!(*done.status(), ExecutionStatus::Failed);
    assert_eq!(done.error(), Some("AliasConflict"), "{:?}", done.cause());
    let cause = done.cause().unwrap();
    assert!(
        cause.contains("orders-worker:live") && cause.contains("deployment in progress"),
        "{cause}"
    );
    // Nothing of the release was written: the other targets never moved.
    for f in ["orders-api", "orders-feed"] {
        assert_eq!(e.fx.routing(f).await.unwrap(), stable("1"), "{f}");
    }
    // The deployment that held the worker goes on to its end.
    let first = e.finish(&first).await;
    assert_eq!(
        *first.status(),
        ExecutionStatus::Succeeded,
        "{:?} {:?}",
        first.error(),
        first.cause()
    );
    assert_eq!(routings(&e).await, [stable("1"), stable("2"), stable("1")]);
}
