//! `loadbalancing` → Weir's `otlp` exporter with several backends: static hostnames become
//! `endpoints`, a DNS (or Kubernetes Service) name `resolve`, the routing key `routing`.

use super::endpoint::scheme_of;
use super::report::Obj;
use super::yaml::{Map, Node};
use super::{delivery, env, otlp, units, Ctx};

pub fn translate(cx: &mut Ctx, o: &mut Obj, wpath: &str) -> Option<Map> {
    let mut otlp = Map::default();
    let mut endpoints = Vec::new();
    let mut r = o.child("resolver");
    let mut st = r.child("static");
    let mut dns = r.child("dns");
    let mut k8s = r.child("k8s");
    if !st.is_empty() {
        for h in st.strs("hostnames") {
            let with_port = if env::with_defaults(&h).contains(':') {
                h.clone()
            } else {
                format!("{h}:4317")
            };
            endpoints.push(with_port);
        }
        otlp.set("endpoints", Node::strs(&endpoints));
        cx.report.translated(&st.path, &format!("{wpath}.otlp.endpoints"), format!("{} (port 4317 where none was given); a backend failing eject_after (3) attempts in a row is ejected for eject_for (10s) and its keys move to the others", endpoints.join(", ")));
    } else if !dns.is_empty() {
        let host = dns.str("hostname").unwrap_or_default();
        let port = dns.str("port").unwrap_or_else(|| "4317".into());
        let target = format!("{host}:{port}");
        otlp.set("resolve", Node::str(&target));
        let interval = dns.str("interval").unwrap_or_else(|| "5s".into());
        let interval = units::duration(&interval).unwrap_or_else(|_| "5s".into());
        otlp.set("resolve_interval", Node::str(&interval));
        cx.report.translated(
            &dns.path,
            &format!("{wpath}.otlp.resolve"),
            format!("{target}, re-resolved every {interval}"),
        );
        if dns.get("timeout").is_some() {
            cx.report
                .not_needed(&dns.at("timeout"), "Weir bounds its lookups itself");
        }
        endpoints.push(target);
    } else if !k8s.is_empty() {
        let service = k8s.str("service").unwrap_or_default();
        let ports = k8s.strs("ports");
        let port = ports.first().cloned().unwrap_or_else(|| "4317".into());
        if ports.len() > 1 {
            cx.report.unsupported(
                &k8s.at("ports"),
                "Weir resolves one port per exporter: the first is used",
            );
        }
        let target = format!("{service}:{port}");
        otlp.set("resolve", Node::str(&target));
        cx.report.approximate(&k8s.path, Some(&format!("{wpath}.otlp.resolve")), format!("{target}: Weir resolves the Service name by DNS instead of watching Endpoints, so the Service must be headless (clusterIP: None) to resolve to every pod"));
        for key in ["timeout", "return_hostnames"] {
            if k8s.get(key).is_some() {
                cx.report.not_needed(&k8s.at(key), "Weir resolves by DNS");
            }
        }
        endpoints.push(target);
    }
    cx.report
        .rest(&st, "Weir's static backends are a list of host:port");
    cx.report.rest(
        &dns,
        "Weir's DNS backends have resolve and resolve_interval only",
    );
    cx.report.rest(&k8s, "Weir resolves by DNS");
    cx.report.rest(
        &r,
        "Weir finds backends from a static list or DNS only (endpoints, resolve)",
    );
    if endpoints.is_empty() {
        cx.report
            .unsupported(&o.path, "no static, dns or k8s resolver: not written");
        return None;
    }
    let (routing, exact) = match o.str("routing_key").as_deref() {
        None | Some("traceID") => ("trace_id", true),
        Some("service") => ("service", true),
        Some("resource") => ("resource", true),
        Some(_) => ("resource", false),
    };
    otlp.set("routing", Node::str(routing));
    let routing_path = format!("{wpath}.otlp.routing");
    if exact {
        cx.report.translated(&o.at("routing_key"), &routing_path, format!("{routing}: rendezvous hashing, so every sender picks the same backend and a membership change moves about 1/N of the keys"));
    } else {
        cx.report.approximate(&o.at("routing_key"), Some(&routing_path), "Weir routes by trace_id, service or resource; written as resource (a resource's items stay together)");
    }
    if o.get("routing_attributes").is_some() {
        cx.report.unsupported(
            &o.at("routing_attributes"),
            "Weir routes by trace_id, service or the whole resource",
        );
    }
    let mut e = Map::default();
    let mut proto = o.child("protocol");
    let mut p = proto.child("otlp");
    if p.get("endpoint").is_some() {
        cx.report
            .not_needed(&p.at("endpoint"), "the resolver names the backends");
    }
    let scheme = scheme_of(&endpoints[0]);
    otlp::settings(
        cx, &mut p, wpath, &mut otlp, &mut e, true, scheme, &endpoints,
    );
    cx.report
        .rest(&p, "Weir's otlp exporter has no such setting");
    cx.report.rest(
        &proto,
        "Weir load-balances over OTLP/gRPC (protocol.otlp) only",
    );
    delivery::delivery(cx, o, wpath, &mut e);
    otlp.set("protocol", Node::str("grpc"));
    e.set("otlp", Node::Map(otlp));
    Some(e)
}
