//! The `Custom::SafeshiftAlias` resource: an alias that safeshift moves, owned by a CloudFormation stack. What its
//! properties mean (CloudFormation hands every scalar over as a string), the deployment an update starts, what
//! each request does to the alias, and whether a rollout fits in the hour CloudFormation waits for an answer.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::deployment::Deployment;
use crate::error::{FieldError, InvalidInput};

/// The resource type the `Safeshift` macro writes in place of SAM's CodeDeploy-managed alias.
pub const RESOURCE_TYPE: &str = "Custom::SafeshiftAlias";

/// How long CloudFormation waits for a custom resource's answer (its `ServiceTimeout`, at most and by default).
pub const CUSTOM_RESOURCE_SECONDS: u64 = 3600;
/// What a rollout that answers CloudFormation at its end may take at most: the hour, less what its bakes and
/// hooks do not count — Prepare (its state waits up to 180 s, retried), a rollback at the last step (RollBack
/// waits up to 240 s), the answer — with room to spare.
pub const ATTACHED_ROLLOUT_SECONDS: u64 = CUSTOM_RESOURCE_SECONDS - 600;
/// What each step adds beyond its bake when every gate answers at once: the shift, the alarm check, the
/// transitions between them.
const STEP_OVERHEAD_SECONDS: u64 = 10;

/// The resource's properties, as CloudFormation sends them: every scalar a string, lists as lists.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AliasProperties {
    /// The function's name (what `!Ref` of an `AWS::Lambda::Function` gives) or ARN.
    pub function_name: String,
    /// The alias's name.
    pub name: String,
    /// The version the stack wants the alias on (SAM's `!GetAtt <Function>Version<hash>.Version`).
    pub function_version: String,
    /// DeploymentPreference `Type`, as safeshift's strategy name.
    #[serde(default)]
    pub strategy: Option<String>,
    /// DeploymentPreference `Alarms`.
    #[serde(default)]
    pub alarms: Vec<String>,
    /// DeploymentPreference `Hooks.PreTraffic` and `Hooks.PostTraffic`: the hook functions' names.
    #[serde(default)]
    pub pre_traffic_hook: Option<String>,
    #[serde(default)]
    pub post_traffic_hook: Option<String>,
    /// safeshift's own deployment fields (`analysis`, `approval`, `bakeSeconds`, a custom `strategy`, …) as the
    /// JSON text of an object: the function's `Metadata.Safeshift`, less the macro's own keys.
    #[serde(default)]
    pub deployment: Option<String>,
    /// "true": answer CloudFormation once the rollout has started, not when it ends.
    #[serde(default)]
    pub detached: Option<String>,
    /// "false": DeploymentPreference `Enabled: false` — the alias moves to each new version at once, no rollout.
    #[serde(default)]
    pub enabled: Option<String>,
    /// CloudFormation's own: which function serves the resource, and how long it waits for it.
    #[serde(default)]
    pub service_token: Option<String>,
    #[serde(default)]
    pub service_timeout: Option<String>,
}

impl AliasProperties {
    /// Reads the properties of a request, naming the property that does not fit.
    pub fn from_value(value: Value) -> Result<Self, InvalidInput> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            InvalidInput::one(
                format!("ResourceProperties.{}", e.path()),
                e.inner().to_string(),
            )
        })
    }

    pub fn detached(&self) -> Result<bool, InvalidInput> {
        flag(self.detached.as_deref(), "Detached", false)
    }

    pub fn enabled(&self) -> Result<bool, InvalidInput> {
        flag(self.enabled.as_deref(), "Enabled", true)
    }

    /// The alias and function these properties name: a change of either is a new alias (a replacement).
    pub fn identity(&self) -> (&str, &str) {
        (&self.function_name, &self.name)
    }

    /// The key of the alias's deployment lock, as every deployment of it computes it (`Deployment::lock_key`).
    pub fn lock_key(&self) -> Result<String, InvalidInput> {
        lock_key(&self.function_name, &self.name)
            .map_err(|reason| InvalidInput::one("ResourceProperties.FunctionName", reason))
    }

    /// The deployment an update to [`Self::function_version`] runs: the properties laid over `Deployment`'s
    /// fields, validated as any deployment input is (errors name the input's field).
    pub fn deployment(&self) -> Result<Deployment, InvalidInput> {
        let mut input = match self.deployment.as_deref() {
            None | Some("") => Map::new(),
            Some(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => map,
                Ok(_) | Err(_) => {
                    return Err(InvalidInput::one(
                        "ResourceProperties.Deployment",
                        "must be the JSON text of an object of deployment fields",
                    ));
                }
            },
        };
        let mut problems = Vec::new();
        for owned in ["functionName", "alias", "targetVersion"] {
            if input.contains_key(owned) {
                problems.push(FieldError::new(
                    owned,
                    "comes from the resource (FunctionName, Name, FunctionVersion), not from Metadata.Safeshift",
                ));
            }
        }
        // Each alias resource is one alias of one function: a release of several is started as one deployment
        // (`safeshift start`), not spread over a stack's resources.
        for release in ["release", "targets"] {
            if input.contains_key(release) {
                problems.push(FieldError::new(
                    release,
                    "has no place in an alias resource, which moves one alias: start a release of several functions with `safeshift start`",
                ));
            }
        }
        input.insert("functionName".into(), self.function_name.clone().into());
        input.insert("alias".into(), self.name.clone().into());
        input.insert("targetVersion".into(), self.function_version.clone().into());
        if let Some(strategy) = &self.strategy {
            // safeshift's own strategy (Metadata.Safeshift.strategy) is the more precise wish.
            input
                .entry("strategy")
                .or_insert_with(|| strategy.clone().into());
        }
        if !self.alarms.is_empty() {
            let listed = input
                .entry("alarms")
                .or_insert_with(|| Value::Array(Vec::new()));
            match listed {
                Value::Array(list) => {
                    list.extend(self.alarms.iter().cloned().map(Value::from));
                }
                _ => problems.push(FieldError::new("alarms", "must be a list of alarm names")),
            }
        }
        for (point, hook) in [
            ("preTraffic", &self.pre_traffic_hook),
            ("postTraffic", &self.post_traffic_hook),
        ] {
            let Some(hook) = hook else { continue };
            let hooks = input
                .entry("hooks")
                .or_insert_with(|| Value::Object(Map::new()));
            match hooks {
                Value::Object(hooks) if hooks.contains_key(point) => {
                    problems.push(FieldError::new(
                        format!("hooks.{point}"),
                        "is set both by DeploymentPreference.Hooks and by Metadata.Safeshift.hooks; keep one",
                    ));
                }
                Value::Object(hooks) => {
                    hooks.insert(point.into(), hook.clone().into());
                }
                _ => problems.push(FieldError::new("hooks", "must be an object")),
            }
        }
        if !problems.is_empty() {
            return Err(InvalidInput { problems });
        }
        Deployment::from_value(Value::Object(input))
    }
}

/// Which alias a function (name or ARN, however written) and alias name are: `name:alias`, the lock's key.
pub fn lock_key(function: &str, alias: &str) -> Result<String, String> {
    let function = crate::names::FunctionRef::parse(function, crate::names::Qualifier::Forbidden)?;
    Ok(crate::deployment::lock_key(&function, alias))
}

fn flag(value: Option<&str>, property: &str, default: bool) -> Result<bool, InvalidInput> {
    match value {
        None | Some("") => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(InvalidInput::one(
            format!("ResourceProperties.{property}"),
            format!("must be true or false (got {v:?})"),
        )),
    }
}

/// The longest a rollout of `deployment` takes when nobody steers it: every bake (extended as often as its
/// analysis allows), every hook's timeout as often as it runs, and each step's own work. `None` when it waits for
/// a person (an approval gate), which has no bound.
pub fn longest_seconds(deployment: &Deployment) -> Option<u64> {
    if deployment.approval.is_some() {
        return None;
    }
    let schedule = deployment.schedule();
    let analysis = deployment.analysis.as_ref();
    let bakes = match analysis {
        Some(a) => crate::gates::analysis::longest_seconds(schedule, Some(a), a.max_extensions),
        None => crate::gates::analysis::total_seconds(schedule, None),
    };
    let steps = schedule.steps().len() as u64;
    let hooks = &deployment.hooks;
    let timeout = |h: Option<&crate::hooks::Hook>| h.map_or(0, |h| h.timeout_seconds);
    let hook_seconds = timeout(hooks.pre_traffic.as_ref())
        + timeout(hooks.post_traffic.as_ref())
        + timeout(hooks.on_rollback.as_ref())
        + steps * (timeout(hooks.before_step.as_ref()) + timeout(hooks.after_step.as_ref()));
    Some(bakes + hook_seconds + steps * STEP_OVERHEAD_SECONDS)
}

/// Whether CloudFormation can wait for `deployment`'s end: refused, with what to do, when it may not.
pub fn fits_attached(deployment: &Deployment) -> Result<(), String> {
    match longest_seconds(deployment) {
        None => Err(format!(
            "the rollout of {} waits for an approval, which may take longer than the {CUSTOM_RESOURCE_SECONDS} s \
             CloudFormation waits for a custom resource; set `detached: true` in the function's Metadata.Safeshift \
             (the stack update then ends when the rollout starts) or drop `approval`",
            deployment.label()
        )),
        Some(s) if s > ATTACHED_ROLLOUT_SECONDS => Err(format!(
            "the rollout of {} may take up to {s} s (bakes, analysis extensions and hook timeouts), longer than \
             the {ATTACHED_ROLLOUT_SECONDS} s a stack update can wait for it (CloudFormation waits {CUSTOM_RESOURCE_SECONDS} s \
             for a custom resource); choose a shorter strategy or set `detached: true` in the function's \
             Metadata.Safeshift (the stack update then ends when the rollout starts)",
            deployment.label()
        )),
        Some(_) => Ok(()),
    }
}

/// The Description safeshift gives an alias it creates for a stack: the mark that lets a Delete remove only an
/// alias this resource created, never one it adopted.
pub fn created_mark(stack_id: &str, logical_id: &str) -> String {
    let mark = format!("Created by safeshift for {logical_id} in {stack_id}");
    // Lambda keeps at most 256 characters of a Description.
    mark.chars().take(256).collect()
}

/// What an update asks of the alias, from where it is now.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdatePlan {
    /// The alias is on that version already (an unchanged version, or the update a stack rollback sends back to
    /// the version safeshift already restored): nothing to write.
    Nothing,
    /// `Enabled: false`: point the alias at the version at once, as CloudFormation would.
    PointAt(String),
    /// Run a rollout to the version.
    Deploy(Box<Deployment>),
}

/// Decides an update from the properties and the alias's current primary version.
pub fn plan_update(
    properties: &AliasProperties,
    current_version: &str,
) -> Result<UpdatePlan, InvalidInput> {
    if properties.function_version == current_version {
        return Ok(UpdatePlan::Nothing);
    }
    if !properties.enabled()? {
        return Ok(UpdatePlan::PointAt(properties.function_version.clone()));
    }
    let deployment = properties.deployment()?;
    if !properties.detached()? {
        fits_attached(&deployment)
            .map_err(|reason| InvalidInput::one("ResourceProperties", reason))?;
    }
    Ok(UpdatePlan::Deploy(Box::new(deployment)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn props(extra: Value) -> AliasProperties {
        let mut base = json!({
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:safeshift-cloudformation",
            "FunctionName": "orders-api", "Name": "live", "FunctionVersion": "7",
            "Strategy": "Canary10Percent5Minutes", "Alarms": ["orders-errors"],
        });
        base.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        AliasProperties::from_value(base).unwrap()
    }

    #[test]
    fn the_properties_make_the_deployment_input() {
        let p = props(json!({
            "PreTrafficHook": "SafeshiftHook_smoke",
            "Deployment": "{\"bakeSeconds\": 30, \"alarms\": [\"latency\"], \"hooks\": {\"afterStep\": \"SafeshiftHook_check\"}}",
        }));
        let d = p.deployment().unwrap();
        let t = d.primary();
        assert_eq!(d.targets.len(), 1);
        assert_eq!(t.function_name.to_string(), "orders-api");
        assert_eq!(t.alias, "live");
        assert_eq!(t.target_version.to_string(), "7");
        assert_eq!(d.alarms, ["latency", "orders-errors"]);
        assert_eq!(d.bake_seconds, 30);
        assert!(d.hooks.pre_traffic.is_some() && d.hooks.after_step.is_some());
        assert_eq!(
            serde_json::to_value(&d.strategy).unwrap(),
            json!("Canary10Percent5Minutes")
        );
    }

    #[test]
    fn the_resource_and_its_deployments_meet_on_one_lock_however_the_function_is_written() {
        let by_arn = props(
            json!({"FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:orders-api"}),
        );
        let by_name = props(json!({}));
        assert_eq!(by_arn.lock_key().unwrap(), "orders-api:live");
        assert_eq!(
            by_name.lock_key().unwrap(),
            by_arn.deployment().unwrap().lock_key()
        );
    }

    #[test]
    fn metadata_strategy_wins_and_a_hook_set_twice_is_refused() {
        let p = props(json!({"Deployment": "{\"strategy\": \"AllAtOnce\"}"}));
        assert_eq!(
            serde_json::to_value(&p.deployment().unwrap().strategy).unwrap(),
            json!("AllAtOnce")
        );
        let p = props(json!({
            "PreTrafficHook": "SafeshiftHook_a",
            "Deployment": "{\"hooks\": {\"preTraffic\": \"SafeshiftHook_b\"}, \"targetVersion\": \"3\", \"targets\": []}",
        }));
        let e = p.deployment().unwrap_err();
        let fields: Vec<_> = e.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["targetVersion", "targets", "hooks.preTraffic"]);
    }

    #[test]
    fn a_bad_property_is_named() {
        let e =
            AliasProperties::from_value(json!({"FunctionName": "f", "Name": "live"})).unwrap_err();
        assert!(e.to_string().contains("FunctionVersion"), "{e}");
        let e = AliasProperties::from_value(
            json!({"FunctionName": "f", "Name": "live", "FunctionVersion": "2", "Trigers": []}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("Trigers"), "{e}");
        let p = props(json!({"Detached": "yes"}));
        assert!(p.detached().unwrap_err().to_string().contains("Detached"));
        let p = props(json!({"Deployment": "[1]"}));
        assert!(
            p.deployment()
                .unwrap_err()
                .to_string()
                .contains("ResourceProperties.Deployment")
        );
    }

    #[test]
    fn an_update_to_the_version_the_alias_is_on_writes_nothing() {
        let p = props(json!({}));
        assert_eq!(plan_update(&p, "7").unwrap(), UpdatePlan::Nothing);
        assert!(matches!(
            plan_update(&p, "6").unwrap(),
            UpdatePlan::Deploy(_)
        ));
        let p = props(json!({"Enabled": "false"}));
        assert_eq!(
            plan_update(&p, "6").unwrap(),
            UpdatePlan::PointAt("7".into())
        );
    }

    #[test]
    fn a_rollout_longer_than_the_hour_is_refused_unless_detached() {
        // Linear10PercentEvery10Minutes: ten steps of ten minutes, past the hour.
        let long = props(json!({"Strategy": "Linear10PercentEvery10Minutes"}));
        let e = plan_update(&long, "6").unwrap_err().to_string();
        assert!(
            e.contains("detached") && e.contains("orders-api:live"),
            "{e}"
        );
        let detached =
            props(json!({"Strategy": "Linear10PercentEvery10Minutes", "Detached": "true"}));
        assert!(matches!(
            plan_update(&detached, "6").unwrap(),
            UpdatePlan::Deploy(_)
        ));
        let approval = props(json!({"Deployment": "{\"approval\": \"beforePromotion\"}"}));
        assert!(
            plan_update(&approval, "6")
                .unwrap_err()
                .to_string()
                .contains("approval")
        );
        // Canary10Percent30Minutes fits: 30 min and its steps.
        let canary = props(json!({"Strategy": "Canary10Percent30Minutes"}));
        let d = canary.deployment().unwrap();
        assert!(longest_seconds(&d).unwrap() >= 1800);
        assert!(fits_attached(&d).is_ok());
    }

    #[test]
    fn hooks_count_towards_the_hour_as_often_as_they_run() {
        let quick = props(json!({"Strategy": "Linear10PercentEvery1Minute"}));
        let without = longest_seconds(&quick.deployment().unwrap()).unwrap();
        let hooked = props(json!({
            "Strategy": "Linear10PercentEvery1Minute",
            "Deployment": "{\"hooks\": {\"afterStep\": {\"function\": \"SafeshiftHook_a\", \"mode\": \"callback\", \"timeoutSeconds\": 300}}}",
        }));
        let with = longest_seconds(&hooked.deployment().unwrap()).unwrap();
        assert!(with >= without + 10 * 300, "{without} {with}");
        assert!(plan_update(&hooked, "6").is_err());
    }

    #[test]
    fn the_created_mark_names_the_resource_and_fits_lambda() {
        let m = created_mark(
            "arn:aws:cloudformation:us-east-1:1:stack/app/abc",
            "OrdersApiAliaslive",
        );
        assert!(m.contains("OrdersApiAliaslive") && m.contains("stack/app/abc"));
        assert!(created_mark(&"s".repeat(400), "X").chars().count() <= 256);
    }
}
