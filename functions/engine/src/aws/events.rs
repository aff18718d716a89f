//! Lifecycle events on EventBridge (`PutEvents`, source `safeshift`), best effort: a failure or a slow answer
//! is logged and dropped after [`PUBLISH_TIMEOUT`], never passed on to the deployment.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use safeshift_core::events::{LifecycleEvent, SOURCE};
use tracing::{info, warn};

use crate::ports::Publish;

/// The longest a publish may hold up the handler: EventBridge answers in milliseconds, and an outage must cost a
/// deployment at most this per event.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct EventBridgeAdapter {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeAdapter {
    /// Publishes on `bus` (a name or ARN; `default` is the account's default bus).
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }

    /// The bus from `SAFESHIFT_EVENT_BUS` (template.yaml sets it), the default bus otherwise.
    pub fn from_env(config: &aws_config::SdkConfig) -> Self {
        let bus = std::env::var("SAFESHIFT_EVENT_BUS")
            .ok()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| "default".into());
        Self::new(aws_sdk_eventbridge::Client::new(config), bus)
    }

    async fn put(&self, event: &LifecycleEvent) -> Result<(), String> {
        let entry = PutEventsRequestEntry::builder()
            .source(SOURCE)
            .detail_type(event.detail_type.as_str())
            .detail(event.detail.to_string())
            .event_bus_name(&self.bus)
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| aws_sdk_eventbridge::error::DisplayErrorContext(e).to_string())?;
        match out.failed_entry_count() {
            0 => Ok(()),
            _ => Err(out
                .entries()
                .iter()
                .filter_map(|e| e.error_message())
                .collect::<Vec<_>>()
                .join("; ")),
        }
    }
}

impl Publish for EventBridgeAdapter {
    fn publish<'a>(
        &'a self,
        event: &'a LifecycleEvent,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let detail_type = event.detail_type.as_str();
            match tokio::time::timeout(PUBLISH_TIMEOUT, self.put(event)).await {
                Ok(Ok(())) => info!(detail_type, "published"),
                Ok(Err(e)) => warn!(detail_type, error = %e, "event not published (best effort)"),
                Err(_) => warn!(
                    detail_type,
                    timeout_ms = PUBLISH_TIMEOUT.as_millis() as u64,
                    "event not published in time (best effort)"
                ),
            }
        })
    }
}
