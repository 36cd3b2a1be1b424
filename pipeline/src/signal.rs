//! One pipeline per signal, generic over [`Signal`]: a stage or exporter written for `Logs` can only ever
//! receive logs, and generic code (queues, workers, the delivery loop) is written once.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, Metric, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use weir_config::SignalKind;

/// A telemetry signal and its OTLP types.
pub trait Signal: Send + Sync + Sized + 'static {
    const KIND: SignalKind;
    /// What one item is called in metrics and messages: span, log record, data point.
    const ITEM: &'static str;
    type Resource: prost::Message + Default + Clone + PartialEq + serde::Serialize + Send + Sync;
    type Request: prost::Message
        + Default
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Send
        + Sync;

    /// A request from protobuf, exactly as `prost::Message::decode` gives it (faster for traces and
    /// logs: see [`crate::protobuf`]).
    fn decode(body: &[u8]) -> Result<Self::Request, prost::DecodeError>;
    fn into_resources(request: Self::Request) -> Vec<Self::Resource>;
    fn to_request(resources: Vec<Self::Resource>) -> Self::Request;
    /// Spans, log records or data points under one resource.
    fn count(resource: &Self::Resource) -> usize;

    /// What groups items under a resource (a scope), and the smallest unit a batch is split into: a
    /// span, a log record, or a whole metric with its data points.
    type Group: prost::Message + Clone;
    type Unit: prost::Message + Clone + PartialEq + serde::Serialize;
    fn groups(resource: &mut Self::Resource) -> &mut Vec<Self::Group>;
    fn units(scope: &mut Self::Group) -> &mut Vec<Self::Unit>;
    /// Items one unit counts as (data points for a metric, 1 otherwise).
    fn unit_weight(item: &Self::Unit) -> usize;
    /// The OTLP resource a resource group describes.
    fn resource_of(resource: &Self::Resource) -> Option<&Resource>;
    /// A unit's own attributes (a metric's metadata).
    fn unit_attributes(item: &mut Self::Unit) -> &mut Vec<KeyValue>;
    /// A unit's trace id; empty for metrics.
    fn unit_trace_id(item: &Self::Unit) -> &[u8];
}

#[derive(Debug)]
pub struct Traces;
#[derive(Debug)]
pub struct Logs;
#[derive(Debug)]
pub struct Metrics;

impl Signal for Traces {
    const KIND: SignalKind = SignalKind::Traces;
    const ITEM: &'static str = "span";
    type Resource = ResourceSpans;
    type Request = ExportTraceServiceRequest;

    fn decode(body: &[u8]) -> Result<Self::Request, prost::DecodeError> {
        crate::memory::arena::scope(|| crate::protobuf::traces(body))
    }
    fn into_resources(request: Self::Request) -> Vec<ResourceSpans> {
        request.resource_spans
    }
    fn to_request(resource_spans: Vec<ResourceSpans>) -> Self::Request {
        ExportTraceServiceRequest { resource_spans }
    }
    fn count(r: &ResourceSpans) -> usize {
        r.scope_spans.iter().map(|s| s.spans.len()).sum()
    }

    type Group = ScopeSpans;
    type Unit = Span;
    fn groups(r: &mut ResourceSpans) -> &mut Vec<ScopeSpans> {
        &mut r.scope_spans
    }
    fn units(s: &mut ScopeSpans) -> &mut Vec<Span> {
        &mut s.spans
    }
    fn unit_weight(_: &Span) -> usize {
        1
    }
    fn resource_of(r: &ResourceSpans) -> Option<&Resource> {
        r.resource.as_ref()
    }
    fn unit_attributes(span: &mut Span) -> &mut Vec<KeyValue> {
        &mut span.attributes
    }
    fn unit_trace_id(span: &Span) -> &[u8] {
        &span.trace_id
    }
}

impl Signal for Logs {
    const KIND: SignalKind = SignalKind::Logs;
    const ITEM: &'static str = "log record";
    type Resource = ResourceLogs;
    type Request = ExportLogsServiceRequest;

    fn decode(body: &[u8]) -> Result<Self::Request, prost::DecodeError> {
        crate::memory::arena::scope(|| crate::protobuf::logs(body))
    }
    fn into_resources(request: Self::Request) -> Vec<ResourceLogs> {
        request.resource_logs
    }
    fn to_request(resource_logs: Vec<ResourceLogs>) -> Self::Request {
        ExportLogsServiceRequest { resource_logs }
    }
    fn count(r: &ResourceLogs) -> usize {
        r.scope_logs.iter().map(|s| s.log_records.len()).sum()
    }

    type Group = ScopeLogs;
    type Unit = LogRecord;
    fn groups(r: &mut ResourceLogs) -> &mut Vec<ScopeLogs> {
        &mut r.scope_logs
    }
    fn units(s: &mut ScopeLogs) -> &mut Vec<LogRecord> {
        &mut s.log_records
    }
    fn unit_weight(_: &LogRecord) -> usize {
        1
    }
    fn resource_of(r: &ResourceLogs) -> Option<&Resource> {
        r.resource.as_ref()
    }
    fn unit_attributes(record: &mut LogRecord) -> &mut Vec<KeyValue> {
        &mut record.attributes
    }
    fn unit_trace_id(record: &LogRecord) -> &[u8] {
        &record.trace_id
    }
}

impl Signal for Metrics {
    const KIND: SignalKind = SignalKind::Metrics;
    const ITEM: &'static str = "data point";
    type Resource = ResourceMetrics;
    type Request = ExportMetricsServiceRequest;

    fn decode(body: &[u8]) -> Result<Self::Request, prost::DecodeError> {
        crate::memory::arena::scope(|| prost::Message::decode(body))
    }
    fn into_resources(request: Self::Request) -> Vec<ResourceMetrics> {
        request.resource_metrics
    }
    fn to_request(resource_metrics: Vec<ResourceMetrics>) -> Self::Request {
        ExportMetricsServiceRequest { resource_metrics }
    }
    fn count(r: &ResourceMetrics) -> usize {
        r.scope_metrics
            .iter()
            .flat_map(|s| s.metrics.iter())
            .map(data_points)
            .sum()
    }

    type Group = ScopeMetrics;
    type Unit = Metric;
    fn groups(r: &mut ResourceMetrics) -> &mut Vec<ScopeMetrics> {
        &mut r.scope_metrics
    }
    fn units(s: &mut ScopeMetrics) -> &mut Vec<Metric> {
        &mut s.metrics
    }
    fn unit_weight(m: &Metric) -> usize {
        data_points(m)
    }
    fn resource_of(r: &ResourceMetrics) -> Option<&Resource> {
        r.resource.as_ref()
    }
    fn unit_attributes(m: &mut Metric) -> &mut Vec<KeyValue> {
        &mut m.metadata
    }
    fn unit_trace_id(_: &Metric) -> &[u8] {
        &[]
    }
}

/// Data points of one metric; a metric with no data counts as none.
pub fn data_points(m: &Metric) -> usize {
    match &m.data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}
