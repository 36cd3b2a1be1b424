//! The resource → scope → record shape of each signal, and the walk over it that every signal shares:
//! resource and scope attributes first (a drop_record verdict there drops every item under them), then
//! each record's own fields.

use super::pass::{container, explain_redaction, scoped, Fate, Pass};
use crate::batch::Batch;
use crate::signal::{Logs, Metrics, Traces};
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, Exemplar, Metric, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

/// The resource → scope → record shape both signals share, so one walk serves both.
pub(super) trait Shape: crate::signal::Signal {
    type Scope;
    type Record;
    fn scopes(r: &mut Self::Resource) -> (Option<&mut Resource>, &mut Vec<Self::Scope>);
    fn records(s: &mut Self::Scope) -> (Option<&mut InstrumentationScope>, &mut Vec<Self::Record>);
    fn scope_items(s: &Self::Scope) -> usize;
    /// Redacts a record's own fields: the redaction count, or the detector that drops it.
    fn redact(pass: &mut Pass<'_>, r: &mut Self::Record) -> Result<u32, usize>;
    fn attributes(r: &mut Self::Record) -> &mut Vec<KeyValue>;
}

impl Shape for Traces {
    type Scope = ScopeSpans;
    type Record = Span;
    fn scopes(r: &mut ResourceSpans) -> (Option<&mut Resource>, &mut Vec<ScopeSpans>) {
        (r.resource.as_mut(), &mut r.scope_spans)
    }
    fn records(s: &mut ScopeSpans) -> (Option<&mut InstrumentationScope>, &mut Vec<Span>) {
        (s.scope.as_mut(), &mut s.spans)
    }
    fn scope_items(s: &ScopeSpans) -> usize {
        s.spans.len()
    }
    fn redact(pass: &mut Pass<'_>, span: &mut Span) -> Result<u32, usize> {
        pass.span(span)
    }
    fn attributes(span: &mut Span) -> &mut Vec<KeyValue> {
        &mut span.attributes
    }
}

impl Shape for Logs {
    type Scope = ScopeLogs;
    type Record = LogRecord;
    fn scopes(r: &mut ResourceLogs) -> (Option<&mut Resource>, &mut Vec<ScopeLogs>) {
        (r.resource.as_mut(), &mut r.scope_logs)
    }
    fn records(s: &mut ScopeLogs) -> (Option<&mut InstrumentationScope>, &mut Vec<LogRecord>) {
        (s.scope.as_mut(), &mut s.log_records)
    }
    fn scope_items(s: &ScopeLogs) -> usize {
        s.log_records.len()
    }
    fn redact(pass: &mut Pass<'_>, r: &mut LogRecord) -> Result<u32, usize> {
        let n = pass.attributes(&mut r.attributes, true)?;
        let body = match r.body.as_mut().map(|b| pass.value(b)) {
            None => 0,
            Some(Fate::Kept(k)) => k,
            Some(Fate::Remove) => {
                r.body = None;
                1
            }
            Some(Fate::DropRecord(d)) => return Err(d),
        };
        Ok(n + body)
    }
    fn attributes(r: &mut LogRecord) -> &mut Vec<KeyValue> {
        &mut r.attributes
    }
}

impl Shape for Metrics {
    type Scope = ScopeMetrics;
    type Record = Metric;
    fn scopes(r: &mut ResourceMetrics) -> (Option<&mut Resource>, &mut Vec<ScopeMetrics>) {
        (r.resource.as_mut(), &mut r.scope_metrics)
    }
    fn records(s: &mut ScopeMetrics) -> (Option<&mut InstrumentationScope>, &mut Vec<Metric>) {
        (s.scope.as_mut(), &mut s.metrics)
    }
    fn scope_items(s: &ScopeMetrics) -> usize {
        s.metrics.iter().map(crate::signal::data_points).sum()
    }
    /// Data points are the items: each is redacted (with its exemplars) and dropped on its own, so a
    /// metric is never dropped whole here.
    fn redact(pass: &mut Pass<'_>, m: &mut Metric) -> Result<u32, usize> {
        let mut point = |attrs: &mut Vec<KeyValue>, exemplars: &mut Vec<Exemplar>| {
            let mut verdict = pass.attributes(attrs, true);
            for e in exemplars {
                verdict = verdict
                    .and_then(|n| Ok(n + pass.attributes(&mut e.filtered_attributes, true)?));
            }
            match verdict {
                Ok(_) => true,
                Err(d) => {
                    pass.dropped[d] += 1;
                    false
                }
            }
        };
        match &mut m.data {
            Some(Data::Gauge(g)) => g
                .data_points
                .retain_mut(|p| point(&mut p.attributes, &mut p.exemplars)),
            Some(Data::Sum(x)) => x
                .data_points
                .retain_mut(|p| point(&mut p.attributes, &mut p.exemplars)),
            Some(Data::Histogram(h)) => h
                .data_points
                .retain_mut(|p| point(&mut p.attributes, &mut p.exemplars)),
            Some(Data::ExponentialHistogram(h)) => h
                .data_points
                .retain_mut(|p| point(&mut p.attributes, &mut p.exemplars)),
            Some(Data::Summary(x)) => x
                .data_points
                .retain_mut(|p| point(&mut p.attributes, &mut Vec::new())),
            None => {}
        }
        Ok(0)
    }
    fn attributes(m: &mut Metric) -> &mut Vec<KeyValue> {
        &mut m.metadata
    }
}

pub(super) fn walk<S: Shape>(pass: &mut Pass<'_>, batch: &mut Batch<S>) {
    batch.resources.retain_mut(|rs| {
        let (resource, scopes) = S::scopes(rs);
        let items = scopes.iter().map(S::scope_items).sum();
        if !container(pass, resource, items) {
            return false;
        }
        scopes.retain_mut(|ss| {
            let items = S::scope_items(ss);
            let (scope, records) = S::records(ss);
            if let Some(scope) = scope {
                if !scoped(pass, &mut scope.attributes, items) {
                    return false;
                }
            }
            records.retain_mut(|r| {
                // Only for an item a tap follows: which detectors fired on it.
                let before = crate::tap::following().then(|| pass.counts.clone());
                let verdict = S::redact(pass, r);
                if let Some(before) = before {
                    explain_redaction(pass, S::attributes(r), &before, verdict.err());
                }
                match verdict {
                    Ok(n) => {
                        pass.summarise(S::attributes(r), n);
                        true
                    }
                    Err(d) => {
                        pass.dropped[d] += 1;
                        false
                    }
                }
            });
            true
        });
        true
    });
}
