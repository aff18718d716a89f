//! Prepare's decisions: before any write, whether the alias can start this deployment, whether the target
//! version can take traffic, and whether the two versions may share a weighted alias.

use crate::alias::AliasState;
use crate::deployment::{Deployment, Hooks};
use crate::error::{Error, FieldError, InvalidInput};
use crate::names::Version;

/// Checks, before any write, that target `i`'s alias can start this deployment; returns its stable version.
pub fn check_alias_before_start(
    deployment: &Deployment,
    i: usize,
    alias: &AliasState,
) -> Result<Version, Error> {
    let target = &deployment.targets[i];
    let name = deployment.alias_label(i);
    if alias.is_split() {
        return Err(Error::AliasConflict {
            alias: name.clone(),
            reason: format!(
                "deployment in progress: the alias routes {}",
                alias.describe()
            ),
        });
    }
    let stable = Version::parse(&alias.function_version).map_err(|_| Error::IncompatibleVersions {
        stable: alias.function_version.clone(),
        target: target.target_version.to_string(),
        reason: "the alias points at $LATEST, and a weighted alias needs a published version on both sides; \
                 point it at a published version first"
            .into(),
    })?;
    if stable == target.target_version {
        return Err(InvalidInput::one(
            if deployment.is_release() {
                format!("targets[{i}].targetVersion")
            } else {
                "targetVersion".to_owned()
            },
            format!(
                "version {stable} is already the version alias `{name}` points to; there is nothing to deploy"
            ),
        )
        .into());
    }
    Ok(stable)
}

/// A published version's configuration, as far as a weighted alias cares.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionConfig {
    pub version: String,
    /// Lambda's `State`: Pending, Active, Inactive, Failed.
    pub state: String,
    /// Lambda's `LastUpdateStatus`: InProgress, Successful, Failed.
    pub last_update_status: Option<String>,
    pub state_reason: Option<String>,
    pub role: Option<String>,
    pub dead_letter_target: Option<String>,
}

/// Whether the target version can take traffic now.
#[derive(Debug, Clone, PartialEq)]
pub enum Readiness {
    Ready,
    /// Still being created or updated: ask again after a short wait.
    NotYet(String),
}

/// Readiness of the target version; an error when it never will be.
pub fn readiness(target: &VersionConfig) -> Result<Readiness, Error> {
    let reason = || target.state_reason.clone().unwrap_or_default();
    let not_ready = |why: String| Error::TargetNotReady {
        version: target.version.clone(),
        reason: why,
    };
    match (target.state.as_str(), target.last_update_status.as_deref()) {
        ("Pending", _) | (_, Some("InProgress")) => {
            Ok(Readiness::NotYet(format!("state {}", target.state)))
        }
        (_, Some("Failed")) => Err(not_ready(format!("its last update failed: {}", reason()))),
        ("Active", _) => Ok(Readiness::Ready),
        (state, _) => Err(not_ready(
            format!("its state is {state} {}", reason())
                .trim_end()
                .to_owned(),
        )),
    }
}

/// Prepare's check of the hooks, before any traffic moves: the engine may invoke only functions whose names start
/// with the stack's hook prefix (`HookFunctionPrefix`, as CodeDeploy requires `CodeDeployHook_`), so a hook
/// outside it is refused now, by field, rather than denied after the first bake. `None`: no prefix is configured.
pub fn check_hook_prefix(hooks: &Hooks, prefix: Option<&str>) -> Result<(), Error> {
    let Some(prefix) = prefix else {
        return Ok(());
    };
    let problems: Vec<FieldError> = hooks
        .points()
        .into_iter()
        .filter_map(|(field, hook)| {
        let hook = &hook?.function;
        (!hook.name.starts_with(prefix)).then(|| {
            FieldError::new(
                field,
                format!(
                    "`{}` is not a function the engine may invoke: hook names must start with `{prefix}` (the stack's HookFunctionPrefix)",
                    hook.name
                ),
            )
        })
    })
    .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidInput(InvalidInput { problems }))
    }
}

/// Weighted aliases require both versions to share the execution role and dead-letter configuration.
pub fn check_compatible(stable: &VersionConfig, target: &VersionConfig) -> Result<(), Error> {
    let differ = |what: &str, a: &Option<String>, b: &Option<String>| Error::IncompatibleVersions {
        stable: stable.version.clone(),
        target: target.version.clone(),
        reason: format!(
            "their {what} differ ({} vs {}); a weighted alias requires them to match",
            a.as_deref().unwrap_or("none"),
            b.as_deref().unwrap_or("none")
        ),
    };
    if stable.role != target.role {
        return Err(differ("execution roles", &stable.role, &target.role));
    }
    if stable.dead_letter_target != target.dead_letter_target {
        return Err(differ(
            "dead-letter targets",
            &stable.dead_letter_target,
            &target.dead_letter_target,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_outside_the_prefix_are_refused_by_field() {
        let d = Deployment::from_value(serde_json::json!({
            "functionName": "orders", "alias": "live", "targetVersion": "7", "strategy": "AllAtOnce",
            "hooks": {"preTraffic": "SafeshiftHook_smoke", "postTraffic": "arn:aws:lambda:us-east-1:123456789012:function:orders-e2e:live"}
        }))
        .unwrap();
        let err = check_hook_prefix(&d.hooks, Some("SafeshiftHook_")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid deployment input: `hooks.postTraffic`: `orders-e2e` is not a function the engine may invoke: hook names must start with `SafeshiftHook_` (the stack's HookFunctionPrefix)"
        );
        assert!(check_hook_prefix(&d.hooks, None).is_ok());
        assert!(check_hook_prefix(&d.hooks, Some("SafeshiftHook_s")).is_err());
        assert!(check_hook_prefix(&Hooks::default(), Some("SafeshiftHook_")).is_ok());
    }

    fn alias(version: &str, weights: &[(&str, f64)], revision: &str) -> AliasState {
        AliasState::new(version, weights, revision)
    }

    #[test]
    fn a_split_alias_means_a_deployment_in_progress() {
        let d = Deployment::parse(
            r#"{"functionName":"orders","alias":"live","targetVersion":"7","strategy":"AllAtOnce"}"#,
        )
        .unwrap();
        let err = check_alias_before_start(&d, 0, &alias("5", &[("6", 0.2)], "r")).unwrap_err();
        assert_eq!(err.error_type(), crate::ErrorType::AliasConflict);
        assert!(err.to_string().contains("deployment in progress"), "{err}");
        let err = check_alias_before_start(&d, 0, &alias("7", &[], "r")).unwrap_err();
        assert_eq!(err.error_type(), crate::ErrorType::InvalidInput);
        let err = check_alias_before_start(&d, 0, &alias("$LATEST", &[], "r")).unwrap_err();
        assert_eq!(err.error_type(), crate::ErrorType::IncompatibleVersions);
        assert_eq!(
            check_alias_before_start(&d, 0, &alias("6", &[], "r")).unwrap(),
            Version::new(6).unwrap()
        );
    }

    #[test]
    fn readiness_waits_on_pending_and_fails_on_failed() {
        let v = |state: &str, last: Option<&str>| VersionConfig {
            version: "7".into(),
            state: state.into(),
            last_update_status: last.map(Into::into),
            state_reason: Some("boom".into()),
            role: None,
            dead_letter_target: None,
        };
        assert_eq!(
            readiness(&v("Active", Some("Successful"))).unwrap(),
            Readiness::Ready
        );
        assert!(matches!(
            readiness(&v("Pending", None)).unwrap(),
            Readiness::NotYet(_)
        ));
        assert!(matches!(
            readiness(&v("Active", Some("InProgress"))).unwrap(),
            Readiness::NotYet(_)
        ));
        let err = readiness(&v("Active", Some("Failed"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "target version 7 is not ready: its last update failed: boom"
        );
        assert_eq!(
            readiness(&v("Failed", None)).unwrap_err().error_type(),
            crate::ErrorType::TargetNotReady
        );
    }

    #[test]
    fn versions_must_share_role_and_dead_letter_target() {
        let v = |role: &str, dlq: Option<&str>| VersionConfig {
            version: "x".into(),
            state: "Active".into(),
            last_update_status: None,
            state_reason: None,
            role: Some(role.into()),
            dead_letter_target: dlq.map(Into::into),
        };
        assert!(check_compatible(&v("r", None), &v("r", None)).is_ok());
        let err = check_compatible(&v("r1", None), &v("r2", None)).unwrap_err();
        assert!(
            err.to_string()
                .contains("execution roles differ (r1 vs r2)"),
            "{err}"
        );
        let err = check_compatible(&v("r", Some("q1")), &v("r", None)).unwrap_err();
        assert!(
            err.to_string()
                .contains("dead-letter targets differ (q1 vs none)"),
            "{err}"
        );
    }
}
