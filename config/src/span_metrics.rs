//! `pipeline.span_metrics`: request, error and duration (R.E.D.) metrics computed from every span
//! before head or tail sampling, so dashboards stay exact however much is sampled away.
//!
//! Checked against more than its own keys: it needs an exporter that takes traces and one that takes
//! metrics, which `Config::validate` tells it.

use crate::common::SignalKind;
use crate::units::Duration;
use serde::Deserialize;

const PATH: &str = "pipeline.span_metrics";

/// The fixed dimensions every series has; a configured dimension may not shadow one.
pub const FIXED_DIMENSIONS: [&str; 4] = ["service.name", "span.name", "span.kind", "status.code"];

/// Bounds a series' memory: each bucket is a counter per series and per stage worker.
pub const MAX_BUCKETS: usize = 64;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpanMetricsConfig {
    /// How often the cumulative totals are handed to the metrics pipeline.
    #[serde(default = "default_interval")]
    pub interval: Duration,
    /// Extra attribute keys, looked up on the span and then on its resource; a span without the key
    /// has no such attribute on its series.
    #[serde(default)]
    pub dimensions: Vec<String>,
    /// Upper bounds of the duration histogram's buckets, strictly increasing.
    #[serde(default = "default_buckets")]
    pub buckets: Vec<Duration>,
    /// Most distinct series; spans of any series beyond it are folded into one overflow series.
    #[serde(default = "default_max_series")]
    pub max_series: usize,
    /// Prefix of the metric names: `<namespace>.calls` and `<namespace>.duration`.
    #[serde(default = "default_namespace")]
    pub namespace: String,
}

impl Default for SpanMetricsConfig {
    fn default() -> Self {
        SpanMetricsConfig {
            interval: default_interval(),
            dimensions: Vec::new(),
            buckets: default_buckets(),
            max_series: default_max_series(),
            namespace: default_namespace(),
        }
    }
}

fn default_interval() -> Duration {
    Duration::secs(15)
}

/// Request latencies from a cache hit to a slow batch job; the OpenTelemetry Collector's connector
/// uses a similar spread.
fn default_buckets() -> Vec<Duration> {
    [2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000]
        .into_iter()
        .map(Duration::millis)
        .collect()
}

fn default_max_series() -> usize {
    10_000
}

/// The OpenTelemetry Collector's spanmetrics connector's names, so its dashboards work unchanged.
fn default_namespace() -> String {
    "traces.span.metrics".into()
}

/// Checks `pipeline.span_metrics` when it is set; errors name the key path.
/// `takes` says whether some exporter takes a signal (the section needs traces in and metrics out).
pub fn check(
    section: Option<&SpanMetricsConfig>,
    takes: impl Fn(SignalKind) -> bool,
) -> Result<(), (String, String)> {
    let Some(s) = section else {
        return Ok(());
    };
    let invalid = |key: String, message: &str| Err((key, message.to_string()));
    if s.interval.0.is_zero() {
        return invalid(format!("{PATH}.interval"), "must be greater than 0");
    }
    if s.max_series == 0 {
        return invalid(format!("{PATH}.max_series"), "must be at least 1");
    }
    if s.namespace.is_empty() || s.namespace.contains(char::is_whitespace) {
        return invalid(
            format!("{PATH}.namespace"),
            "must be a non-empty name without spaces",
        );
    }
    if s.buckets.is_empty() || s.buckets.len() > MAX_BUCKETS {
        return invalid(
            format!("{PATH}.buckets"),
            "must list between 1 and 64 bucket bounds",
        );
    }
    if let Some(i) = s.buckets.windows(2).position(|w| w[0] >= w[1]) {
        return invalid(
            format!("{PATH}.buckets[{}]", i + 1),
            "bucket bounds must be strictly increasing",
        );
    }
    for (i, d) in s.dimensions.iter().enumerate() {
        let key = format!("{PATH}.dimensions[{i}]");
        if d.is_empty() {
            return invalid(key, "must not be empty");
        }
        if FIXED_DIMENSIONS.contains(&d.as_str()) {
            return invalid(key, "is always a dimension; list only extra attribute keys");
        }
        if s.dimensions[..i].contains(d) {
            return invalid(key, "is listed twice");
        }
    }
    if !takes(SignalKind::Traces) {
        return invalid(
            PATH.into(),
            "counts spans on their way to an exporter, so an exporter must take traces",
        );
    }
    if !takes(SignalKind::Metrics) {
        return invalid(
            PATH.into(),
            "emits metrics into the metrics pipeline, so an exporter must take metrics",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    fn check(pipeline: &str, exporters: &str) -> Result<crate::Config, String> {
        let yaml = format!("pipeline:\n  span_metrics:\n{pipeline}exporters:\n{exporters}");
        crate::parse(&yaml, "t", |_| None).map_err(|e| e.to_string())
    }

    const FILE: &str = "  f: {file: {path: /tmp/x}}\n";

    #[test]
    fn defaults_follow_the_collector_connector() {
        let c = check("    {}\n", FILE).unwrap();
        let s = c.pipeline.span_metrics.unwrap();
        assert_eq!(s, super::SpanMetricsConfig::default());
        assert_eq!(s.interval.0, std::time::Duration::from_secs(15));
        assert_eq!(s.buckets.len(), 12);
        assert_eq!(s.max_series, 10_000);
        assert_eq!(s.namespace, "traces.span.metrics");
        assert!(
            crate::parse("exporters:\n  f: {blackhole: {}}\n", "t", |_| None)
                .unwrap()
                .pipeline
                .span_metrics
                .is_none()
        );
    }

    #[test]
    fn errors_name_the_key_path() {
        let cases = [
            ("    interval: 0s\n", "pipeline.span_metrics.interval"),
            ("    max_series: 0\n", "pipeline.span_metrics.max_series"),
            ("    buckets: []\n", "pipeline.span_metrics.buckets"),
            (
                "    buckets: [5ms, 10ms, 10ms]\n",
                "pipeline.span_metrics.buckets[2]",
            ),
            (
                "    dimensions: [http.route, http.route]\n",
                "pipeline.span_metrics.dimensions[1]",
            ),
            (
                "    dimensions: [span.name]\n",
                "pipeline.span_metrics.dimensions[0]",
            ),
            (
                "    namespace: \"a b\"\n",
                "pipeline.span_metrics.namespace",
            ),
            ("    colour: blue\n", "pipeline.span_metrics"),
        ];
        for (yaml, path) in cases {
            let err = check(yaml, FILE).unwrap_err();
            assert!(err.contains(path), "{yaml}: {err}");
        }
    }

    #[test]
    fn needs_exporters_for_traces_and_metrics() {
        let logs_and_traces = "  f: {file: {path: /tmp/x}, signals: [traces, logs]}\n";
        let err = check("    {}\n", logs_and_traces).unwrap_err();
        assert!(
            err.contains("pipeline.span_metrics: emits metrics"),
            "{err}"
        );
        let metrics_only = "  f: {file: {path: /tmp/x}, signals: [metrics]}\n";
        let err = check("    {}\n", metrics_only).unwrap_err();
        assert!(err.contains("an exporter must take traces"), "{err}");
        let split = "  t: {blackhole: {}, signals: [traces]}\n  m: {file: {path: /tmp/x}, signals: [metrics]}\n";
        check(
            "    {dimensions: [http.route], buckets: [1ms, 1s]}\n",
            split,
        )
        .unwrap();
    }
}
