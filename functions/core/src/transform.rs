//! The `Safeshift` CloudFormation macro, which `safeshift transform` runs offline too. It reads what the SAM
//! translator made of a template (`Transform: [AWS::Serverless-2016-10-31, Safeshift]`: CloudFormation runs the
//! transforms in that order) and, for every function with a `DeploymentPreference`, puts a safeshift-managed
//! alias (`Custom::SafeshiftAlias`) under the alias's own logical ID in place of CodeDeploy's resources — the
//! deployment group, the application and service role once nothing else uses them, and the alias's
//! `UpdatePolicy` — so every `!Ref` to the alias (event sources, permissions, API integrations) keeps working.
//!
//! The function's `Metadata.Safeshift` holds safeshift's own deployment fields (`analysis`, `approval`,
//! `bakeSeconds`, a custom `strategy`, more `hooks`, …) and the macro's keys: `detached` (answer CloudFormation
//! when the rollout starts) and `migration` (`retain`, then `detach`: the steps that move an existing stack off
//! CodeDeploy without its alias ever being deleted; README "Migrating from DeploymentPreference").
//! What cannot be mapped is an error naming the resource and the property, never dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value, json};

use crate::custom_resource::{self, AliasProperties, RESOURCE_TYPE};

/// The macro's name, as templates list it in `Transform`.
pub const MACRO_NAME: &str = "Safeshift";
/// The key of a function's `Metadata` that holds safeshift's settings.
pub const METADATA_KEY: &str = "Safeshift";
/// The alias's `UpdatePolicy` SAM writes for a `DeploymentPreference`.
const CODEDEPLOY_UPDATE: &str = "CodeDeployLambdaAliasUpdate";

/// One thing the macro cannot map: the resource (the function's logical ID, as the user wrote it), the
/// property, and what to do instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmappable {
    pub resource: String,
    pub property: String,
    pub reason: String,
}

impl fmt::Display for Unmappable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.resource, self.property, self.reason)
    }
}

/// Every problem the macro found, so a user fixes them all in one go.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TransformError(pub Vec<Unmappable>);

impl fmt::Display for TransformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the Safeshift macro cannot transform this template:")?;
        for p in &self.0 {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

fn problem(resource: &str, property: &str, reason: impl Into<String>) -> Unmappable {
    Unmappable {
        resource: resource.to_owned(),
        property: property.to_owned(),
        reason: reason.into(),
    }
}

/// The `ServiceToken` of the aliases: the engine stack's `cloudformation` function, named as `sam deploy` names
/// it, in the account and region the template is deployed to.
pub fn service_token(provider_function: &str) -> Value {
    json!({"Fn::Sub": format!(
        "arn:${{AWS::Partition}}:lambda:${{AWS::Region}}:${{AWS::AccountId}}:function:{provider_function}"
    )})
}

/// A migration step (`Metadata.Safeshift.migration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Migration {
    /// Keep CodeDeploy for this deploy; mark the alias `DeletionPolicy: Retain` so that it survives leaving the
    /// stack.
    Retain,
    /// The alias leaves the stack (kept: it was retained) and every reference to it becomes its ARN; CodeDeploy's
    /// resources go. Next, without `migration`, the safeshift alias adopts it under the same logical ID.
    Detach,
}

/// What one CodeDeploy-managed alias asks of safeshift.
struct Wish {
    strategy: Option<Value>,
    alarms: Vec<Value>,
    pre_traffic: Option<Value>,
    post_traffic: Option<Value>,
    /// The deployment group and application SAM made for it.
    group: Option<String>,
}

/// Transforms SAM's output (a template fragment); `provider_function` is the engine stack's `cloudformation`
/// function's name.
pub fn transform(mut template: Value, provider_function: &str) -> Result<Value, TransformError> {
    let Some(resources) = template.get_mut("Resources").and_then(Value::as_object_mut) else {
        return Err(TransformError(vec![problem(
            "template",
            "Resources",
            "must be an object of resources",
        )]));
    };
    let mut problems = Vec::new();
    let mut groups = BTreeSet::new();
    // Logical ID of each detached alias -> what references to it become.
    let mut detached: BTreeMap<String, (Value, String)> = BTreeMap::new();
    let aliases: Vec<String> = resources
        .iter()
        .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some("AWS::Lambda::Alias"))
        .map(|(id, _)| id.clone())
        .collect();
    for id in aliases {
        let alias = resources[&id].clone();
        let function_id = alias
            .pointer("/Properties/FunctionName/Ref")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let settings = function_id
            .as_deref()
            .and_then(|f| resources.get(f))
            .and_then(|f| f.pointer(&format!("/Metadata/{METADATA_KEY}")))
            .cloned();
        let update = alias
            .pointer(&format!("/UpdatePolicy/{CODEDEPLOY_UPDATE}"))
            .cloned();
        if update.is_none() && settings.is_none() {
            continue;
        }
        let who = function_id.clone().unwrap_or_else(|| id.clone());
        let before = problems.len();
        let mut settings = match settings {
            None => Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => {
                problems.push(problem(
                    &who,
                    "Metadata.Safeshift",
                    "must be an object of deployment fields",
                ));
                continue;
            }
        };
        if let Some(path) = intrinsic_in(&Value::Object(settings.clone()), "Metadata.Safeshift") {
            problems.push(problem(
                &who,
                &path,
                "intrinsic functions are not resolved in Metadata: give a literal value (alarms and hooks that \
                 need !Ref belong in DeploymentPreference)",
            ));
            continue;
        }
        let migration = match settings.remove("migration") {
            None => None,
            Some(Value::String(s)) if s == "retain" => Some(Migration::Retain),
            Some(Value::String(s)) if s == "detach" => Some(Migration::Detach),
            Some(other) => {
                problems.push(problem(
                    &who,
                    "Metadata.Safeshift.migration",
                    format!("must be \"retain\" or \"detach\" (got {other})"),
                ));
                None
            }
        };
        let detach_flag = match settings.remove("detached") {
            None | Some(Value::Bool(false)) => false,
            Some(Value::Bool(true)) => true,
            Some(other) => {
                problems.push(problem(
                    &who,
                    "Metadata.Safeshift.detached",
                    format!("must be true or false (got {other})"),
                ));
                false
            }
        };
        if let Some(Migration::Retain) = migration {
            let r = resources
                .get_mut(&id)
                .and_then(Value::as_object_mut)
                .expect("listed above");
            r.insert("DeletionPolicy".into(), "Retain".into());
            r.insert("UpdateReplacePolicy".into(), "Retain".into());
            continue;
        }
        let wish = match update {
            Some(update) => read_codedeploy(
                resources,
                &who,
                &update,
                settings.contains_key("strategy"),
                &mut problems,
            ),
            None => Wish {
                strategy: None,
                alarms: Vec::new(),
                pre_traffic: None,
                post_traffic: None,
                group: None,
            },
        };
        let properties = alias.get("Properties").cloned().unwrap_or(json!({}));
        for (key, _) in properties.as_object().into_iter().flatten() {
            if !["Name", "FunctionName", "FunctionVersion"].contains(&key.as_str()) {
                problems.push(problem(
                    &who,
                    &format!("alias {id}: {key}"),
                    "a safeshift alias takes only its function, name and version (SAM's \
                     ProvisionedConcurrencyConfig and alias properties are not supported yet)",
                ));
            }
        }
        let Some(name) = properties.get("Name").and_then(Value::as_str) else {
            problems.push(problem(
                &who,
                "AutoPublishAlias",
                "the alias's name must be a literal string",
            ));
            continue;
        };
        if problems.len() > before {
            continue;
        }
        if let Some(group) = &wish.group {
            groups.insert(group.clone());
        }
        if let Some(Migration::Detach) = migration {
            let Some(function_id) = &function_id else {
                problems.push(problem(
                    &who,
                    "Metadata.Safeshift.migration",
                    "detach needs the alias's FunctionName to be a !Ref to the function",
                ));
                continue;
            };
            resources.remove(&id);
            detached.insert(
                id.clone(),
                (
                    json!({"Fn::Join": [":", [{"Fn::GetAtt": [function_id, "Arn"]}, name]]}),
                    format!("${{{function_id}.Arn}}:{name}"),
                ),
            );
            continue;
        }
        let deployment_text = (!settings.is_empty()).then(|| Value::Object(settings).to_string());
        check_settings(
            resources,
            &who,
            function_id.as_deref(),
            name,
            &wish,
            deployment_text.as_deref(),
            detach_flag,
            &mut problems,
        );
        let mut props = Map::new();
        props.insert("ServiceToken".into(), service_token(provider_function));
        for key in ["FunctionName", "Name", "FunctionVersion"] {
            if let Some(v) = properties.get(key) {
                props.insert(key.into(), v.clone());
            }
        }
        if let Some(s) = wish.strategy {
            props.insert("Strategy".into(), s);
        }
        if !wish.alarms.is_empty() {
            props.insert("Alarms".into(), Value::Array(wish.alarms));
        }
        if let Some(h) = wish.pre_traffic {
            props.insert("PreTrafficHook".into(), h);
        }
        if let Some(h) = wish.post_traffic {
            props.insert("PostTrafficHook".into(), h);
        }
        if let Some(text) = deployment_text {
            props.insert("Deployment".into(), text.into());
        }
        if detach_flag {
            props.insert("Detached".into(), "true".into());
        }
        if wish.group.is_none() {
            // Metadata.Safeshift without a deployment group: SAM's `Enabled: false`.
            props.insert("Enabled".into(), "false".into());
        }
        let mut resource = Map::new();
        resource.insert("Type".into(), RESOURCE_TYPE.into());
        for attribute in [
            "Condition",
            "DependsOn",
            "DeletionPolicy",
            "UpdateReplacePolicy",
            "Metadata",
        ] {
            if let Some(v) = alias.get(attribute) {
                resource.insert(attribute.into(), v.clone());
            }
        }
        resource.insert("Properties".into(), Value::Object(props));
        resources.insert(id, Value::Object(resource));
    }
    if !problems.is_empty() {
        return Err(TransformError(problems));
    }
    // What the converted aliases used of CodeDeploy: their groups, and the groups' application and role.
    let mut codedeploy: Vec<String> = Vec::new();
    for group in &groups {
        if let Some(g) = resources.get(group) {
            for used in [
                "/Properties/ApplicationName/Ref",
                "/Properties/ServiceRoleArn/Fn::GetAtt/0",
            ] {
                if let Some(id) = g.pointer(used).and_then(Value::as_str) {
                    codedeploy.push(id.to_owned());
                }
            }
        }
    }
    let mut template = template;
    for (id, (arn, sub)) in &detached {
        if let Err(e) = rewrite_references(&mut template, id, arn, sub) {
            problems.push(e);
        }
    }
    // Groups first (they reference the application and role), each only once nothing else refers to it.
    remove_unreferenced(&mut template, groups.iter().cloned().chain(codedeploy));
    if !problems.is_empty() {
        return Err(TransformError(problems));
    }
    Ok(template)
}

/// Reads a CodeDeploy-managed alias's wish from its `UpdatePolicy` and deployment group.
fn read_codedeploy(
    resources: &Map<String, Value>,
    who: &str,
    update: &Value,
    own_strategy: bool,
    problems: &mut Vec<Unmappable>,
) -> Wish {
    let mut wish = Wish {
        strategy: None,
        alarms: Vec::new(),
        pre_traffic: None,
        post_traffic: None,
        group: None,
    };
    for (key, value) in update.as_object().into_iter().flatten() {
        match key.as_str() {
            "ApplicationName" => {}
            "DeploymentGroupName" => {
                wish.group = value.get("Ref").and_then(Value::as_str).map(str::to_owned)
            }
            "BeforeAllowTrafficHook" => wish.pre_traffic = Some(value.clone()),
            "AfterAllowTrafficHook" => wish.post_traffic = Some(value.clone()),
            other => problems.push(problem(
                who,
                &format!("UpdatePolicy.{CODEDEPLOY_UPDATE}.{other}"),
                "has no safeshift equivalent",
            )),
        }
    }
    let Some(group) = wish.group.as_deref().and_then(|g| resources.get(g)) else {
        problems.push(problem(
            who,
            "DeploymentPreference",
            "its deployment group is not in this template (a DeploymentGroupName that is not a !Ref to one)",
        ));
        return wish;
    };
    for (key, value) in group
        .get("Properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        match key.as_str() {
            // CodeDeploy's own wiring: safeshift has its own role and always rolls back.
            "ApplicationName" | "DeploymentStyle" | "ServiceRoleArn" => {}
            "AutoRollbackConfiguration" => {
                if value.get("Enabled") == Some(&Value::Bool(false)) {
                    problems.push(problem(
                        who,
                        "DeploymentPreference (AutoRollbackConfiguration)",
                        "safeshift always rolls a failed rollout back; it cannot be turned off",
                    ));
                }
            }
            // safeshift's own strategy (Metadata.Safeshift.strategy) stands in for a custom configuration.
            "DeploymentConfigName" if own_strategy => {}
            "DeploymentConfigName" => wish.strategy = strategy_of(value, who, problems),
            "AlarmConfiguration" if value.as_object().is_some_and(|m| m.keys().any(|k| k.starts_with("Fn::"))) => {
                problems.push(problem(
                    who,
                    "DeploymentPreference.Alarms",
                    "conditional alarms (Fn::If) cannot be mapped: list the alarms plainly (a !Ref to an alarm \
                     with a Condition is fine), so no rollout ever runs without its alarm gate",
                ))
            }
            "AlarmConfiguration" => {
                if value.get("IgnorePollAlarmFailure") == Some(&Value::Bool(true)) {
                    problems.push(problem(
                        who,
                        "DeploymentPreference (IgnorePollAlarmFailure)",
                        "safeshift fails a gate whose alarms it cannot read; remove IgnorePollAlarmFailure",
                    ));
                }
                if value.get("Enabled") != Some(&Value::Bool(false)) {
                    wish.alarms = value
                        .get("Alarms")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|a| a.get("Name").cloned())
                        .collect();
                }
            }
            "TriggerConfigurations" => problems.push(problem(
                who,
                "DeploymentPreference.TriggerConfigurations",
                "safeshift has no CodeDeploy triggers: subscribe to its lifecycle events instead (EventBridge, \
                 source `safeshift`, or the engine stack's NotificationTopicArn) and remove TriggerConfigurations",
            )),
            other => problems.push(problem(
                who,
                &format!("DeploymentPreference ({other})"),
                "has no safeshift equivalent",
            )),
        }
    }
    wish
}

/// DeploymentPreference `Type` as SAM writes it: `Fn::Sub ["CodeDeployDefault.Lambda${ConfigName}", {ConfigName:
/// T}]` for a predefined type, the plain name of a custom CodeDeploy configuration otherwise.
fn strategy_of(value: &Value, who: &str, problems: &mut Vec<Unmappable>) -> Option<Value> {
    if let Some(config) = value.pointer("/Fn::Sub/1/ConfigName") {
        return Some(config.clone());
    }
    match value.as_str() {
        Some(name) => match name.strip_prefix("CodeDeployDefault.Lambda") {
            Some(predefined) => Some(predefined.into()),
            None => {
                problems.push(problem(
                    who,
                    "DeploymentPreference.Type",
                    format!(
                        "`{name}` is a CodeDeploy deployment configuration; give the function's \
                         Metadata.Safeshift a `strategy` (e.g. {{\"linear\": {{\"percent\": 20, \"intervalSeconds\": 60}}}}) \
                         instead"
                    ),
                ));
                None
            }
        },
        None => Some(value.clone()),
    }
}

/// Validates what is known at transform time: the settings, the strategy when literal, and whether a rollout
/// answered at its end fits in CloudFormation's hour. Alarm and hook names are resolved by CloudFormation later;
/// their stand-ins only count.
#[allow(clippy::too_many_arguments)]
fn check_settings(
    resources: &Map<String, Value>,
    who: &str,
    function_id: Option<&str>,
    alias: &str,
    wish: &Wish,
    deployment: Option<&str>,
    detached: bool,
    problems: &mut Vec<Unmappable>,
) {
    let Some(strategy) = wish
        .strategy
        .as_ref()
        .map_or(Some(None), |s| s.as_str().map(Some))
    else {
        // A strategy CloudFormation resolves (a !Ref to a parameter): the provider checks it.
        return;
    };
    let function_name = function_id
        .and_then(|f| resources.get(f))
        .and_then(|f| f.pointer("/Properties/FunctionName"))
        .and_then(Value::as_str)
        .or(function_id)
        .unwrap_or(who);
    let stand_in = AliasProperties {
        function_name: function_name.to_owned(),
        name: alias.to_owned(),
        function_version: "2".into(),
        // Without a deployment group (SAM's `Enabled: false`) the alias moves at once: no strategy needed.
        strategy: strategy
            .or(wish.group.is_none().then_some("AllAtOnce"))
            .map(str::to_owned),
        // A literal name as written (a duplicate is an error then); a !Ref's stand-in, unique.
        alarms: wish
            .alarms
            .iter()
            .enumerate()
            .map(|(i, a)| {
                a.as_str()
                    .map_or_else(|| format!("alarm-{i}"), str::to_owned)
            })
            .collect(),
        pre_traffic_hook: wish.pre_traffic.as_ref().map(|_| "stand-in-hook".into()),
        post_traffic_hook: wish.post_traffic.as_ref().map(|_| "stand-in-hook".into()),
        deployment: deployment.map(str::to_owned),
        detached: None,
        enabled: None,
        service_token: None,
        service_timeout: None,
    };
    match stand_in.deployment() {
        Err(invalid) => {
            for p in invalid.problems {
                let property = match p.field.as_str() {
                    "strategy" if wish.strategy.is_some() => "DeploymentPreference.Type".to_owned(),
                    f if f.starts_with("alarms") => {
                        format!("DeploymentPreference.Alarms (with Metadata.Safeshift.alarms): {f}")
                    }
                    field => format!("Metadata.Safeshift.{field}"),
                };
                problems.push(problem(who, &property, p.reason));
            }
        }
        Ok(d) if !detached => {
            if let Err(reason) = custom_resource::fits_attached(&d) {
                problems.push(problem(who, "DeploymentPreference", reason));
            }
        }
        Ok(_) => {}
    }
}

/// Points every reference to the detached alias `id` at its ARN: `!Ref` and `${id}` in `!Sub`; `DependsOn` on it
/// goes.
fn rewrite_references(
    template: &mut Value,
    id: &str,
    arn: &Value,
    sub: &str,
) -> Result<(), Unmappable> {
    fn walk(v: &mut Value, id: &str, arn: &Value, sub: &str) -> Result<(), Unmappable> {
        match v {
            Value::Object(map) => {
                if map.len() == 1 && map.get("Ref").and_then(Value::as_str) == Some(id) {
                    *v = arn.clone();
                    return Ok(());
                }
                if let Some(Value::Array(args)) = map.get("Fn::GetAtt")
                    && args.first().and_then(Value::as_str) == Some(id)
                {
                    return Err(problem(
                        id,
                        "Fn::GetAtt",
                        "an attribute of an alias that leaves the stack cannot be kept; use !Ref",
                    ));
                }
                if let Some(deps) = map.get_mut("DependsOn") {
                    match deps {
                        Value::String(s) if s == id => {
                            map.remove("DependsOn");
                        }
                        Value::Array(list) => list.retain(|d| d.as_str() != Some(id)),
                        _ => {}
                    }
                }
                let pattern = format!("${{{id}}}");
                match map.get_mut("Fn::Sub") {
                    Some(Value::String(s)) => *s = s.replace(&pattern, sub),
                    Some(Value::Array(args)) => {
                        if let Some(Value::String(s)) = args.first_mut() {
                            *s = s.replace(&pattern, sub);
                        }
                    }
                    _ => {}
                }
                for child in map.values_mut() {
                    walk(child, id, arn, sub)?;
                }
                Ok(())
            }
            Value::Array(list) => list.iter_mut().try_for_each(|c| walk(c, id, arn, sub)),
            _ => Ok(()),
        }
    }
    walk(template, id, arn, sub)
}

/// Removes each of `candidates` — CodeDeploy resources the converted aliases used — in order, once nothing else in
/// the template refers to it: a group, application or role something else still uses stays.
fn remove_unreferenced(template: &mut Value, candidates: impl Iterator<Item = String>) {
    for id in candidates {
        let mut rest = template.clone();
        if let Some(r) = rest.get_mut("Resources").and_then(Value::as_object_mut) {
            r.remove(&id);
        }
        if !references(&rest, &id)
            && let Some(r) = template.get_mut("Resources").and_then(Value::as_object_mut)
        {
            r.remove(&id);
        }
    }
}

/// The path of the first intrinsic function (`Ref`, `Fn::…`) in `v`, if any.
fn intrinsic_in(v: &Value, path: &str) -> Option<String> {
    match v {
        Value::Object(map) => {
            if map.keys().any(|k| k == "Ref" || k.starts_with("Fn::")) {
                return Some(path.to_owned());
            }
            map.iter()
                .find_map(|(k, c)| intrinsic_in(c, &format!("{path}.{k}")))
        }
        Value::Array(list) => list
            .iter()
            .enumerate()
            .find_map(|(i, c)| intrinsic_in(c, &format!("{path}[{i}]"))),
        _ => None,
    }
}

/// Whether anything in `v` refers to the logical ID `id`.
fn references(v: &Value, id: &str) -> bool {
    match v {
        Value::Object(map) => {
            map.get("Ref").and_then(Value::as_str) == Some(id)
                || map
                    .get("Fn::GetAtt")
                    .and_then(|a| a.get(0))
                    .and_then(Value::as_str)
                    == Some(id)
                || match map.get("Fn::Sub") {
                    Some(Value::String(s)) => mentions(s, id),
                    Some(Value::Array(a)) => a
                        .first()
                        .and_then(Value::as_str)
                        .is_some_and(|s| mentions(s, id)),
                    _ => false,
                }
                || match map.get("DependsOn") {
                    Some(Value::String(s)) => s == id,
                    Some(Value::Array(a)) => a.iter().any(|d| d.as_str() == Some(id)),
                    _ => false,
                }
                || map.values().any(|c| references(c, id))
        }
        Value::Array(list) => list.iter().any(|c| references(c, id)),
        _ => false,
    }
}

fn mentions(sub: &str, id: &str) -> bool {
    sub.contains(&format!("${{{id}}}")) || sub.contains(&format!("${{{id}."))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What SAM makes of a function with `AutoPublishAlias: live` and a DeploymentPreference (abridged from the
    /// translator's output).
    fn sam_output(group_extra: Value, metadata: Option<Value>) -> Value {
        let mut group = json!({
            "ApplicationName": {"Ref": "ServerlessDeploymentApplication"},
            "AutoRollbackConfiguration": {"Enabled": true, "Events": ["DEPLOYMENT_FAILURE"]},
            "DeploymentConfigName": {"Fn::Sub": ["CodeDeployDefault.Lambda${ConfigName}", {"ConfigName": "Canary10Percent5Minutes"}]},
            "DeploymentStyle": {"DeploymentType": "BLUE_GREEN", "DeploymentOption": "WITH_TRAFFIC_CONTROL"},
            "ServiceRoleArn": {"Fn::GetAtt": ["CodeDeployServiceRole", "Arn"]},
            "AlarmConfiguration": {"Enabled": true, "Alarms": [{"Name": {"Ref": "ErrorsAlarm"}}]},
        });
        group
            .as_object_mut()
            .unwrap()
            .extend(group_extra.as_object().unwrap().clone());
        let mut function =
            json!({"Type": "AWS::Lambda::Function", "Properties": {"FunctionName": "orders-api"}});
        if let Some(m) = metadata {
            function["Metadata"] = json!({"Safeshift": m});
        }
        json!({"Resources": {
            "OrdersApi": function,
            "OrdersApiVersion1": {"Type": "AWS::Lambda::Version", "Properties": {"FunctionName": {"Ref": "OrdersApi"}}},
            "OrdersApiAliaslive": {
                "Type": "AWS::Lambda::Alias",
                "UpdatePolicy": {"CodeDeployLambdaAliasUpdate": {
                    "ApplicationName": {"Ref": "ServerlessDeploymentApplication"},
                    "DeploymentGroupName": {"Ref": "OrdersApiDeploymentGroup"},
                    "BeforeAllowTrafficHook": {"Ref": "PreHook"}}},
                "Properties": {"Name": "live", "FunctionName": {"Ref": "OrdersApi"},
                               "FunctionVersion": {"Fn::GetAtt": ["OrdersApiVersion1", "Version"]}}},
            "OrdersApiDeploymentGroup": {"Type": "AWS::CodeDeploy::DeploymentGroup", "Properties": group},
            "ServerlessDeploymentApplication": {"Type": "AWS::CodeDeploy::Application", "Properties": {"ComputePlatform": "Lambda"}},
            "CodeDeployServiceRole": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {
                "Statement": [{"Principal": {"Service": ["codedeploy.amazonaws.com"]}}]}}},
            "Queue": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {"FunctionName": {"Ref": "OrdersApiAliaslive"}}},
            "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Body": {"uri": {"Fn::Sub":
                "arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${OrdersApiAliaslive}/invocations"}}}},
        }})
    }

    #[test]
    fn codedeploy_gives_way_to_a_safeshift_alias_under_the_same_logical_id() {
        let out = transform(
            sam_output(json!({}), Some(json!({"bakeSeconds": 30}))),
            "safeshift-cloudformation",
        )
        .unwrap();
        let r = &out["Resources"];
        for gone in [
            "OrdersApiDeploymentGroup",
            "ServerlessDeploymentApplication",
            "CodeDeployServiceRole",
        ] {
            assert!(r.get(gone).is_none(), "{gone} remains");
        }
        let alias = &r["OrdersApiAliaslive"];
        assert_eq!(alias["Type"], RESOURCE_TYPE);
        assert!(alias.get("UpdatePolicy").is_none());
        let p = &alias["Properties"];
        assert_eq!(p["Name"], "live");
        assert_eq!(p["FunctionName"], json!({"Ref": "OrdersApi"}));
        assert_eq!(
            p["FunctionVersion"],
            json!({"Fn::GetAtt": ["OrdersApiVersion1", "Version"]})
        );
        assert_eq!(p["Strategy"], "Canary10Percent5Minutes");
        assert_eq!(p["Alarms"], json!([{"Ref": "ErrorsAlarm"}]));
        assert_eq!(p["PreTrafficHook"], json!({"Ref": "PreHook"}));
        assert_eq!(p["Deployment"], r#"{"bakeSeconds":30}"#);
        assert!(
            p["ServiceToken"]["Fn::Sub"]
                .as_str()
                .unwrap()
                .ends_with(":function:safeshift-cloudformation")
        );
        assert_eq!(
            r["Queue"]["Properties"]["FunctionName"],
            json!({"Ref": "OrdersApiAliaslive"})
        );
    }

    #[test]
    fn what_cannot_be_mapped_is_named_never_dropped() {
        let e = transform(
            sam_output(json!({"TriggerConfigurations": [{"TriggerName": "t"}], "DeploymentConfigName": "MyConfig"}), None),
            "p",
        )
        .unwrap_err();
        let props: Vec<_> =
            e.0.iter()
                .map(|p| (p.resource.as_str(), p.property.as_str()))
                .collect();
        assert!(
            props.contains(&("OrdersApi", "DeploymentPreference.TriggerConfigurations")),
            "{e}"
        );
        assert!(
            props.contains(&("OrdersApi", "DeploymentPreference.Type")),
            "{e}"
        );
        // A custom CodeDeploy configuration maps once safeshift is told the strategy.
        let out = transform(
            sam_output(
                json!({"DeploymentConfigName": "MyConfig"}),
                Some(json!({"strategy": {"linear": {"percent": 50, "intervalSeconds": 60}}})),
            ),
            "p",
        );
        assert!(out.is_ok(), "{out:?}");
    }

    #[test]
    fn conditional_alarms_and_intrinsics_in_metadata_are_refused_not_dropped() {
        let e = transform(
            sam_output(json!({"AlarmConfiguration": {"Fn::If": ["Prod", {"Enabled": true, "Alarms": [{"Name": "a"}]}, {}]}}), None),
            "p",
        )
        .unwrap_err();
        assert!(e.to_string().contains("DeploymentPreference.Alarms"), "{e}");
        let e = transform(
            sam_output(json!({}), Some(json!({"alarms": [{"Ref": "ErrorsAlarm"}]}))),
            "p",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("Metadata.Safeshift.alarms[0]"),
            "{e}"
        );
    }

    #[test]
    fn codedeploy_resources_something_else_uses_stay() {
        let mut t = sam_output(json!({}), None);
        t["Outputs"] = json!({"Group": {"Value": {"Ref": "OrdersApiDeploymentGroup"}}});
        t["Resources"]["OtherApp"] = json!({"Type": "AWS::CodeDeploy::Application", "Properties": {"ComputePlatform": "Server"}});
        let out = transform(t, "p").unwrap();
        let r = &out["Resources"];
        assert!(
            r.get("OrdersApiDeploymentGroup").is_some(),
            "an output still names the group"
        );
        assert!(
            r.get("ServerlessDeploymentApplication").is_some(),
            "the kept group uses it"
        );
        assert!(
            r.get("OtherApp").is_some(),
            "not the converted aliases' application"
        );
        assert_eq!(r["OrdersApiAliaslive"]["Type"], RESOURCE_TYPE);
    }

    #[test]
    fn bad_settings_and_long_rollouts_fail_the_transform() {
        let e = transform(sam_output(json!({}), Some(json!({"bakeSecond": 30}))), "p").unwrap_err();
        assert!(e.to_string().contains("Metadata.Safeshift"), "{e}");
        let e = transform(
            sam_output(
                json!({}),
                Some(json!({"strategy": "Linear10PercentEvery10Minutes"})),
            ),
            "p",
        )
        .unwrap_err();
        assert!(e.to_string().contains("detached"), "{e}");
        let out = transform(
            sam_output(
                json!({}),
                Some(json!({"strategy": "Linear10PercentEvery10Minutes", "detached": true})),
            ),
            "p",
        )
        .unwrap();
        assert_eq!(
            out["Resources"]["OrdersApiAliaslive"]["Properties"]["Detached"],
            "true"
        );
        assert!(
            out["Resources"]["OrdersApiAliaslive"]["Properties"]["Deployment"]
                .as_str()
                .unwrap()
                .contains("Linear10PercentEvery10Minutes")
        );
    }

    #[test]
    fn migration_retains_the_alias_then_detaches_it_behind_its_arn() {
        let out = transform(
            sam_output(json!({}), Some(json!({"migration": "retain"}))),
            "p",
        )
        .unwrap();
        let r = &out["Resources"];
        assert_eq!(r["OrdersApiAliaslive"]["Type"], "AWS::Lambda::Alias");
        assert_eq!(r["OrdersApiAliaslive"]["DeletionPolicy"], "Retain");
        assert!(
            r.get("OrdersApiDeploymentGroup").is_some(),
            "CodeDeploy stays for this step"
        );

        let out = transform(
            sam_output(json!({}), Some(json!({"migration": "detach"}))),
            "p",
        )
        .unwrap();
        let r = &out["Resources"];
        assert!(r.get("OrdersApiAliaslive").is_none());
        assert!(r.get("OrdersApiDeploymentGroup").is_none());
        assert!(r.get("ServerlessDeploymentApplication").is_none());
        assert_eq!(
            r["Queue"]["Properties"]["FunctionName"],
            json!({"Fn::Join": [":", [{"Fn::GetAtt": ["OrdersApi", "Arn"]}, "live"]]})
        );
        assert!(
            r["Api"]["Properties"]["Body"]["uri"]["Fn::Sub"]
                .as_str()
                .unwrap()
                .contains("${OrdersApi.Arn}:live/invocations")
        );
        assert!(!references(&out, "OrdersApiAliaslive"));
    }

    #[test]
    fn functions_without_a_preference_are_left_alone() {
        let mut t = sam_output(json!({}), None);
        let r = t["Resources"].as_object_mut().unwrap();
        r.get_mut("OrdersApiAliaslive")
            .unwrap()
            .as_object_mut()
            .unwrap()
            .remove("UpdatePolicy");
        r.remove("OrdersApiDeploymentGroup");
        let out = transform(t.clone(), "p").unwrap();
        assert_eq!(
            out["Resources"]["OrdersApiAliaslive"]["Type"],
            "AWS::Lambda::Alias"
        );
        // With Metadata.Safeshift (SAM's Enabled: false), the alias stays safeshift's and moves at once.
        t["Resources"]["OrdersApi"]["Metadata"] = json!({"Safeshift": {}});
        let out = transform(t, "p").unwrap();
        assert_eq!(
            out["Resources"]["OrdersApiAliaslive"]["Type"],
            RESOURCE_TYPE
        );
        assert_eq!(
            out["Resources"]["OrdersApiAliaslive"]["Properties"]["Enabled"],
            "false"
        );
    }
}
