//! Endpoint strings as the Collector writes them: the scheme (`http://`, `https://` or a bare
//! `host:port`), the host, and whether it is the local machine. Shared by the exporter translators
//! ([`super::otlp`], [`super::balance`], [`super::clickhouse`], [`super::stores`]).

use super::env;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
    Bare,
}

pub fn scheme_of(endpoint: &str) -> Scheme {
    let known = env::with_defaults(endpoint);
    if known.starts_with("https://") {
        Scheme::Https
    } else if known.starts_with("http://") {
        Scheme::Http
    } else {
        Scheme::Bare
    }
}

pub fn host_of(endpoint: &str) -> String {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    match authority.rfind(']') {
        Some(end) => authority[..=end].to_string(),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(h, _)| h)
            .to_string(),
    }
}

pub fn loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
