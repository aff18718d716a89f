//! CloudWatch: alarm states and the versions' metrics.

use std::collections::HashMap;

use aws_sdk_cloudwatch::types::AlarmType;
use aws_smithy_types::date_time::Format;
use safeshift_core::Error;
use safeshift_core::gates::alarms::AlarmEvidence;
use safeshift_core::gates::analysis::VersionMetrics;

use super::{classify, warm_up};
use crate::ports::{MetricsQuery, ReadAlarms, ReadMetrics};

/// CloudWatch: alarm states and the versions' metrics.
#[derive(Debug, Clone)]
pub struct CloudWatchAdapter {
    client: aws_sdk_cloudwatch::Client,
}

impl CloudWatchAdapter {
    pub fn new(client: aws_sdk_cloudwatch::Client) -> Self {
        Self { client }
    }

    /// The adapter a function builds once at cold start, its connection opened during init (see
    /// [`Self::warm_up`]).
    pub async fn connect(config: &aws_config::SdkConfig) -> Self {
        let adapter = Self::new(aws_sdk_cloudwatch::Client::new(config));
        adapter.warm_up().await;
        adapter
    }

    /// Opens the connection to CloudWatch during init, with a one-record DescribeAlarms (already granted).
    pub async fn warm_up(&self) {
        warm_up(
            "cloudwatch",
            self.client.describe_alarms().max_records(1).send(),
        )
        .await;
    }
}

fn timestamp(t: Option<&aws_smithy_types::DateTime>) -> Option<String> {
    t.and_then(|t| t.fmt(Format::DateTime).ok())
}

impl ReadAlarms for CloudWatchAdapter {
    async fn describe_alarms(&self, names: &[String]) -> Result<Vec<AlarmEvidence>, Error> {
        let mut found = Vec::new();
        let mut next_token = None;
        loop {
            let out = self
                .client
                .describe_alarms()
                .set_alarm_names(Some(names.to_vec()))
                .alarm_types(AlarmType::MetricAlarm)
                .alarm_types(AlarmType::CompositeAlarm)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| classify("DescribeAlarms", e, |_| None))?;
            // Metric and composite alarms are different SDK types with the same accessors.
            macro_rules! evidence {
                ($alarm:expr, $kind:literal) => {
                    AlarmEvidence {
                        name: $alarm.alarm_name().unwrap_or_default().to_owned(),
                        kind: $kind.into(),
                        state: $alarm
                            .state_value()
                            .map(|s| s.as_str().to_owned())
                            .unwrap_or_default(),
                        reason: $alarm.state_reason().unwrap_or_default().to_owned(),
                        // When the state value last changed: a composite alarm's update time also moves when
                        // a child changes under an unchanged state.
                        updated_at: timestamp(
                            $alarm
                                .state_transitioned_timestamp()
                                .or($alarm.state_updated_timestamp()),
                        ),
                    }
                };
            }
            found.extend(out.metric_alarms().iter().map(|a| evidence!(a, "metric")));
            found.extend(
                out.composite_alarms()
                    .iter()
                    .map(|a| evidence!(a, "composite")),
            );
            match out.next_token() {
                Some(t) if !t.is_empty() => next_token = Some(t.to_owned()),
                _ => return Ok(found),
            }
        }
    }
}

/// Lambda's per-version metrics, as the analysis reads them: (metric, statistic, query id suffix).
const VERSION_METRICS: [(&str, &str, &str); 3] = [
    ("Invocations", "Sum", "invocations"),
    ("Errors", "Sum", "errors"),
    ("Throttles", "Sum", "throttles"),
];
const LATENCY_METRIC: (&str, &str, &str) = ("Duration", "p99", "p99");

impl ReadMetrics for CloudWatchAdapter {
    async fn version_metrics(&self, q: &MetricsQuery<'_>) -> Result<[VersionMetrics; 2], Error> {
        use aws_sdk_cloudwatch::types::{
            Dimension, Metric, MetricDataQuery, MetricStat, StatusCode,
        };
        let resource = format!("{}:{}", q.function_name, q.alias);
        let dimension =
            |name: &str, value: &str| Dimension::builder().name(name).value(value).build();
        let metrics = VERSION_METRICS
            .iter()
            .chain(q.latency.then_some(&LATENCY_METRIC));
        let mut queries = Vec::new();
        for (i, version) in q.versions.iter().enumerate() {
            for (metric, stat, id) in metrics.clone() {
                queries.push(
                    MetricDataQuery::builder()
                        .id(format!("v{i}_{id}"))
                        .metric_stat(
                            MetricStat::builder()
                                .metric(
                                    Metric::builder()
                                        .namespace("AWS/Lambda")
                                        .metric_name(*metric)
                                        .dimensions(dimension("FunctionName", q.function_name))
                                        .dimensions(dimension("Resource", &resource))
                                        .dimensions(dimension("ExecutedVersion", version))
                                        .build(),
                                )
                                .period(i32::try_from(q.window.period_seconds).unwrap_or(i32::MAX))
                                .stat(*stat)
                                .build(),
                        )
                        .return_data(true)
                        .build(),
                );
            }
        }
        let mut values: HashMap<String, Vec<f64>> = HashMap::new();
        let mut next_token = None;
        loop {
            let out = self
                .client
                .get_metric_data()
                .set_metric_data_queries(Some(queries.clone()))
                .start_time(aws_smithy_types::DateTime::from_secs(q.window.start as i64))
                .end_time(aws_smithy_types::DateTime::from_secs(q.window.end as i64))
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| classify("GetMetricData", e, |_| None))?;
            for r in out.metric_data_results() {
                if matches!(
                    r.status_code(),
                    Some(StatusCode::InternalError | StatusCode::Forbidden)
                ) {
                    return Err(Error::AwsError {
                        operation: "GetMetricData".into(),
                        message: format!(
                            "query {} answered {:?}",
                            r.id().unwrap_or_default(),
                            r.status_code()
                        ),
                    });
                }
                values
                    .entry(r.id().unwrap_or_default().to_owned())
                    .or_default()
                    .extend_from_slice(r.values());
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => next_token = Some(t.to_owned()),
                _ => break,
            }
        }
        let sum = |i: usize, id: &str| -> u64 {
            let total: f64 = values
                .get(&format!("v{i}_{id}"))
                .into_iter()
                .flatten()
                .sum();
            total.max(0.0).round() as u64
        };
        let version = |i: usize| VersionMetrics {
            version: q.versions[i].to_owned(),
            invocations: sum(i, "invocations"),
            errors: sum(i, "errors"),
            throttles: sum(i, "throttles"),
            // One period spans the window, so there is one value; should a service split it, the worst counts.
            p99_ms: values
                .get(&format!("v{i}_p99"))
                .and_then(|v| v.iter().copied().reduce(f64::max)),
        };
        Ok([version(0), version(1)])
    }
}
