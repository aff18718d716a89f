//! Lambda: aliases, versions, hook invocations.

use std::collections::HashMap;

use aws_sdk_lambda::operation::create_alias::CreateAliasError;
use aws_sdk_lambda::operation::delete_alias::DeleteAliasError;
use aws_sdk_lambda::operation::get_alias::GetAliasError;
use aws_sdk_lambda::operation::get_function::GetFunctionError;
use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationError;
use aws_sdk_lambda::operation::invoke::InvokeError;
use aws_sdk_lambda::operation::update_alias::UpdateAliasError;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{AliasRoutingConfiguration, InvocationType};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::timeout::TimeoutConfig;
use safeshift_core::Error;
use safeshift_core::alias::{AliasState, AliasUpdate};
use safeshift_core::error::Resource;
use safeshift_core::hooks::HookResponse;
use safeshift_core::prepare::VersionConfig;

use super::{HOOK_INVOKE_TIMEOUT, classify, throttled, warm_up};
use crate::ports::{
    InvokeHook, InvokeMode, ManageAlias, OwnedAlias, ReadAlias, ReadVersion, WriteAlias,
};

/// What every Lambda operation the engine calls can answer beside its own errors, asked with the SDK's typed
/// predicates: the one place "not found" and "too many requests" are recognised.
trait LambdaOperationError: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static {
    fn is_not_found(&self) -> bool;
    fn is_too_many_requests(&self) -> bool;
}

macro_rules! lambda_operation_errors {
    ($($error:ty),+) => {$(
        impl LambdaOperationError for $error {
            fn is_not_found(&self) -> bool {
                self.is_resource_not_found_exception()
            }
            fn is_too_many_requests(&self) -> bool {
                self.is_too_many_requests_exception()
            }
        }
    )+};
}

lambda_operation_errors!(
    CreateAliasError,
    DeleteAliasError,
    GetAliasError,
    GetFunctionError,
    UpdateAliasError,
    GetFunctionConfigurationError,
    InvokeError
);

/// A failed Lambda call in the taxonomy: `missing` names what "not found" means for this call; `other` maps
/// the operation's own errors (a precondition failure, say).
fn lambda_error<E: LambdaOperationError>(
    operation: &str,
    err: SdkError<E, HttpResponse>,
    missing: (Resource, String),
    other: impl FnOnce(&E) -> Option<Error>,
) -> Error {
    classify(operation, err, |e| {
        if e.is_not_found() {
            let (resource, name) = missing;
            Some(Error::ResourceNotFound { resource, name })
        } else if e.is_too_many_requests() {
            Some(throttled(operation))
        } else {
            other(e)
        }
    })
}

/// The tag CloudFormation puts on every resource it creates, naming its stack.
const STACK_ID_TAG: &str = "aws:cloudformation:stack-id";

/// Lambda: aliases, versions, hook invocations.
#[derive(Debug, Clone)]
pub struct LambdaAdapter {
    client: aws_sdk_lambda::Client,
}

impl LambdaAdapter {
    pub fn new(client: aws_sdk_lambda::Client) -> Self {
        Self { client }
    }

    /// The adapter a function builds once at cold start, its connection opened during init (see
    /// [`Self::warm_up`]).
    pub async fn connect(config: &aws_config::SdkConfig) -> Self {
        let adapter = Self::new(aws_sdk_lambda::Client::new(config));
        adapter.warm_up().await;
        adapter
    }

    /// Opens the connection to Lambda during init, with GetAccountSettings (read-only, on no resource).
    pub async fn warm_up(&self) {
        warm_up("lambda", self.client.get_account_settings().send()).await;
    }

    /// The override a synchronous hook invocation runs with: [`HOOK_INVOKE_TIMEOUT`] for the operation and its
    /// one attempt (equal, so a hook that ran out of time is not started again). The SDK merges it field by
    /// field over the client's timeouts, so the connect timeout stays the client's.
    fn hook_invoke_config() -> aws_sdk_lambda::config::Builder {
        aws_sdk_lambda::config::Builder::default().timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(HOOK_INVOKE_TIMEOUT)
                .operation_attempt_timeout(HOOK_INVOKE_TIMEOUT)
                .build(),
        )
    }
}

fn alias_state(
    function_version: Option<&str>,
    routing: Option<&AliasRoutingConfiguration>,
    revision_id: Option<&str>,
) -> AliasState {
    AliasState {
        function_version: function_version.unwrap_or_default().to_owned(),
        weights: routing
            .and_then(|r| r.additional_version_weights())
            .map(|w| w.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default(),
        revision_id: revision_id.unwrap_or_default().to_owned(),
    }
}

impl ReadAlias for LambdaAdapter {
    async fn get_alias(&self, function: &str, alias: &str) -> Result<AliasState, Error> {
        let out = self
            .client
            .get_alias()
            .function_name(function)
            .name(alias)
            .send()
            .await
            .map_err(|e| {
                lambda_error(
                    "GetAlias",
                    e,
                    (Resource::Alias, format!("{function}:{alias}")),
                    |_| None,
                )
            })?;
        Ok(alias_state(
            out.function_version(),
            out.routing_config(),
            out.revision_id(),
        ))
    }
}

impl WriteAlias for LambdaAdapter {
    async fn update_alias(
        &self,
        function: &str,
        alias: &str,
        update: &AliasUpdate,
        revision_id: &str,
    ) -> Result<AliasState, Error> {
        // An empty map clears the routing; omitting the routing config would leave it as it was.
        let weights: HashMap<String, f64> = update
            .weights
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let out = self
            .client
            .update_alias()
            .function_name(function)
            .name(alias)
            .function_version(&update.function_version)
            .routing_config(AliasRoutingConfiguration::builder().set_additional_version_weights(Some(weights)).build())
            .revision_id(revision_id)
            .send()
            .await
            .map_err(|e| {
                lambda_error(
                    "UpdateAlias",
                    e,
                    (Resource::Alias, format!("{function}:{alias}")),
                    |e| {
                        e.is_precondition_failed_exception().then(|| Error::AliasConflict {
                            alias: alias.to_owned(),
                            reason: format!(
                                "its revision is no longer {revision_id}: someone else updated it; leaving it as it is"
                            ),
                        })
                    },
                )
            })?;
        Ok(alias_state(
            out.function_version(),
            out.routing_config(),
            out.revision_id(),
        ))
    }
}

impl ReadVersion for LambdaAdapter {
    async fn get_version(&self, function: &str, version: &str) -> Result<VersionConfig, Error> {
        let out = self
            .client
            .get_function_configuration()
            .function_name(function)
            .qualifier(version)
            .send()
            .await
            .map_err(|e| {
                lambda_error(
                    "GetFunctionConfiguration",
                    e,
                    (Resource::Version, format!("{function}:{version}")),
                    |_| None,
                )
            })?;
        Ok(VersionConfig {
            version: out.version().unwrap_or(version).to_owned(),
            // Lambda omits State for functions created before states existed; those are usable.
            state: out.state().map_or("Active", |s| s.as_str()).to_owned(),
            last_update_status: out.last_update_status().map(|s| s.as_str().to_owned()),
            state_reason: out.state_reason().map(str::to_owned),
            role: out.role().map(str::to_owned),
            dead_letter_target: out
                .dead_letter_config()
                .and_then(|d| d.target_arn())
                .map(str::to_owned),
        })
    }
}

impl InvokeHook for LambdaAdapter {
    async fn invoke(
        &self,
        function: &str,
        payload: Vec<u8>,
        mode: InvokeMode,
    ) -> Result<HookResponse, Error> {
        let invocation_type = match mode {
            InvokeMode::Sync => InvocationType::RequestResponse,
            InvokeMode::Async => InvocationType::Event,
        };
        let request = self
            .client
            .invoke()
            .function_name(function)
            .invocation_type(invocation_type)
            .payload(Blob::new(payload))
            .customize();
        let request = match mode {
            // A synchronous invocation lasts as long as the hook runs: it gets its own, longer bound.
            InvokeMode::Sync => request.config_override(Self::hook_invoke_config()),
            // An asynchronous one is queued at once, like any other call.
            InvokeMode::Async => request,
        };
        let out = request.send().await.map_err(|e| {
            lambda_error("Invoke", e, (Resource::Hook, function.to_owned()), |_| None)
        })?;
        Ok(HookResponse {
            function_error: out.function_error().map(str::to_owned),
            payload: out
                .payload()
                .map(|p| p.as_ref().to_vec())
                .unwrap_or_default(),
        })
    }
}

impl ManageAlias for LambdaAdapter {
    async fn find_alias(&self, function: &str, alias: &str) -> Result<Option<OwnedAlias>, Error> {
        let out = match self
            .client
            .get_alias()
            .function_name(function)
            .name(alias)
            .send()
            .await
        {
            Ok(out) => out,
            // Lambda answers ResourceNotFound for a missing alias and for a missing function alike: the
            // function's own lookup tells them apart.
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => {
                self.get_version(function, "$LATEST").await?;
                return Ok(None);
            }
            Err(e) => {
                return Err(lambda_error(
                    "GetAlias",
                    e,
                    (Resource::Alias, format!("{function}:{alias}")),
                    |_| None,
                ));
            }
        };
        Ok(Some(OwnedAlias {
            arn: out.alias_arn().unwrap_or_default().to_owned(),
            state: alias_state(
                out.function_version(),
                out.routing_config(),
                out.revision_id(),
            ),
            description: out
                .description()
                .filter(|d| !d.is_empty())
                .map(str::to_owned),
        }))
    }

    async fn create_alias(
        &self,
        function: &str,
        alias: &str,
        version: &str,
        description: &str,
    ) -> Result<OwnedAlias, Error> {
        let out = self
            .client
            .create_alias()
            .function_name(function)
            .name(alias)
            .function_version(version)
            .description(description)
            .send()
            .await
            .map_err(|e| {
                lambda_error(
                    "CreateAlias",
                    e,
                    (Resource::Version, format!("{function}:{version}")),
                    |e| {
                        e.is_resource_conflict_exception()
                            .then(|| Error::AliasConflict {
                                alias: alias.to_owned(),
                                reason: "it exists already".into(),
                            })
                    },
                )
            })?;
        Ok(OwnedAlias {
            arn: out.alias_arn().unwrap_or_default().to_owned(),
            state: alias_state(
                out.function_version(),
                out.routing_config(),
                out.revision_id(),
            ),
            description: out.description().map(str::to_owned),
        })
    }

    async fn owning_stack(&self, function: &str) -> Result<Option<String>, Error> {
        let out = self
            .client
            .get_function()
            .function_name(function)
            .send()
            .await
            .map_err(|e| {
                lambda_error(
                    "GetFunction",
                    e,
                    (Resource::Function, function.to_owned()),
                    |_| None,
                )
            })?;
        // GetFunction returns tags only with lambda:ListTags: without it, a TagsError instead of an empty answer
        // that would read as "no stack".
        if let Some(e) = out.tags_error() {
            return Err(Error::AccessDenied {
                operation: "GetFunction (tags)".into(),
                message: format!(
                    "{}: {} (the role needs lambda:ListTags on {function})",
                    e.error_code(),
                    e.message()
                ),
            });
        }
        Ok(out.tags().and_then(|t| t.get(STACK_ID_TAG)).cloned())
    }

    async fn delete_alias(&self, function: &str, alias: &str) -> Result<(), Error> {
        match self
            .client
            .delete_alias()
            .function_name(function)
            .name(alias)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(()),
            Err(e) => Err(lambda_error(
                "DeleteAlias",
                e,
                (Resource::Alias, format!("{function}:{alias}")),
                |_| None,
            )),
        }
    }
}
