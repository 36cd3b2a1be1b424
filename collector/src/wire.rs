//! What OTLP transports need to know per signal, beyond [`Signal`]: the gRPC service name and path,
//! the HTTP path, the response type with its `partial_success`, and which items are malformed.

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use weir_pipeline::{Logs, Metrics, Signal, Traces};

pub trait Wire: Signal {
    type Response: prost::Message + Default + serde::Serialize + Send + Sync + 'static;
    const GRPC_SERVICE: &'static str;
    const GRPC_PATH: &'static str;
    const HTTP_PATH: &'static str;

    /// `rejected == 0` gives the plain success response, with no `partial_success`.
    fn response(rejected: usize, message: String) -> Self::Response;

    /// Removes items whose ids cannot be valid in any destination (wrong byte lengths) and says why.
    /// Zero-valued but well-formed ids are left for the normalisation stage to judge.
    fn drop_malformed(resources: &mut Vec<Self::Resource>) -> (usize, Option<String>);

    /// A resource's attributes, creating the resource if the request had none.
    fn resource_attributes(r: &mut Self::Resource) -> &mut Vec<KeyValue>;
}

fn id_ok(id: &[u8], len: usize, optional: bool) -> bool {
    id.len() == len || (optional && id.is_empty())
}

impl Wire for Traces {
    type Response = ExportTraceServiceResponse;
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const GRPC_PATH: &'static str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    const HTTP_PATH: &'static str = "/v1/traces";

    fn resource_attributes(r: &mut Self::Resource) -> &mut Vec<KeyValue> {
        &mut r.resource.get_or_insert_with(Default::default).attributes
    }

    fn response(rejected: usize, error_message: String) -> Self::Response {
        ExportTraceServiceResponse {
            partial_success: (rejected > 0).then_some(ExportTracePartialSuccess {
                rejected_spans: rejected as i64,
                error_message,
            }),
        }
    }

    fn drop_malformed(resources: &mut Vec<Self::Resource>) -> (usize, Option<String>) {
        let mut dropped = 0;
        let mut example = None;
        for scope in resources.iter_mut().flat_map(|r| r.scope_spans.iter_mut()) {
            scope.spans.retain(|s| {
                let ok = id_ok(&s.trace_id, 16, false)
                    && id_ok(&s.span_id, 8, false)
                    && id_ok(&s.parent_span_id, 8, true);
                if !ok {
                    dropped += 1;
                    example.get_or_insert_with(|| {
                        format!(
                            "span {:?}: trace_id must be 16 bytes (got {}), span_id 8 (got {}), parent_span_id 0 or 8 (got {})",
                            s.name,
                            s.trace_id.len(),
                            s.span_id.len(),
                            s.parent_span_id.len()
                        )
                    });
                }
                ok
            });
        }
        (
            dropped,
            example.map(|e| format!("{dropped} span(s) with malformed ids rejected; first: {e}")),
        )
    }
}

impl Wire for Logs {
    type Response = ExportLogsServiceResponse;
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    const GRPC_PATH: &'static str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
    const HTTP_PATH: &'static str = "/v1/logs";

    fn resource_attributes(r: &mut Self::Resource) -> &mut Vec<KeyValue> {
        &mut r.resource.get_or_insert_with(Default::default).attributes
    }

    fn response(rejected: usize, error_message: String) -> Self::Response {
        ExportLogsServiceResponse {
            partial_success: (rejected > 0).then_some(ExportLogsPartialSuccess {
                rejected_log_records: rejected as i64,
                error_message,
            }),
        }
    }

    fn drop_malformed(resources: &mut Vec<Self::Resource>) -> (usize, Option<String>) {
        let mut dropped = 0;
        let mut example = None;
        for scope in resources.iter_mut().flat_map(|r| r.scope_logs.iter_mut()) {
            scope.log_records.retain(|l| {
                let ok = id_ok(&l.trace_id, 16, true) && id_ok(&l.span_id, 8, true);
                if !ok {
                    dropped += 1;
                    example.get_or_insert_with(|| {
                        format!(
                            "trace_id must be empty or 16 bytes (got {}), span_id empty or 8 (got {})",
                            l.trace_id.len(),
                            l.span_id.len()
                        )
                    });
                }
                ok
            });
        }
        (
            dropped,
            example.map(|e| {
                format!("{dropped} log record(s) with malformed ids rejected; first: {e}")
            }),
        )
    }
}

impl Wire for Metrics {
    type Response = ExportMetricsServiceResponse;
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    const GRPC_PATH: &'static str =
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    const HTTP_PATH: &'static str = "/v1/metrics";

    fn resource_attributes(r: &mut Self::Resource) -> &mut Vec<KeyValue> {
        &mut r.resource.get_or_insert_with(Default::default).attributes
    }

    fn response(rejected: usize, error_message: String) -> Self::Response {
        ExportMetricsServiceResponse {
            partial_success: (rejected > 0).then_some(ExportMetricsPartialSuccess {
                rejected_data_points: rejected as i64,
                error_message,
            }),
        }
    }

    fn drop_malformed(_resources: &mut Vec<Self::Resource>) -> (usize, Option<String>) {
        (0, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_pipeline::fixtures;

    #[test]
    fn malformed_span_ids_are_dropped_and_explained() {
        let mut r = fixtures::resource_spans(1, 4);
        r[0].scope_spans[0].spans[1].trace_id = vec![1, 2, 3];
        r[0].scope_spans[0].spans[2].parent_span_id = vec![0; 4];
        let (n, msg) = Traces::drop_malformed(&mut r);
        assert_eq!(n, 2);
        assert_eq!(r[0].scope_spans[0].spans.len(), 2);
        assert!(msg.unwrap().contains("trace_id must be 16 bytes (got 3)"));
    }

    #[test]
    fn logs_may_have_no_trace_context() {
        let mut r = fixtures::resource_logs(1, 4);
        let (n, msg) = Logs::drop_malformed(&mut r);
        assert_eq!((n, msg), (0, None));
        r[0].scope_logs[0].log_records[0].span_id = vec![9; 3];
        assert_eq!(Logs::drop_malformed(&mut r).0, 1);
    }
}
