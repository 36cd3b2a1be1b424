//! `weir migrate --from otelcol`: every OpenTelemetry Collector config in `tests/migrate/` becomes a
//! Weir config that `weir check` accepts, with the translations and report lines each one calls for;
//! broken input exits 1 naming the key, and `--strict` exits 2 when something had no equivalent.

use serde_yaml_ng::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/migrate")
        .join(name)
}

/// The variables the corpus configs read; `weir check` needs the ones without a default.
const ENV: [(&str, &str); 9] = [
    ("CLICKHOUSE_PASSWORD", "ch-secret"),
    ("TEAM_A_TOKEN", "token-a"),
    ("TEAM_B_TOKEN", "token-b"),
    ("HOME_TOKEN", "token-home"),
    ("LOKI_USER", "loki"),
    ("LOKI_PASSWORD", "loki-secret"),
    ("VENDOR_API_KEY", "vendor-key"),
    ("MY_POD_IP", "10.1.2.3"),
    ("WEIR_REDACT_KEY", "redact-key"),
];

fn check(config: &Path) -> Output {
    let mut c = weir();
    c.arg("check").arg("--config").arg(config);
    for (k, v) in ENV {
        c.env(k, v);
    }
    c.output().unwrap()
}

struct Migrated {
    text: String,
    config: Value,
    report: String,
}

impl Migrated {
    /// The report line for `path` with this status, which must contain every fragment.
    fn line(&self, status: &str, path: &str, fragments: &[&str]) -> &str {
        let line = self
            .report
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(status) && l[status.len()..].trim_start().starts_with(path))
            .unwrap_or_else(|| panic!("no `{status}` line for {path} in:\n{}", self.report));
        for f in fragments {
            assert!(line.contains(f), "`{f}` not in: {line}");
        }
        line
    }
}

/// Migrates a corpus file to a temp file, checks the result with `weir check`, and parses it.
fn migrate(name: &str) -> Migrated {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("weir.yaml");
    let run = weir()
        .args(["migrate", "--from", "otelcol"])
        .arg(corpus(name))
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "{name}: {report}");
    assert!(
        run.stdout.is_empty(),
        "with --output nothing goes to stdout"
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let checked = check(&out);
    assert!(
        checked.status.success(),
        "{name}: weir check refused the translation: {}\n{text}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(String::from_utf8_lossy(&checked.stdout).starts_with("config OK"));
    assert!(text.starts_with("# Weir config translated from the OpenTelemetry Collector config"));
    let config = serde_yaml_ng::from_str(&text).unwrap();
    Migrated {
        text,
        config,
        report,
    }
}

#[test]
fn every_corpus_config_translates_into_one_weir_check_accepts() {
    let mut n = 0;
    for entry in std::fs::read_dir(corpus("")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let m = migrate(path.file_name().unwrap().to_str().unwrap());
            assert!(m.report.contains("summary: "), "{}", m.report);
            n += 1;
        }
    }
    assert!(n >= 8, "the corpus has {n} configs");
}

#[test]
fn sidecar_keeps_its_memory_limit_batching_and_gateway_variable() {
    let m = migrate("sidecar.yaml");
    let c = &m.config;
    assert_eq!(c["memory_limit"], "200MiB");
    assert_eq!(c["receivers"]["grpc"]["endpoint"], "127.0.0.1:4317");
    let gw = &c["exporters"]["otlp_gateway"];
    assert_eq!(
        gw["otlp"]["endpoints"][0],
        "${GATEWAY_ENDPOINT:-otel-gateway.observability.svc:4317}"
    );
    assert!(m
        .text
        .contains("\"${GATEWAY_ENDPOINT:-otel-gateway.observability.svc:4317}\""));
    assert_eq!(gw["otlp"]["compression"], "zstd");
    assert!(
        gw["otlp"]["tls"].is_null(),
        "tls.insecure: true is plaintext"
    );
    assert!(gw["signals"].is_null(), "all three signals: no signals key");
    assert_eq!(gw["batch"]["max_items"], 2048);
    assert_eq!(gw["batch"]["max_age"], "2s");
    assert_eq!(gw["retry"]["max_elapsed"], "10m");
    assert_eq!(gw["max_in_flight"], 4);
    assert_eq!(c["admin"]["endpoint"], "0.0.0.0:13133");
    assert_eq!(c["log"]["level"], "warn");
    m.line(
        "translated",
        "processors.memory_limiter.limit_mib",
        &["memory_limit"],
    );
    m.line(
        "not needed",
        "processors.memory_limiter.spike_limit_mib",
        &[],
    );
    m.line(
        "not needed",
        "processors.memory_limiter.check_interval",
        &[],
    );
    m.line(
        "translated",
        "processors.batch.send_batch_size",
        &["batch.max_items"],
    );
    m.line(
        "not needed",
        "exporters.otlp/gateway.sending_queue.queue_size",
        &["items and memory"],
    );
    m.line(
        "translated",
        "extensions.health_check.endpoint",
        &["/healthz"],
    );
    assert!(!m.report.contains("no equivalent "), "{}", m.report);
}

#[test]
fn gateway_tail_policies_and_load_balancing() {
    let m = migrate("gateway-tail-loadbalancing.yaml");
    let c = &m.config;
    let tail = &c["pipeline"]["sample"]["tail"];
    assert_eq!(tail["decision_wait"], "15s");
    assert_eq!(tail["max_traces"], 200000);
    assert_eq!(tail["decision_cache"], 200000);
    let names: Vec<&str> = tail["policies"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "errors",
            "slow",
            "checkout",
            "vip",
            "big-spans",
            "not-health",
            "errors-capped",
            "baseline"
        ],
        "the inverted policy is a keep policy, in its place"
    );
    let p = &tail["policies"];
    assert_eq!(p[0]["status_code"][0], "error");
    assert_eq!(p[1]["latency"], "800ms");
    assert_eq!(p[2]["attribute"]["values"][1], "/cart");
    assert_eq!(p[3]["attribute"]["values"][0], "true");
    assert_eq!(p[4]["span_count"]["min"], 100);
    assert!(p[4]["span_count"]["max"].is_null());
    assert!(p[5]["drop"].is_null(), "a keep policy");
    assert_eq!(p[5]["attribute"]["values"][0], "/healthz");
    assert_eq!(p[5]["attribute"]["invert"], true);
    assert_eq!(p[6]["numeric_attribute"]["min"], 500);
    assert_eq!(p[6]["numeric_attribute"]["max"], 500);
    assert_eq!(p[6]["traces_per_second"], 50.0);
    assert_eq!(p[7]["probability"], 0.1);
    let lb = &c["exporters"]["loadbalancing"];
    assert_eq!(lb["otlp"]["routing"], "trace_id");
    assert_eq!(lb["otlp"]["endpoints"][2], "otel-tail-2.otel-tail:4317");
    assert!(lb["otlp"]["tls"].is_null());
    assert_eq!(lb["signals"][0], "traces");
    assert_eq!(lb["timeout"], "5s");
    let backend = &c["exporters"]["otlp_backend"]["otlp"];
    assert_eq!(backend["tls"]["ca_file"], "/etc/otel/ca.pem");
    assert_eq!(
        backend["compression"], "gzip",
        "the Collector's default, kept"
    );
    assert_eq!(c["receivers"]["http"]["enabled"], false);
    m.line(
        "translated",
        "processors.tail_sampling.policies[4]",
        &["span_count", "max_spans 0 or absent is no maximum"],
    );
    m.line(
        "translated",
        "processors.tail_sampling.policies[5]",
        &[
            "invert_match → invert: true",
            "disableinvertdecisions",
            "drop: true on the plain match",
        ],
    );
    m.line(
        "approximate",
        "processors.tail_sampling.policies[6]",
        &["traces_per_second"],
    );
    m.line("no equivalent", "receivers.otlp/tail", &["one OTLP/gRPC"]);
    m.line(
        "approximate",
        "service.pipelines",
        &["one chain per signal"],
    );
}

/// The policy named `name` in the translated tail sampler.
fn tail_policy<'a>(config: &'a Value, name: &str) -> &'a Value {
    config["pipeline"]["sample"]["tail"]["policies"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no tail policy `{name}`"))
}

#[test]
fn tail_policies_map_onto_weir_conditions_with_drop_policies_first() {
    let m = migrate("tail-policies.yaml");
    let c = &m.config;
    let names: Vec<&str> = c["pipeline"]["sample"]["tail"]["policies"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            // Drop policies first (the Collector's drop policies, in order): a Collector drop
            // decision wins wherever it stands, a Weir policy only by coming first. The inverted
            // policy is a keep policy and stays in its place.
            "health",
            "internal-fast",
            "keep-tenants-only",
            "failed-or-unset",
            "ok-only",
            "server-errors",
            "slow-queries",
            "api-routes",
            "admin",
            "no-synthetic",
            "big",
            "medium",
            "tiny",
            "slow-checkout",
            "capped-errors-off-canary",
            "baseline",
        ],
        "{}",
        m.text
    );
    let p = |name| tail_policy(c, name);
    for name in ["health", "internal-fast", "keep-tenants-only"] {
        assert_eq!(p(name)["drop"], true, "{name}");
        assert!(p(name)["traces_per_second"].is_null(), "{name}");
    }
    for name in [
        "failed-or-unset",
        "no-synthetic",
        "slow-checkout",
        "baseline",
    ] {
        assert!(p(name)["drop"].is_null(), "{name}");
    }

    // An inverted top-level policy: a keep policy on the inverted match.
    let a = &p("no-synthetic")["attribute"];
    assert_eq!(a["key"], "user_agent.original");
    assert_eq!(a["values"][1], "Pingdom");
    assert_eq!(a["invert"], true);
    // `drop` policies: one sub-policy as its condition, several as `and`; inverted inside: `invert`.
    assert_eq!(p("health")["attribute"]["values"][1], "/readyz");
    let all = p("internal-fast")["and"].as_sequence().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["attribute"]["key"], "internal");
    assert_eq!(all[0]["attribute"]["values"][0], "true");
    assert_eq!(all[1]["span_count"]["min"], 0);
    assert_eq!(all[1]["span_count"]["max"], 3);
    assert!(
        all[0]["name"].is_null(),
        "entries of and are conditions only"
    );
    let t = &p("keep-tenants-only")["attribute"];
    assert_eq!(t["regex"], ".+");
    assert_eq!(t["invert"], true);

    // Status codes, any of them.
    assert_eq!(
        p("failed-or-unset")["status_code"].as_sequence().unwrap(),
        &[Value::from("error"), Value::from("unset")]
    );
    assert_eq!(p("ok-only")["status_code"][0], "ok");
    // Numeric ranges: an absent bound stays open.
    let n = &p("server-errors")["numeric_attribute"];
    assert_eq!(n["key"], "http.response.status_code");
    assert_eq!(n["min"], 500);
    assert!(n["max"].is_null());
    let n = &p("slow-queries")["numeric_attribute"];
    assert_eq!(
        (n["min"].as_i64(), n["max"].as_i64()),
        (Some(1000), Some(50000))
    );
    // Regexes: unanchored in the Collector as in Weir, several as one alternation.
    let re = p("api-routes")["attribute"]["regex"].as_str().unwrap();
    assert_eq!(re, r"(?:^/api/v\d+/)|(?:checkout$)");
    assert!(p("api-routes")["attribute"]["values"].is_null());
    let re = regex::Regex::new(re).unwrap();
    for (path, matches) in [
        ("/api/v2/orders", true),
        ("/cart/checkout", true),
        ("/web/api/v2/", false),
        ("/checkout/pay", false),
    ] {
        assert_eq!(re.is_match(path), matches, "{path}");
    }
    assert_eq!(p("admin")["attribute"]["regex"], "/admin");
    // Span counts: max_spans 0 is no maximum.
    assert_eq!(p("big")["span_count"]["min"], 200);
    assert!(p("big")["span_count"]["max"].is_null());
    assert_eq!(p("medium")["span_count"]["max"], 199);
    assert_eq!(p("tiny")["span_count"]["min"], 1);
    assert!(p("tiny")["span_count"]["max"].is_null());
    // `and`: the conditions; a rate limit among them is the budget; inverted inside: `invert`.
    let all = p("slow-checkout")["and"].as_sequence().unwrap();
    assert_eq!(all[0]["attribute"]["values"][0], "/checkout");
    assert_eq!(all[1]["latency"], "2000ms");
    assert!(p("slow-checkout")["traces_per_second"].is_null());
    let capped = p("capped-errors-off-canary");
    assert_eq!(capped["traces_per_second"], 100.0);
    let all = capped["and"].as_sequence().unwrap();
    assert_eq!(
        all.len(),
        2,
        "the rate limit is the budget, not a condition"
    );
    assert_eq!(all[0]["status_code"][0], "error");
    assert_eq!(all[1]["attribute"]["key"], "deployment.canary");
    assert_eq!(all[1]["attribute"]["invert"], true);
    assert_eq!(p("baseline")["probability"], 0.05);

    let at = |i: usize| format!("processors.tail_sampling.policies[{i}] →");
    m.line(
        "translated",
        &at(0),
        &["`failed-or-unset`", "status_code → status_code"],
    );
    m.line(
        "translated",
        &at(2),
        &["numeric_attribute", "absent max_value", "open", "read as 0"],
    );
    m.line(
        "approximate",
        "processors.tail_sampling.policies[4].string_attribute.enabled_regex_matching",
        &[
            r"(?:^/api/v\d+/)|(?:checkout$)",
            "unanchored",
            "MatchString",
            r"\d",
        ],
    );
    m.line(
        "translated",
        "processors.tail_sampling.policies[5].string_attribute.enabled_regex_matching",
        &["`/admin`", "read these the same"],
    );
    m.line(
        "not needed",
        "processors.tail_sampling.policies[4].string_attribute.cache_max_size",
        &[],
    );
    let line = m.line(
        "translated",
        &at(6),
        &[
            "`no-synthetic`",
            "string_attribute → attribute",
            "invert_match → invert: true",
            "in its place",
            "disableinvertdecisions",
            "#48976",
            "before that gate dropped",
            "drop: true on the plain match",
        ],
    );
    assert!(!line.contains("placed first"), "{line}");
    m.line(
        "translated",
        &at(9),
        &["max_spans 0 or absent is no maximum"],
    );
    m.line(
        "translated",
        &at(10),
        &["and of string_attribute, latency → and"],
    );
    m.line(
        "approximate",
        &at(11),
        &[
            "and of status_code, string_attribute → and",
            "budget of 100",
        ],
    );
    m.line(
        "translated",
        "processors.tail_sampling.policies[11].and.and_sub_policy[1]",
        &["invert_match → invert: true"],
    );
    m.line(
        "no equivalent",
        "processors.tail_sampling.policies[12]:",
        &["`volume-and`", "bytes_limiting", "dropped by Weir"],
    );
    m.line(
        "no equivalent",
        "processors.tail_sampling.policies[13]:",
        &["numeric_attribute has no inverted form"],
    );
    m.line(
        "no equivalent",
        "processors.tail_sampling.policies[14]:",
        &["tracestate"],
    );
    m.line(
        "no equivalent",
        "processors.tail_sampling.policies[15]:",
        &["OTTL"],
    );
    m.line(
        "no equivalent",
        "processors.tail_sampling.policies[16]:",
        &["not bytes"],
    );
    m.line(
        "translated",
        &at(18),
        &[
            "`health`",
            "drop → drop: true with attribute",
            "overrides any sample decision",
        ],
    );
    m.line("translated", &at(19), &["drop: true with and"]);
    m.line(
        "translated",
        "processors.tail_sampling.policies[20].drop.drop_sub_policy[0] →",
        &["invert: true"],
    );
    // Every policy is reported once, and nothing of the and that has no equivalent is left over.
    for i in 0..21 {
        let prefix = format!("processors.tail_sampling.policies[{i}] ");
        let alt = format!("processors.tail_sampling.policies[{i}]: ");
        let n = m
            .report
            .lines()
            .filter(|l| l.contains(&prefix) || l.contains(&alt))
            .count();
        assert_eq!(n, 1, "policies[{i}] in:\n{}", m.report);
    }
    assert!(!m.report.contains("policies[12].and"), "{}", m.report);
}

#[test]
fn inverted_policies_alone_keep_the_traces_without_their_values() {
    let m = migrate("tail-inverted-only.yaml");
    let policies = m.config["pipeline"]["sample"]["tail"]["policies"]
        .as_sequence()
        .unwrap();
    let names: Vec<&str> = policies
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["no-health", "no-debug"],
        "keep policies only, no synthetic keep-rest:\n{}",
        m.text
    );
    for p in policies {
        assert!(p["drop"].is_null(), "{p:?}");
        assert_eq!(p["attribute"]["invert"], true, "{p:?}");
    }
    assert_eq!(policies[0]["attribute"]["key"], "url.path");
    assert_eq!(policies[0]["attribute"]["values"][0], "/healthz");
    assert_eq!(policies[1]["attribute"]["key"], "app.debug");
    assert_eq!(policies[1]["attribute"]["values"][0], "true");
    m.line(
        "translated",
        "processors.tail_sampling.policies[0] →",
        &[
            "`no-health`",
            "invert_match → invert: true",
            "disableinvertdecisions",
        ],
    );
    m.line(
        "translated",
        "processors.tail_sampling.policies[1] →",
        &[
            "`no-debug`",
            "boolean_attribute → attribute",
            "invert: true",
        ],
    );
    m.line(
        "no equivalent",
        "processors.tail_sampling.policies[2]:",
        &["`no-teapots`", "numeric_attribute has no inverted form"],
    );
    assert!(!m.report.contains("keep-rest"), "{}", m.report);
}

#[test]
fn edge_tls_bearer_tokens_and_forwarding() {
    let m = migrate("edge-tls-auth.yaml");
    let c = &m.config;
    let grpc = &c["receivers"]["grpc"];
    assert_eq!(grpc["tls"]["cert_file"], "/etc/otel/tls/server.crt");
    assert_eq!(
        grpc["tls"]["client_ca_file"],
        "/etc/otel/tls/clients-ca.crt"
    );
    assert_eq!(grpc["max_request_bytes"], "32MiB");
    assert_eq!(
        c["receivers"]["http"]["tls"]["key_file"],
        "/etc/otel/tls/server.key"
    );
    let tokens = &c["receivers"]["auth"]["tokens"];
    assert_eq!(tokens[0]["token_env"], "TEAM_A_TOKEN");
    assert_eq!(tokens[1]["token_env"], "TEAM_B_TOKEN");
    assert_eq!(tokens[1]["tenant"], "tenants-2");
    let home = &c["exporters"]["otlp_home"];
    assert_eq!(
        home["otlp"]["headers"]["authorization"],
        "Bearer ${HOME_TOKEN}"
    );
    assert_eq!(home["otlp"]["tls"]["server_name"], "gateway.internal");
    assert_eq!(home["signals"].as_sequence().unwrap().len(), 2);
    assert_eq!(home["batch"]["max_age"], "500ms");
    assert_eq!(c["memory_limit"], "4000MiB");
    assert_eq!(c["admin"]["endpoint"], "0.0.0.0:8888");
    m.line(
        "translated",
        "extensions.bearertokenauth/tenants.tokens[0]",
        &["TEAM_A_TOKEN"],
    );
    m.line(
        "no equivalent",
        "receivers.otlp.protocols.http.cors",
        &["CORS"],
    );
    m.line("no equivalent", "extensions.pprof", &[]);
    m.line(
        "not needed",
        "extensions.health_check.endpoint",
        &["already set"],
    );
}

#[test]
fn a_token_in_clear_is_kept_only_as_its_digest() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("otelcol.yaml");
    std::fs::write(
        &input,
        "extensions:\n  bearertokenauth:\n    token: s3cret\nreceivers:\n  otlp:\n    protocols:\n      http:\n        auth: {authenticator: bearertokenauth}\nexporters:\n  nop:\nservice:\n  extensions: [bearertokenauth]\n  pipelines:\n    logs: {receivers: [otlp], exporters: [nop]}\n",
    )
    .unwrap();
    let out = weir()
        .args(["migrate", "--from", "otelcol"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("s3cret"), "{text}");
    // sha256("s3cret")
    assert!(
        text.contains(
            "token_sha256: 1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0"
        ),
        "{text}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("receivers.otlp.protocols.http.auth"),
        "{stderr}"
    );
}

#[test]
fn clickhouse_endpoint_database_ttl_and_tables() {
    let m = migrate("clickhouse.yaml");
    let ch = &m.config["exporters"]["clickhouse"];
    assert_eq!(
        ch["clickhouse"]["endpoint"],
        "http://clickhouse.db.svc:8123"
    );
    assert_eq!(ch["clickhouse"]["database"], "otel");
    assert_eq!(ch["clickhouse"]["ttl"], "72h");
    assert_eq!(ch["clickhouse"]["logs_table"], "app_logs");
    assert_eq!(ch["clickhouse"]["traces_table"], "app_traces");
    assert_eq!(ch["clickhouse"]["metrics_table"], "app_metrics");
    assert_eq!(ch["clickhouse"]["create_schema"], true);
    assert_eq!(ch["clickhouse"]["cluster"], "prod");
    assert_eq!(ch["clickhouse"]["password"], "${CLICKHOUSE_PASSWORD}");
    assert_eq!(ch["clickhouse"]["username"], "${CLICKHOUSE_USER:-default}");
    assert_eq!(
        ch["insecure"], true,
        "the password went in clear before too"
    );
    assert_eq!(ch["batch"]["max_items"], 100000);
    assert_eq!(ch["retry"]["initial_backoff"], "5s");
    assert!(
        m.config.get("memory_limit").is_none(),
        "80 % is Weir's default"
    );
    m.line(
        "approximate",
        "exporters.clickhouse.endpoint",
        &["HTTP port 8123"],
    );
    m.line(
        "no equivalent",
        "exporters.clickhouse.endpoint",
        &["dial_timeout"],
    );
    m.line(
        "no equivalent",
        "exporters.clickhouse.table_engine",
        &["create_schema: false"],
    );
    m.line(
        "not needed",
        "processors.memory_limiter.limit_percentage",
        &["80 %"],
    );
}

#[test]
fn loki_endpoint_tenant_labels_and_basic_auth() {
    let m = migrate("loki.yaml");
    let l = &m.config["exporters"]["loki"]["loki"];
    assert_eq!(l["endpoint"], "https://loki.example.net");
    assert_eq!(l["tenant"], "payments");
    assert_eq!(l["username"], "${LOKI_USER}");
    assert_eq!(l["password"], "${LOKI_PASSWORD}");
    assert_eq!(l["resource_labels"][1], "deployment.environment");
    assert_eq!(l["line_format"], "json");
    assert_eq!(l["severity_label"], true);
    assert_eq!(l["tls"]["ca_file"], "/etc/ssl/loki-ca.pem");
    assert!(
        m.config["exporters"]["loki"]["signals"].is_null(),
        "Loki takes logs only anyway"
    );
    assert_eq!(m.config["receivers"]["grpc"]["enabled"], false);
    m.line(
        "translated",
        "processors.resource.attributes[0]",
        &["loki.resource.labels"],
    );
    m.line(
        "no equivalent",
        "processors.resource.attributes[2]",
        &["does not add or change"],
    );
    m.line(
        "approximate",
        "exporters.loki.default_labels_enabled",
        &["job"],
    );
}

#[test]
fn otlphttp_and_file_exporters_take_their_pipelines_signals() {
    let m = migrate("otlphttp-file.yaml");
    let e = &m.config["exporters"];
    let vendor = &e["otlphttp_vendor"];
    assert_eq!(
        vendor["otlp"]["endpoints"][0],
        "https://api.vendor.example:443"
    );
    assert_eq!(vendor["otlp"]["protocol"], "http");
    assert_eq!(vendor["otlp"]["headers"]["x-api-key"], "${VENDOR_API_KEY}");
    assert_eq!(
        vendor["signals"].as_sequence().unwrap(),
        &[Value::from("traces"), Value::from("metrics")]
    );
    assert_eq!(vendor["queue"]["max_items"], 20000);
    assert_eq!(vendor["max_in_flight"], 8);
    assert_eq!(vendor["timeout"], "15s");
    assert_eq!(
        e["otlphttp_plain"]["otlp"]["endpoints"][0],
        "http://collector.internal:4318"
    );
    assert_eq!(e["otlphttp_plain"]["signals"][0], "traces");
    let file = &e["file_logs"];
    assert_eq!(file["file"]["path"], "/var/log/otel");
    assert_eq!(file["file"]["rotate_bytes"], "100MiB");
    assert_eq!(file["file"]["max_files"], 5);
    assert_eq!(file["signals"][0], "logs");
    assert_eq!(file["batch"]["max_age"], "2s");
    m.line("approximate", "exporters.file/logs.path", &["directory"]);
    m.line(
        "no equivalent",
        "exporters.file/logs.rotation.max_days",
        &[],
    );
    m.line(
        "approximate",
        "exporters.otlphttp/plain.compression",
        &["snappy"],
    );
}

#[test]
fn redaction_attributes_and_resource_become_weir_redaction() {
    let m = migrate("redaction-attributes.yaml");
    let r = &m.config["pipeline"]["redact"];
    assert_eq!(r["enabled"], true);
    assert_eq!(
        r["detectors"]["email"], "off",
        "the Collector had no built-in detectors"
    );
    assert_eq!(r["detectors"]["credit_card"], "off");
    assert_eq!(r["patterns"][0]["regex"], "4[0-9]{12}(?:[0-9]{3})?");
    assert_eq!(
        r["patterns"].as_sequence().unwrap().len(),
        2,
        "the broken regex is left out"
    );
    let keys: Vec<(String, String)> = r["keys"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["key"].as_str().unwrap().into(),
                k["action"].as_str().unwrap().into(),
            )
        })
        .collect();
    for want in [
        ("*password*", "mask"),
        ("http.request.header.authorization", "drop"),
        ("user.email", "hash"),
        ("internal.*", "drop"),
        ("host.ip", "drop"),
    ] {
        assert!(
            keys.contains(&(want.0.into(), want.1.into())),
            "{want:?} in {keys:?}"
        );
    }
    assert_eq!(r["hash"]["key_env"], "WEIR_REDACT_KEY");
    assert_eq!(r["summary_attribute"], "redaction.masked.count");
    assert!(r["allow_keys"].is_null(), "allow_all_keys: true");
    m.line(
        "no equivalent",
        "processors.redaction.blocked_values[2]",
        &["not written"],
    );
    m.line(
        "no equivalent",
        "processors.redaction.blocked_key_patterns[1]",
        &["globs"],
    );
    m.line("no equivalent", "processors.redaction.ignored_keys", &[]);
    m.line(
        "no equivalent",
        "processors.attributes/scrub.actions[2]",
        &["insert"],
    );
    m.line("no equivalent", "processors.attributes/scrub.include", &[]);
    m.line(
        "approximate",
        "processors.resource/cleanup",
        &["traces pipelines only"],
    );
}

#[test]
fn probabilistic_samplers_become_head_sampling_per_signal() {
    let m = migrate("probabilistic.yaml");
    let s = &m.config["pipeline"]["sample"];
    assert_eq!(s["traces"]["probability"], 0.25);
    assert_eq!(s["logs"]["default_probability"], 0.1);
    assert_eq!(
        m.config["receivers"]["grpc"]["endpoint"],
        "${MY_POD_IP}:4317"
    );
    let otlp = &m.config["exporters"]["otlp"]["otlp"];
    assert_eq!(otlp["endpoints"][0], "https://otel.example.net:4317");
    assert!(otlp["tls"].is_null(), "https:// is TLS already");
    m.line(
        "approximate",
        "processors.probabilistic_sampler/traces.sampling_percentage",
        &["TRACE_SAMPLING_PERCENT"],
    );
    m.line(
        "approximate",
        "processors.probabilistic_sampler/traces.hash_seed",
        &["proportional"],
    );
    m.line(
        "no equivalent",
        "processors.probabilistic_sampler/logs.sampling_priority",
        &[],
    );
    m.line(
        "no equivalent",
        "processors.probabilistic_sampler/logs.attribute_source",
        &[],
    );
}

#[test]
fn translated_configs_still_read_their_variables() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("weir.yaml");
    let run = weir()
        .args(["migrate", "--from", "otelcol"])
        .arg(corpus("probabilistic.yaml"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success());
    let refused = weir()
        .arg("check")
        .arg("--config")
        .arg(&out)
        .env_remove("MY_POD_IP")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("MY_POD_IP"));
    let accepted = weir()
        .arg("check")
        .arg("--config")
        .arg(&out)
        .env("MY_POD_IP", "192.0.2.7")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&accepted.stdout).contains("grpc 192.0.2.7:4317"));
}

#[test]
fn load_balancing_by_dns_and_kubernetes_with_a_persistent_queue() {
    let m = migrate("loadbalancing-dns.yaml");
    let e = &m.config["exporters"];
    let t = &e["loadbalancing_traces"]["otlp"];
    assert_eq!(
        t["resolve"],
        "otel-gateway-headless.observability.svc.cluster.local:4317"
    );
    assert_eq!(t["resolve_interval"], "10s");
    assert_eq!(t["routing"], "trace_id");
    assert!(t["tls"].is_null());
    assert_eq!(e["loadbalancing_traces"]["retry"]["initial_backoff"], "2s");
    let l = &e["loadbalancing_logs"]["otlp"];
    assert_eq!(l["resolve"], "otel-gateway.observability:4317");
    assert_eq!(l["routing"], "service");
    assert!(l["tls"].is_mapping(), "the Collector's gRPC default is TLS");
    assert_eq!(
        m.config["durable"]["dir"],
        "/var/lib/otelcol/queue/weir-wal"
    );
    assert_eq!(m.config["log"]["format"], "json");
    m.line(
        "approximate",
        "exporters.loadbalancing/logs.resolver.k8s",
        &["headless"],
    );
    m.line(
        "approximate",
        "exporters.loadbalancing/logs.sending_queue.storage",
        &["durable"],
    );
}

#[test]
fn components_without_equivalent_are_reported_with_what_weir_does_instead() {
    let m = migrate("unsupported.yaml");
    let e = &m.config["exporters"];
    assert!(e["kafka"].is_null() && e["prometheusremotewrite"].is_null());
    assert!(e["debug"]["blackhole"].is_mapping());
    assert_eq!(
        e["otlp"]["otlp"]["headers"]["authorization"],
        "$${file:/etc/otel/upstream-token}"
    );
    m.line("no equivalent", "exporters.kafka", &["Kafka"]);
    m.line(
        "no equivalent",
        "exporters.prometheusremotewrite",
        &["OTLP"],
    );
    m.line("no equivalent", "processors.transform", &["OTTL"]);
    m.line(
        "no equivalent",
        "processors.filter/ottl",
        &["pipeline.sample.logs.rules"],
    );
    m.line("no equivalent", "processors.k8sattributes", &["Kubernetes"]);
    m.line(
        "no equivalent",
        "connectors.spanmetrics",
        &["metrics from spans"],
    );
    m.line("not needed", "connectors.forward", &[]);
    m.line("no equivalent", "receivers.prometheus", &["scrape"]);
    m.line("no equivalent", "receivers.filelog", &[]);
    m.line(
        "no equivalent",
        "receivers.otlp.protocols.grpc.keepalive",
        &["max_connection_age"],
    );
    m.line(
        "no equivalent",
        "exporters.otlp.headers.authorization",
        &["`file` provider"],
    );
    m.line(
        "no equivalent",
        "service.pipelines.metrics",
        &["not exported"],
    );
    m.line("approximate", "exporters.debug", &["blackhole"]);
    // The header lists what needs attention, so the file says it too.
    assert!(
        m.text.contains("#   no equivalent processors.transform"),
        "{}",
        m.text
    );
}

#[test]
fn without_output_the_config_goes_to_stdout_and_the_report_to_stderr() {
    let out = weir()
        .args(["migrate", "--from", "otelcol"])
        .arg(corpus("sidecar.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let config: Value = serde_yaml_ng::from_slice(&out.stdout).unwrap();
    assert_eq!(config["memory_limit"], "200MiB");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("→ Weir config on stdout") && stderr.contains("summary:"),
        "{stderr}"
    );
}

#[test]
fn strict_exits_2_when_something_had_no_equivalent() {
    let strict = |name: &str| {
        weir()
            .args(["migrate", "--from", "otelcol", "--strict"])
            .arg(corpus(name))
            .output()
            .unwrap()
    };
    let out = strict("unsupported.yaml");
    assert_eq!(out.status.code(), Some(2));
    assert!(!out.stdout.is_empty(), "the config is still written");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--strict"));
    assert_eq!(strict("sidecar.yaml").status.code(), Some(0));
}

#[test]
fn input_that_cannot_be_translated_exits_1_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("receivers: [\n  otlp\n", "not YAML"),
        ("- just\n- a list\n", "top level"),
        ("receivers:\n  otlp:\nexporters:\n  debug:\n", "service.pipelines: missing"),
        ("service:\n  extensions: []\n", "service.pipelines: missing"),
        ("service:\n  pipelines: {}\n", "service.pipelines: must be a non-empty mapping"),
        (
            "receivers: {otlp: {}}\nservice:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [otlp/nowhere]}\n",
            "service.pipelines.traces.exporters[0]: `otlp/nowhere` is not defined",
        ),
        ("service:\n  pipelines:\n    spans: {}\n", "service.pipelines.spans"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let input = dir.path().join(format!("bad{i}.yaml"));
        std::fs::write(&input, text).unwrap();
        let out = weir()
            .args(["migrate", "--from", "otelcol"])
            .arg(&input)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text}: {stderr}");
        assert!(stderr.contains(want), "{text}: `{want}` not in {stderr}");
        assert!(out.stdout.is_empty());
    }
    let out = weir()
        .args(["migrate", "--from", "vector"])
        .arg(corpus("sidecar.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only `otelcol`"));
    let out = weir()
        .args(["migrate", "--from", "otelcol"])
        .arg(dir.path().join("missing.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}
