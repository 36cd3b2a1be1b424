//! What the tail sampler holds besides ids and timers: each item with the resource and scope it
//! arrived under ([`Meta`], shared by every item of that scope), and the kept items regrouped into
//! batches again ([`Output`]). [`Holdable`] is what spans and log records have in common here, so the
//! buffer holds both with one code path.

use crate::batch::Batch;
use crate::signal::{Logs, Signal, Traces};
use crate::ticket::{self, Ticket};
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use std::collections::HashMap;
use std::sync::Arc;

/// The resource and scope items arrived under.
#[derive(Debug)]
pub struct Meta {
    pub resource: Option<Resource>,
    pub resource_schema_url: String,
    pub scope: Option<InstrumentationScope>,
    pub scope_schema_url: String,
    /// Durable records these items came from: held items keep them open until decided and delivered.
    pub tickets: Vec<Ticket>,
}

/// One held span or log record.
pub struct Held<U> {
    pub meta: Arc<Meta>,
    pub unit: U,
    /// Its encoded share of the batch it came in.
    pub bytes: usize,
}

/// A signal the tail sampler holds by trace: how its resources come apart into scopes and go back
/// together.
pub trait Holdable: Signal {
    /// Each scope's items with the resource and scope they came under.
    fn scatter(
        rs: Self::Resource,
        tickets: &[Ticket],
        each: impl FnMut(Arc<Meta>, Vec<Self::Unit>),
    );
    /// An empty resource group with one empty scope, as `meta` describes.
    fn gather(meta: &Meta) -> Self::Resource;
    fn attributes(unit: &mut Self::Unit) -> &mut Vec<KeyValue>;
}

fn meta(
    resource: &Option<Resource>,
    schema: &str,
    scope: Option<InstrumentationScope>,
    scope_schema: String,
    tickets: &[Ticket],
) -> Arc<Meta> {
    Arc::new(Meta {
        resource: resource.clone(),
        resource_schema_url: schema.to_string(),
        scope,
        scope_schema_url: scope_schema,
        tickets: tickets.to_vec(),
    })
}

/// The two signals differ only in field names.
macro_rules! holdable {
    ($signal:ty, $resource:ident, $scopes:ident, $scope:ident, $units:ident) => {
        impl Holdable for $signal {
            fn scatter(
                r: $resource,
                tickets: &[Ticket],
                mut each: impl FnMut(Arc<Meta>, Vec<Self::Unit>),
            ) {
                for s in r.$scopes {
                    each(
                        meta(&r.resource, &r.schema_url, s.scope, s.schema_url, tickets),
                        s.$units,
                    );
                }
            }
            fn gather(meta: &Meta) -> $resource {
                $resource {
                    resource: meta.resource.clone(),
                    $scopes: vec![$scope {
                        scope: meta.scope.clone(),
                        $units: Vec::new(),
                        schema_url: meta.scope_schema_url.clone(),
                    }],
                    schema_url: meta.resource_schema_url.clone(),
                }
            }
            fn attributes(unit: &mut Self::Unit) -> &mut Vec<KeyValue> {
                &mut unit.attributes
            }
        }
    };
}

holdable!(Traces, ResourceSpans, scope_spans, ScopeSpans, spans);
holdable!(Logs, ResourceLogs, scope_logs, ScopeLogs, log_records);

/// Kept items regrouped under their resource and scope.
pub struct Output<S: Holdable> {
    resources: Vec<S::Resource>,
    /// Index into `resources` by the address of the `Meta` it was built from; `metas` keeps those
    /// alive, so an address cannot be reused while the map lives.
    index: HashMap<usize, usize>,
    metas: Vec<Arc<Meta>>,
    bytes: usize,
    tickets: Vec<Ticket>,
}

impl<S: Holdable> Default for Output<S> {
    fn default() -> Self {
        Output {
            resources: Vec::new(),
            index: HashMap::new(),
            metas: Vec::new(),
            bytes: 0,
            tickets: Vec::new(),
        }
    }
}

impl<S: Holdable> Output<S> {
    /// Adds a kept item; `tag` names the policy that kept it, under the configured attribute.
    pub fn push(&mut self, held: Held<S::Unit>, tag: Option<(&str, Arc<str>)>) {
        let Held {
            meta,
            mut unit,
            bytes,
        } = held;
        if let Some((key, name)) = tag {
            crate::attrs::set_string(S::attributes(&mut unit), key, &name);
        }
        let i = *self
            .index
            .entry(Arc::as_ptr(&meta) as usize)
            .or_insert_with(|| {
                self.resources.push(S::gather(&meta));
                for t in &meta.tickets {
                    ticket::push_unique(&mut self.tickets, t);
                }
                self.metas.push(meta.clone());
                self.resources.len() - 1
            });
        let scope = &mut S::groups(&mut self.resources[i])[0];
        S::units(scope).push(unit);
        self.bytes += bytes;
    }

    /// Passes a whole batch through undecided (tail sampling is off).
    pub fn append_batch(&mut self, mut batch: Batch<S>) {
        for t in &batch.take_tickets() {
            ticket::push_unique(&mut self.tickets, t);
        }
        self.bytes += batch.bytes();
        self.resources.extend(std::mem::take(&mut batch.resources));
    }

    pub fn take(&mut self) -> Option<Batch<S>> {
        if self.resources.is_empty() {
            return None;
        }
        self.index.clear();
        self.metas.clear();
        let bytes = std::mem::take(&mut self.bytes);
        let mut batch = Batch::new(std::mem::take(&mut self.resources), bytes);
        batch.set_tickets(std::mem::take(&mut self.tickets));
        Some(batch)
    }
}
