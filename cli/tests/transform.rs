//! The `Safeshift` macro on real SAM output: each template under `tests/sam/` (and `examples/app`) through the SAM
//! translator offline (aws-sam-translator, installed with the SAM CLI in `.tools` by `make template-lint`), then
//! `safeshift transform` — the macro's own code — then `cfn-lint` on the result.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tool(name: &str) -> PathBuf {
    let path = root().join(".tools/venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: `make template-lint` installs the SAM CLI and cfn-lint into .tools",
        path.display()
    );
    path
}

/// What CloudFormation hands the macro: the SAM translator's output for `template`.
fn sam_output(template: &Path) -> Value {
    let out = Command::new(tool("python"))
        .arg(root().join("scripts/sam_translate.py"))
        .arg(template)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn scratch(name: &str, template: &Value) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("safeshift-transform-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(template).unwrap()).unwrap();
    path
}

fn transform(name: &str, template: &Value) -> Output {
    Command::new(env!("CARGO_BIN_EXE_safeshift"))
        .args(["transform", "--template"])
        .arg(scratch(&format!("{name}.sam.json"), template))
        .output()
        .unwrap()
}

/// The macro's output for `template`, checked by cfn-lint.
fn transformed(name: &str, template: &Value) -> Value {
    let out = transform(name, template);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    let lint = Command::new(tool("cfn-lint"))
        .arg(scratch(&format!("{name}.out.json"), &result))
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "cfn-lint on the macro's output:\n{}",
        String::from_utf8_lossy(&lint.stdout)
    );
    result
}

fn resources(t: &Value) -> &serde_json::Map<String, Value> {
    t["Resources"].as_object().unwrap()
}

/// The logical IDs of the aliases CodeDeploy moves in SAM's output.
fn codedeploy_aliases(sam: &Value) -> Vec<String> {
    resources(sam)
        .iter()
        .filter(|(_, r)| {
            r.pointer("/UpdatePolicy/CodeDeployLambdaAliasUpdate")
                .is_some()
        })
        .map(|(id, _)| id.clone())
        .collect()
}

/// Whether `v` refers to `id` (`Ref`, `Fn::GetAtt`, or `${id}` in `Fn::Sub`).
fn refers(v: &Value, id: &str) -> bool {
    match v {
        Value::Object(m) => {
            m.get("Ref").and_then(Value::as_str) == Some(id)
                || m.get("Fn::GetAtt")
                    .and_then(|a| a.get(0))
                    .and_then(Value::as_str)
                    == Some(id)
                || m.get("Fn::Sub").is_some_and(|s| {
                    let text = s.as_str().or_else(|| s.get(0).and_then(Value::as_str));
                    text.is_some_and(|t| t.contains(&format!("${{{id}}}")))
                })
                || m.values().any(|c| refers(c, id))
        }
        Value::Array(l) => l.iter().any(|c| refers(c, id)),
        _ => false,
    }
}

/// The resources (and outputs) that refer to `id`.
fn referrers(t: &Value, id: &str) -> BTreeSet<String> {
    let mut found: BTreeSet<String> = resources(t)
        .iter()
        .filter(|(_, r)| refers(r, id))
        .map(|(k, _)| k.clone())
        .collect();
    if let Some(outputs) = t["Outputs"].as_object() {
        found.extend(
            outputs
                .iter()
                .filter(|(_, o)| refers(o, id))
                .map(|(k, _)| format!("Outputs.{k}")),
        );
    }
    found
}

fn no_codedeploy_remains(t: &Value) {
    for (id, r) in resources(t) {
        let ty = r["Type"].as_str().unwrap();
        assert!(!ty.starts_with("AWS::CodeDeploy::"), "{id} ({ty}) remains");
        assert!(
            r.get("UpdatePolicy").is_none(),
            "{id} keeps an UpdatePolicy"
        );
        assert!(
            !r.to_string().contains("codedeploy.amazonaws.com"),
            "{id} still trusts CodeDeploy"
        );
    }
}

/// Every CodeDeploy alias of `sam` is a safeshift alias in `out` under the same logical ID, still referenced by
/// everything that referred to it.
fn aliases_keep_their_ids_and_referrers(sam: &Value, out: &Value) -> Vec<String> {
    let aliases = codedeploy_aliases(sam);
    assert!(!aliases.is_empty());
    for id in &aliases {
        assert_eq!(resources(out)[id]["Type"], "Custom::SafeshiftAlias", "{id}");
        let before = referrers(sam, id);
        assert!(!before.is_empty(), "nothing refers to {id} in SAM's output");
        assert_eq!(referrers(out, id), before, "{id}'s referrers");
    }
    aliases
}

fn sam(name: &str) -> Value {
    sam_output(&root().join("tests/sam").join(name))
}

#[test]
fn one_api_function_with_alarms_hooks_and_settings() {
    let sam = sam("one-function.yaml");
    let out = transformed("one", &sam);
    no_codedeploy_remains(&out);
    assert_eq!(
        aliases_keep_their_ids_and_referrers(&sam, &out),
        ["OrdersApiAliaslive"]
    );
    let p = &out["Resources"]["OrdersApiAliaslive"]["Properties"];
    assert_eq!(p["Strategy"], "Canary10Percent5Minutes");
    assert_eq!(p["Alarms"], json!([{"Ref": "OrdersErrors"}]));
    assert_eq!(p["PreTrafficHook"], json!({"Ref": "SmokeHook"}));
    assert_eq!(p["FunctionName"], json!({"Ref": "OrdersApi"}));
    let settings: Value = serde_json::from_str(p["Deployment"].as_str().unwrap()).unwrap();
    assert_eq!(
        settings,
        json!({"bakeSeconds": 60, "analysis": {"maxErrorRate": 0.01}})
    );
    assert_eq!(
        p["ServiceToken"]["Fn::Sub"],
        "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:safeshift-cloudformation"
    );
    // The API integration still invokes the alias.
    let api = out["Resources"]["ServerlessRestApi"].to_string();
    assert!(api.contains("${OrdersApiAliaslive}/invocations"), "{api}");
}

#[test]
fn several_functions_with_api_queue_and_schedule_events() {
    let sam = sam("several-functions.yaml");
    let out = transformed("several", &sam);
    no_codedeploy_remains(&out);
    let aliases = aliases_keep_their_ids_and_referrers(&sam, &out);
    assert_eq!(aliases.len(), 3, "{aliases:?}");
    let r = &out["Resources"];
    assert_eq!(
        r["ApiAliaslive"]["Properties"]["Strategy"],
        "Linear10PercentEvery1Minute"
    );
    assert_eq!(
        r["ApiAliaslive"]["Properties"]["Alarms"],
        json!(["api-errors", "api-latency"])
    );
    assert_eq!(
        r["ApiAliaslive"]["Properties"]["PostTrafficHook"],
        json!({"Ref": "Check"})
    );
    assert_eq!(
        r["WorkerAliaslive"]["Properties"]["Strategy"],
        "Canary10Percent10Minutes"
    );
    assert_eq!(r["NightlyAliaslive"]["Properties"]["Strategy"], "AllAtOnce");
    assert_eq!(
        r["WorkerJobs"]["Properties"]["FunctionName"],
        json!({"Ref": "WorkerAliaslive"})
    );
    assert_eq!(
        r["NightlyTick"]["Properties"]["Targets"][0]["Arn"],
        json!({"Ref": "NightlyAliaslive"})
    );
}

#[test]
fn enabled_false_keeps_sams_alias_unless_safeshift_is_asked_to_keep_its_own() {
    let sam = sam("disabled.yaml");
    let out = transformed("disabled", &sam);
    no_codedeploy_remains(&out);
    let r = &out["Resources"];
    assert_eq!(
        r["PlainAliaslive"], sam["Resources"]["PlainAliaslive"],
        "left as SAM made it"
    );
    assert_eq!(r["KeptAliaslive"]["Type"], "Custom::SafeshiftAlias");
    assert_eq!(r["KeptAliaslive"]["Properties"]["Enabled"], "false");
    assert_eq!(
        referrers(&out, "KeptAliaslive"),
        referrers(&sam, "KeptAliaslive")
    );
}

#[test]
fn an_unmappable_property_is_an_error_naming_it() {
    let sam = sam("unmappable.yaml");
    let out = transform("unmappable", &sam);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "no template is printed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("OrdersApi: DeploymentPreference.TriggerConfigurations"),
        "{err}"
    );
}

#[test]
fn a_rollout_longer_than_cloudformation_waits_is_refused_at_transform_time() {
    let mut sam = sam("one-function.yaml");
    sam["Resources"]["OrdersApi"]["Metadata"]["Safeshift"] =
        json!({"strategy": "Linear10PercentEvery10Minutes"});
    let out = transform("long", &sam);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("OrdersApi") && err.contains("detached: true"),
        "{err}"
    );
    sam["Resources"]["OrdersApi"]["Metadata"]["Safeshift"]["detached"] = json!(true);
    let out = transformed("long-detached", &sam);
    assert_eq!(
        out["Resources"]["OrdersApiAliaslive"]["Properties"]["Detached"],
        "true"
    );
}

/// README "Moving an existing stack": `retain` keeps CodeDeploy for one deploy and marks the alias Retain;
/// `detach` takes it out of the stack (kept, as retained) with every reference pointing at its ARN; then the
/// plain transform adopts it under the same logical ID.
#[test]
fn migration_steps_retain_then_detach_then_adopt() {
    let sam = sam("one-function.yaml");
    let with = |step: &str| {
        let mut t = sam.clone();
        t["Resources"]["OrdersApi"]["Metadata"]["Safeshift"]["migration"] = json!(step);
        t
    };
    let retained = transformed("retain", &with("retain"));
    let alias = &retained["Resources"]["OrdersApiAliaslive"];
    assert_eq!(alias["Type"], "AWS::Lambda::Alias");
    assert_eq!(alias["DeletionPolicy"], "Retain");
    assert_eq!(alias["UpdateReplacePolicy"], "Retain");
    assert!(
        alias
            .pointer("/UpdatePolicy/CodeDeployLambdaAliasUpdate")
            .is_some(),
        "CodeDeploy still deploys"
    );
    assert_eq!(
        alias["Properties"],
        sam["Resources"]["OrdersApiAliaslive"]["Properties"]
    );

    let detached = transformed("detach", &with("detach"));
    no_codedeploy_remains(&detached);
    assert!(detached["Resources"].get("OrdersApiAliaslive").is_none());
    assert!(referrers(&detached, "OrdersApiAliaslive").is_empty());
    let permission =
        &detached["Resources"]["OrdersApiGetPermissionProd"]["Properties"]["FunctionName"];
    assert_eq!(
        *permission,
        json!({"Fn::Join": [":", [{"Fn::GetAtt": ["OrdersApi", "Arn"]}, "live"]]})
    );
    let api = detached["Resources"]["ServerlessRestApi"].to_string();
    assert!(api.contains("${OrdersApi.Arn}:live/invocations"), "{api}");

    let adopted = transformed("adopt", &sam);
    assert_eq!(
        adopted["Resources"]["OrdersApiAliaslive"]["Type"],
        "Custom::SafeshiftAlias"
    );
}

#[test]
fn the_example_app_is_a_sam_app_with_the_transform() {
    let raw = std::fs::read_to_string(root().join("examples/app/template.yaml")).unwrap();
    assert!(raw.contains("Safeshift") && raw.contains("DeploymentPreference"));
    let sam = sam_output(&root().join("examples/app/template.yaml"));
    let out = transformed("example-app", &sam);
    no_codedeploy_remains(&out);
    aliases_keep_their_ids_and_referrers(&sam, &out);
}
