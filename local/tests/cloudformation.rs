//! The `Custom::SafeshiftAlias` provider on the local stack, driven as CloudFormation drives it: each request
//! invoked through Lambda's API on the engine's `cloudformation` function, each answer PUT to a local response
//! URL, the rollouts run by the real state machine. An "app deploy" is what `sam deploy` of an app with the
//! `Safeshift` transform does: publish a version, then send the alias's update.

use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_cloudwatch::types::StateValue;
use aws_sdk_lambda::primitives::Blob;
use safeshift_local::LocalStack;
use safeshift_local::fixtures::{Fixtures, Routing};
use safeshift_local::response_url::ResponseUrl;
use serde_json::{Value, json};

const STACK_ID: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/orders-app/1";
/// A rollout answers when it ends: a few short bakes here.
const ROLLOUT: Duration = Duration::from_secs(90);

fn venv() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv")
}

struct Env {
    stack: LocalStack,
    fx: Fixtures,
    cfn: ResponseUrl,
}

async fn env() -> Env {
    let stack = LocalStack::start(0, &venv(), None)
        .await
        .expect("local stack");
    Env {
        fx: Fixtures::new(&stack),
        cfn: ResponseUrl::start().await.expect("response URL server"),
        stack,
    }
}

fn stable(v: &str) -> Routing {
    (v.to_owned(), vec![])
}

/// The alias's properties as the macro writes them, resolved as CloudFormation resolves them (every scalar a
/// string).
fn properties(function: &str, version: &str, deployment: Value) -> Value {
    json!({
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:safeshift-cloudformation",
        "FunctionName": function, "Name": "live", "FunctionVersion": version,
        "Alarms": [format!("{function}-errors")],
        "Deployment": deployment.to_string(),
    })
}

/// Short bakes, so that a rollout ends in seconds.
fn quick() -> Value {
    json!({"strategy": {"linear": {"percent": 50, "intervalSeconds": 1}}})
}

impl Env {
    /// Invokes the engine's cloudformation function with `event`; returns its output.
    async fn invoke(&self, event: Value) -> Value {
        let out = aws_sdk_lambda::Client::new(&self.stack.config)
            .invoke()
            .function_name("safeshift-cloudformation")
            .payload(Blob::new(event.to_string()))
            .send()
            .await
            .unwrap();
        assert!(out.function_error().is_none(), "{out:?}");
        serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap()
    }

    /// One request, as CloudFormation sends it (Lambda Invoke of the ServiceToken); returns the function's output.
    async fn send(
        &self,
        kind: &str,
        request_id: &str,
        props: Value,
        old: Option<Value>,
        physical_id: Option<&str>,
    ) -> Value {
        let mut request = json!({
            "RequestType": kind, "ResponseURL": self.cfn.url(request_id), "StackId": STACK_ID,
            "RequestId": request_id, "ResourceType": "Custom::SafeshiftAlias",
            "LogicalResourceId": "OrdersApiAliaslive", "ResourceProperties": props,
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:safeshift-cloudformation",
        });
        if let Some(old) = old {
            request["OldResourceProperties"] = old;
        }
        if let Some(id) = physical_id {
            request["PhysicalResourceId"] = json!(id);
        }
        self.invoke(request).await
    }

    /// An app's first deploy (the alias made on version 1), then its next deploy's update to version 2 with
    /// `deployment` (the rollout starts): returns the alias's ARN and the new version.
    async fn deployed_then_updated(&self, function: &str, deployment: &Value) -> (String, String) {
        self.fx.function_without_alias(function, 1).await.unwrap();
        self.fx.created_by_stack(function, STACK_ID).await.unwrap();
        self.fx.alarm(&format!("{function}-errors")).await.unwrap();
        self.send(
            "Create",
            "create-1",
            properties(function, "1", deployment.clone()),
            None,
            None,
        )
        .await;
        let arn = self.answer("create-1", Duration::from_secs(5)).await["PhysicalResourceId"]
            .as_str()
            .unwrap()
            .to_owned();
        let v2 = self.fx.publish(function, "v2").await.unwrap();
        self.send(
            "Update",
            "update-2",
            properties(function, &v2, deployment.clone()),
            Some(properties(function, "1", deployment.clone())),
            Some(&arn),
        )
        .await;
        (arn, v2)
    }

    /// The update a stack rollback sends after a failed update to `v2`: back to version 1. Returns its answer.
    async fn stack_rollback(
        &self,
        function: &str,
        v2: &str,
        deployment: &Value,
        arn: &str,
    ) -> Value {
        self.send(
            "Update",
            "rollback-3",
            properties(function, "1", deployment.clone()),
            Some(properties(function, v2, deployment.clone())),
            Some(arn),
        )
        .await;
        self.answer("rollback-3", Duration::from_secs(5)).await
    }

    async fn answer(&self, request_id: &str, within: Duration) -> Value {
        self.cfn
            .answer_to(request_id, within)
            .await
            .unwrap_or_else(|| panic!("no answer to {request_id} within {within:?}"))
    }

    async fn executions_started(&self) -> Vec<String> {
        let out = aws_sdk_sfn::Client::new(&self.stack.config)
            .list_executions()
            .state_machine_arn(&self.stack.state_machine_arn)
            .send()
            .await
            .unwrap();
        out.executions()
            .iter()
            .map(|e| e.name().to_owned())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_deploy_creates_the_alias_then_rolls_the_next_version_out_and_answers_when_promoted()
{
    let e = env().await;
    e.fx.function_without_alias("orders", 1).await.unwrap();
    e.fx.created_by_stack("orders", STACK_ID).await.unwrap();
    e.fx.alarm("orders-errors").await.unwrap();

    // The stack's first deploy: the alias is made on the first version, at once.
    e.send(
        "Create",
        "create-1",
        properties("orders", "1", quick()),
        None,
        None,
    )
    .await;
    let created = e.answer("create-1", Duration::from_secs(5)).await;
    assert_eq!(created["Status"], "SUCCESS", "{created}");
    let arn = created["PhysicalResourceId"].as_str().unwrap().to_owned();
    assert!(arn.ends_with(":function:orders:live"), "{arn}");
    assert_eq!(e.fx.routing("orders").await.unwrap(), stable("1"));

    // The next deploy publishes version 2 and updates the alias: a rollout, answered at its end.
    let v2 = e.fx.publish("orders", "v2").await.unwrap();
    let out = e
        .send(
            "Update",
            "update-2",
            properties("orders", &v2, quick()),
            Some(properties("orders", "1", quick())),
            Some(&arn),
        )
        .await;
    assert_eq!(out["answered"], false, "{out}");
    let split = e.fx.wait_for_split("orders").await.unwrap();
    assert_eq!(split, ("1".into(), vec![("2".into(), 0.5)]));
    assert!(
        e.cfn.answers().iter().all(|a| a["RequestId"] != "update-2"),
        "answered before the rollout ended"
    );
    let done = e.answer("update-2", ROLLOUT).await;
    assert_eq!(done["Status"], "SUCCESS", "{done}");
    assert_eq!(done["PhysicalResourceId"], arn.as_str());
    assert_eq!(done["Data"]["FunctionVersion"], "2");
    assert_eq!(e.fx.routing("orders").await.unwrap(), stable("2"));
    let started = e.executions_started().await;
    assert_eq!(started, ["cfn-OrdersApiAliaslive-update-2"]);

    // Deleting the stack removes the alias this resource created.
    e.send(
        "Delete",
        "delete-3",
        properties("orders", "2", quick()),
        None,
        Some(&arn),
    )
    .await;
    assert_eq!(
        e.answer("delete-3", Duration::from_secs(5)).await["Status"],
        "SUCCESS"
    );
    assert!(e.fx.routing("orders").await.is_err(), "the alias is gone");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_versions_rollout_answers_failed_and_the_stack_rollback_finds_the_alias_on_stable() {
    let e = env().await;
    let slow = json!({"strategy": {"linear": {"percent": 50, "intervalSeconds": 30}}});
    let (arn, v2) = e.deployed_then_updated("payments", &slow).await;
    e.fx.wait_for_split("payments").await.unwrap();
    // The sweep (the second path, for a lost end event) finds the answer held, and leaves a running rollout be.
    let sweep = e
        .invoke(json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}))
        .await;
    assert_eq!(sweep, json!({"held": 1, "answered": []}));
    e.fx.set_alarm(
        "payments-errors",
        StateValue::Alarm,
        "errors on the new version",
    )
    .await
    .unwrap();
    let failed = e.answer("update-2", ROLLOUT).await;
    assert_eq!(failed["Status"], "FAILED", "{failed}");
    let reason = failed["Reason"].as_str().unwrap();
    assert!(reason.contains("payments-errors"), "{reason}");
    assert_eq!(e.fx.routing("payments").await.unwrap(), stable("1"));

    // CloudFormation rolls the stack back: the update back to version 1 finds the alias there, and is a no-op.
    let started_before = e.executions_started().await.len();
    let back = e.stack_rollback("payments", &v2, &slow, &arn).await;
    assert_eq!(back["Status"], "SUCCESS", "{back}");
    assert_eq!(back["Data"]["FunctionVersion"], "1");
    assert_eq!(e.executions_started().await.len(), started_before);
    assert_eq!(e.fx.routing("payments").await.unwrap(), stable("1"));
}

/// Migration (README "Migrating from DeploymentPreference"): after the `retain` and `detach` steps, the alias
/// CodeDeploy moved is outside the stack, still serving its version. The next deploy creates the safeshift alias
/// under the same logical ID: a Create that adopts it without a write, and the deploy after moves it by a rollout.
/// A Delete of the resource (say the stack is removed) leaves the adopted alias in place.
#[tokio::test(flavor = "multi_thread")]
async fn migration_adopts_the_codedeploy_alias_without_touching_it() {
    let e = env().await;
    // As CodeDeploy left it: `live` on the newest version, 2.
    e.fx.function("legacy", 2).await.unwrap();
    e.fx.created_by_stack("legacy", STACK_ID).await.unwrap();
    e.fx.set_alias("legacy", "2").await.unwrap();
    e.fx.alarm("legacy-errors").await.unwrap();
    let before =
        e.fx.lambda
            .get_alias()
            .function_name("legacy")
            .name("live")
            .send()
            .await
            .unwrap();

    e.send(
        "Create",
        "adopt-1",
        properties("legacy", "2", quick()),
        None,
        None,
    )
    .await;
    let adopted = e.answer("adopt-1", Duration::from_secs(5)).await;
    assert_eq!(adopted["Status"], "SUCCESS", "{adopted}");
    let arn = adopted["PhysicalResourceId"].as_str().unwrap().to_owned();
    assert_eq!(Some(arn.as_str()), before.alias_arn());
    let after =
        e.fx.lambda
            .get_alias()
            .function_name("legacy")
            .name("live")
            .send()
            .await
            .unwrap();
    assert_eq!(after.function_version(), before.function_version());
    assert_eq!(
        after.description(),
        before.description(),
        "adopted unchanged"
    );
    assert!(e.executions_started().await.is_empty());

    let v3 = e.fx.publish("legacy", "v3").await.unwrap();
    e.send(
        "Update",
        "update-2",
        properties("legacy", &v3, quick()),
        Some(properties("legacy", "2", quick())),
        Some(&arn),
    )
    .await;
    assert_eq!(e.answer("update-2", ROLLOUT).await["Status"], "SUCCESS");
    assert_eq!(e.fx.routing("legacy").await.unwrap(), stable("3"));

    e.send(
        "Delete",
        "delete-3",
        properties("legacy", &v3, quick()),
        None,
        Some(&arn),
    )
    .await;
    assert_eq!(
        e.answer("delete-3", Duration::from_secs(5)).await["Status"],
        "SUCCESS"
    );
    assert_eq!(
        e.fx.routing("legacy").await.unwrap(),
        stable("3"),
        "an adopted alias outlives the resource"
    );
}

/// An operator aborts the rollout a stack update waits for: CloudFormation is told FAILED, and the update its
/// rollback sends back to the old version succeeds — the reconciler puts the alias there — with no new rollout.
#[tokio::test(flavor = "multi_thread")]
async fn an_aborted_rollout_fails_the_update_and_the_stack_rollback_lands_on_stable() {
    let e = env().await;
    let slow = json!({"strategy": {"linear": {"percent": 50, "intervalSeconds": 60}}});
    let (arn, v2) = e.deployed_then_updated("billing", &slow).await;
    e.fx.wait_for_split("billing").await.unwrap();
    let execution = safeshift_engine::guard::Scope::new(e.stack.state_machine_arn.as_str())
        .execution_arn("cfn-OrdersApiAliaslive-update-2");
    aws_sdk_sfn::Client::new(&e.stack.config)
        .stop_execution()
        .execution_arn(&execution)
        .cause("operator: wrong build")
        .send()
        .await
        .unwrap();
    let failed = e.answer("update-2", ROLLOUT).await;
    assert_eq!(failed["Status"], "FAILED", "{failed}");
    assert!(
        failed["Reason"].as_str().unwrap().contains("ABORTED"),
        "{failed}"
    );

    // CloudFormation's rollback, at once: whether the reconciler is still at work or done, the alias ends on 1.
    let back = e.stack_rollback("billing", &v2, &slow, &arn).await;
    assert_eq!(back["Status"], "SUCCESS", "{back}");
    assert_eq!(
        e.fx.wait_for_routing("billing", |r| *r == stable("1"))
            .await
            .unwrap(),
        stable("1")
    );
    assert_eq!(
        e.executions_started().await.len(),
        1,
        "no rollout of its own"
    );
}
