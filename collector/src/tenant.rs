//! Who a request's tenant is: what authentication proved, never what the client wrote. The intake
//! applies a [`Stamp`] to every resource of a request before it is queued or logged, and the durable
//! log stores the stamp with the request so a replay applies the same one.
//!
//! - An authenticated request gets its token's tenant in the tenant attribute, overwriting whatever
//!   the client sent, unless its tenant is one of `receivers.auth.trusted_tenant_from` (edges that
//!   stamped their own clients' tenants): then the resources keep theirs.
//! - Without authentication, a client-sent tenant attribute is removed: nobody can pick another
//!   tenant's Loki org or ClickHouse database by writing `weir.tenant` into a resource.

use crate::auth::{Auth, Tenant};
use crate::wire::Wire;
use weir_pipeline::attrs::set_string;

/// What the intake does with one request's tenant attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp<'a> {
    /// Leave the resources as sent: a trusted upstream's tenants.
    Keep,
    /// Remove the attribute: the client is not authenticated.
    Strip(&'a str),
    /// Set the attribute (key, tenant) to the authenticated tenant.
    Set(&'a str, &'a str),
}

impl<'a> Stamp<'a> {
    /// The stamp for a request that authenticated as `tenant` (`None` without authentication).
    pub fn for_request(auth: Option<&'a Auth>, tenant: Option<&'a Tenant>) -> Self {
        match (auth, tenant) {
            (Some(a), Some(t)) if a.trusts(&t.0) => Stamp::Keep,
            (Some(a), Some(t)) => Stamp::Set(&a.tenant_attribute, &t.0),
            (Some(a), None) => Stamp::Strip(&a.tenant_attribute),
            (None, _) => Stamp::Strip(DEFAULT_ATTRIBUTE),
        }
    }

    /// Applies the stamp; returns how many resources carried a tenant that was removed or replaced.
    pub fn apply<S: Wire>(&self, resources: &mut [S::Resource]) -> usize {
        let mut overridden = 0;
        match *self {
            Stamp::Keep => {}
            Stamp::Strip(key) => {
                for r in resources {
                    let attrs = S::resource_attributes(r);
                    let before = attrs.len();
                    attrs.retain(|kv| kv.key != key);
                    overridden += usize::from(attrs.len() != before);
                }
            }
            Stamp::Set(key, tenant) => {
                for r in resources {
                    let attrs = S::resource_attributes(r);
                    overridden += usize::from(attrs.iter().any(|kv| {
                        kv.key == key
                            && !matches!(kv.value.as_ref().and_then(|v| v.value.as_ref()),
                                Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) if s == tenant)
                    }));
                    set_string(attrs, key, tenant);
                }
            }
        }
        overridden
    }

    /// The stamp as durable record metadata: empty for `Keep`, `key` for `Strip`, `key\0tenant` for
    /// `Set` (what earlier versions wrote).
    pub fn to_meta(self) -> Vec<u8> {
        match self {
            Stamp::Keep => Vec::new(),
            Stamp::Strip(key) => key.as_bytes().to_vec(),
            Stamp::Set(key, tenant) => [key.as_bytes(), b"\0", tenant.as_bytes()].concat(),
        }
    }

    /// Reads [`to_meta`](Self::to_meta)'s bytes back.
    pub fn from_meta(meta: &'a str) -> Self {
        match meta.split_once('\0') {
            _ if meta.is_empty() => Stamp::Keep,
            Some((key, tenant)) => Stamp::Set(key, tenant),
            None => Stamp::Strip(meta),
        }
    }
}

/// The tenant attribute without authentication: what `receivers.auth.tenant_attribute` defaults to.
const DEFAULT_ATTRIBUTE: &str = "weir.tenant";

#[cfg(test)]
mod tests {
    use super::*;
    use weir_pipeline::{attrs::set_string, fixtures, Logs};

    fn tenants(
        resources: &[opentelemetry_proto::tonic::logs::v1::ResourceLogs],
    ) -> Vec<Option<String>> {
        resources
            .iter()
            .map(|r| {
                r.resource.as_ref().and_then(|res| {
                    res.attributes
                        .iter()
                        .find(|kv| kv.key == "weir.tenant")
                        .map(|kv| format!("{:?}", kv.value))
                })
            })
            .collect()
    }

    #[test]
    fn strip_removes_and_set_overwrites_a_client_sent_tenant() {
        let mut rs = fixtures::resource_logs(2, 1);
        set_string(
            &mut rs[0].resource.as_mut().unwrap().attributes,
            "weir.tenant",
            "victim",
        );
        assert_eq!(Stamp::Strip("weir.tenant").apply::<Logs>(&mut rs), 1);
        assert_eq!(tenants(&rs), vec![None, None]);
        set_string(
            &mut rs[1].resource.as_mut().unwrap().attributes,
            "weir.tenant",
            "victim",
        );
        assert_eq!(
            Stamp::Set("weir.tenant", "team-a").apply::<Logs>(&mut rs),
            1
        );
        assert!(tenants(&rs)
            .iter()
            .all(|t| t.as_deref().is_some_and(|t| t.contains("team-a"))));
    }

    #[test]
    fn stamps_round_trip_through_record_metadata() {
        for stamp in [
            Stamp::Keep,
            Stamp::Strip("weir.tenant"),
            Stamp::Set("weir.tenant", "a"),
        ] {
            let meta = String::from_utf8(stamp.to_meta()).unwrap();
            assert_eq!(Stamp::from_meta(&meta), stamp);
        }
    }
}
