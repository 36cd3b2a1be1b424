//! How config text is refused: every error names the file, line and key path, for each section.

use super::*;
use crate::Overflow;

fn no_env(_: &str) -> Option<String> {
    None
}

fn err(text: &str) -> String {
    parse(text, "test.yaml", no_env).unwrap_err().to_string()
}

#[test]
fn credentials_in_clear_beyond_loopback_are_refused_unless_insecure() {
    let refused = [
        (
            "clickhouse: {endpoint: \"http://ch.example:8123\", password: p}",
            "exporters.x.clickhouse",
        ),
        (
            "loki: {endpoint: \"http://loki:3100\", bearer_token: t}",
            "exporters.x.loki",
        ),
        (
            "loki: {endpoint: \"http://loki:3100\", username: u, password: p}",
            "exporters.x.loki",
        ),
        (
            "otlp: {endpoints: [\"gw:4317\"], headers: {authorization: secret}}",
            "exporters.x.otlp",
        ),
        (
            "otlp: {resolve: \"gw.svc:4317\", headers: {x-api-key: k}}",
            "exporters.x.otlp",
        ),
    ];
    for (dest, key) in refused {
        let yaml = format!("exporters:\n  x:\n    {dest}\n");
        let e = err(&yaml);
        assert!(
            e.contains(key) && e.contains("insecure: true"),
            "{dest}: {e}"
        );
        let ok = format!("exporters:\n  x:\n    {dest}\n    insecure: true\n");
        assert!(parse(&ok, "t.yaml", no_env).is_ok(), "{dest} with insecure");
    }
    for fine in [
        "clickhouse: {endpoint: \"http://127.0.0.1:8123\", password: p}",
        "clickhouse: {endpoint: \"https://ch.example:8443\", password: p}",
        "loki: {endpoint: \"http://localhost:3100\", bearer_token: t}",
        "otlp: {endpoints: [\"[::1]:4317\"], headers: {authorization: s}}",
        "otlp: {endpoints: [\"gw:4317\"], headers: {authorization: s}, tls: {}}",
        "clickhouse: {endpoint: \"http://ch.example:8123\"}",
    ] {
        let yaml = format!("exporters:\n  x:\n    {fine}\n");
        assert!(
            parse(&yaml, "t.yaml", no_env).is_ok(),
            "{fine}: {}",
            err(&yaml)
        );
    }
}

#[test]
fn tls_with_an_http_endpoint_is_an_error() {
    for dest in [
        "clickhouse: {endpoint: \"http://ch:8123\", tls: {}}",
        "loki: {endpoint: \"http://loki:3100\", tls: {}}",
        "otlp: {endpoints: [\"http://gw:4317\"], tls: {}}",
    ] {
        let e = err(&format!("exporters:\n  x:\n    {dest}\n"));
        assert!(e.contains(".tls") && e.contains("https://"), "{dest}: {e}");
    }
}

#[test]
fn embedded_default_parses() {
    let c = parse(crate::DEFAULT_CONFIG_YAML, "<embedded default>", no_env).unwrap();
    assert_eq!(c.receivers.grpc.endpoint, "127.0.0.1:4317");
    assert_eq!(c.receivers.http.endpoint, "127.0.0.1:4318");
    assert_eq!(c.admin.endpoint, "127.0.0.1:8888");
    let file = c.exporters.values().find_map(|e| e.file.as_ref()).unwrap();
    assert_eq!(file.path, "./weir-data");
}

#[test]
fn embedded_default_reads_the_documented_variables() {
    let env = |k: &str| match k {
        "WEIR_GRPC_ADDR" => Some("127.0.0.1:14317".to_string()),
        "WEIR_HTTP_ADDR" => Some("127.0.0.1:14318".to_string()),
        "WEIR_ADMIN_ADDR" => Some("127.0.0.1:18888".to_string()),
        "WEIR_DATA_DIR" => Some("/tmp/w".to_string()),
        _ => None,
    };
    let c = parse(crate::DEFAULT_CONFIG_YAML, "d", env).unwrap();
    assert_eq!(c.receivers.grpc.endpoint, "127.0.0.1:14317");
    assert_eq!(c.receivers.http.endpoint, "127.0.0.1:14318");
    assert_eq!(c.admin.endpoint, "127.0.0.1:18888");
    assert_eq!(
        c.exporters
            .values()
            .find_map(|e| e.file.as_ref())
            .unwrap()
            .path,
        "/tmp/w"
    );
}

#[test]
fn unknown_key_names_file_line_and_path() {
    let e =
        err("receivers:\n  grpc:\n    endpont: 1.2.3.4:1\nexporters:\n  b:\n    blackhole: {}\n");
    assert!(e.starts_with("test.yaml:3:"), "{e}");
    assert!(e.contains("receivers.grpc"), "{e}");
    assert!(e.contains("unknown field `endpont`"), "{e}");
}

#[test]
fn wrong_type_names_the_key() {
    let e = err("exporters:\n  f:\n    blackhole: {}\n    queue:\n      max_items: lots\n");
    assert!(e.contains("exporters.f.queue.max_items"), "{e}");
    assert!(e.contains(":5"), "{e}");
}

#[test]
fn semantic_errors_name_the_key() {
    assert!(err("exporters:\n  x: {}\n").contains("exporters.x: no destination"));
    assert!(
        err("exporters:\n  x:\n    blackhole: {}\n    file: {path: /tmp}\n")
            .contains("exactly one")
    );
    assert!(
        err("receivers:\n  grpc: {endpoint: nowhere}\nexporters:\n  b: {blackhole: {}}\n")
            .contains("receivers.grpc.endpoint")
    );
    assert!(err("exporters: {}\n").contains("at least one exporter"));
    assert!(
        err("exporters:\n  b: {blackhole: {}, batch: {max_items: 0}}\n")
            .contains("exporters.b.batch.max_items: must be greater than 0")
    );
}

#[test]
fn missing_variable_is_reported_with_line() {
    let e = err("exporters:\n  f:\n    file: {path: ${NOT_SET_ANYWHERE}}\n");
    assert!(
        e.contains("line 3") && e.contains("NOT_SET_ANYWHERE"),
        "{e}"
    );
}

#[test]
fn full_exporter_config_parses() {
    let c = parse(
        "exporters:\n  f:\n    file: {path: /d, rotate_bytes: 1MiB, max_files: 2}\n    signals: [logs]\n    queue: {max_items: 10, max_bytes: 1KiB, overflow: drop_newest}\n    batch: {max_items: 5, max_bytes: 100, max_age: 50ms}\n    retry: {initial_backoff: 10ms, max_backoff: 1s, max_elapsed: 1m}\n",
        "t",
        no_env,
    )
    .unwrap();
    let f = &c.exporters["f"];
    assert_eq!(f.queue.overflow, Overflow::DropNewest);
    assert_eq!(f.batch().max_age.0, std::time::Duration::from_millis(50));
    assert_eq!(f.batch().max_bytes, crate::ByteSize(100));
    assert!(f.receives(crate::SignalKind::Logs) && !f.receives(crate::SignalKind::Traces));
}

#[test]
fn clickhouse_gets_its_own_batch_defaults_and_checks_its_url() {
    let c = parse(
        "exporters:\n  ch:\n    clickhouse: {endpoint: \"http://127.0.0.1:8123\"}\n    batch: {max_age: 1s}\n",
        "t",
        no_env,
    )
    .unwrap();
    let ch = &c.exporters["ch"];
    let b = ch.batch();
    assert_eq!(
        (b.max_items, b.max_bytes),
        (50_000, crate::ByteSize::mib(32))
    );
    assert_eq!(b.max_age.0, std::time::Duration::from_secs(1));
    let cfg = ch.clickhouse.as_ref().unwrap();
    assert_eq!(
        (cfg.database.as_str(), cfg.logs_table.as_str()),
        ("otel", "otel_logs")
    );
    assert!(cfg.create_schema);
    assert!(
        err("exporters:\n  ch:\n    clickhouse: {endpoint: \"127.0.0.1:8123\"}\n")
            .contains("exporters.ch.clickhouse.endpoint")
    );
    assert!(
        err("exporters:\n  ch:\n    clickhouse: {endpoint: \"http://x\", layout: new}\n")
            .contains("exporters.ch.clickhouse.layout")
    );
    assert!(cfg.failover_endpoints.is_empty());
    assert!(err(
        "exporters:\n  ch:\n    clickhouse: {endpoint: \"http://a:8123\", failover_endpoints: [\"b:8123\"]}\n"
    )
    .contains("exporters.ch.clickhouse.failover_endpoints[0]"));
    // Every server gets the password, so each one is checked for sending it in clear.
    assert!(err(
        "exporters:\n  ch:\n    clickhouse: {endpoint: \"http://127.0.0.1:8123\", failover_endpoints: [\"http://ch2:8123\"], password: p}\n"
    )
    .contains("`http://ch2:8123`"));
}

#[test]
fn sampling_rules_parse_and_are_checked() {
    let c = parse(
        "pipeline:\n  sample:\n    traces: {probability: 0.25}\n    logs:\n      rules:\n        - {min_severity: warn, probability: 1}\n        - {name: info, severity: info, service: checkout, probability: 0.1}\nexporters:\n  b: {blackhole: {}}\n",
        "t",
        no_env,
    )
    .unwrap();
    let s = &c.pipeline.sample;
    assert_eq!(s.traces.probability, 0.25);
    assert_eq!(s.logs.rules[1].severity.unwrap().range(), (9, 12));
    assert_eq!(s.logs.rules[0].min_severity.unwrap().range().0, 13);
    let e = err("pipeline:\n  sample:\n    logs:\n      rules:\n        - {probability: 1.5}\nexporters:\n  b: {blackhole: {}}\n");
    assert!(
        e.contains("pipeline.sample.logs.rules[0].probability"),
        "{e}"
    );
    let e = err("pipeline:\n  sample:\n    logs:\n      rules:\n        - {severity: loud, probability: 1}\nexporters:\n  b: {blackhole: {}}\n");
    assert!(e.contains("pipeline.sample.logs.rules[0].severity"), "{e}");
}

#[test]
fn tail_policies_parse_and_are_checked() {
    let base = "exporters:\n  b: {blackhole: {}}\npipeline:\n  sample:\n    tail:\n";
    let c = parse(
        &format!("{base}      decision_wait: 5s\n      policies:\n        - {{name: errors, error: true}}\n        - {{name: slow, latency: 300ms, traces_per_second: 10}}\n        - {{name: vip, attribute: {{key: tier, values: [gold]}}}}\n        - {{name: some, probability: 0.1}}\n        - {{name: trickle, rate: 5}}\n"),
        "t.yaml",
        no_env,
    )
    .unwrap();
    let t = c.pipeline.sample.tail.unwrap();
    assert_eq!(t.decision_wait, crate::Duration::secs(5));
    assert_eq!(t.root_wait, crate::Duration::secs(1));
    assert_eq!(t.policies.len(), 5);
    assert_eq!(t.policies[1].traces_per_second, Some(10.0));

    let e = err(&format!(
        "{base}      policies:\n        - {{name: a, error: true, rate: 3}}\n"
    ));
    assert!(
        e.contains("pipeline.sample.tail.policies[0]: set exactly one"),
        "{e}"
    );
    let e = err(&format!("{base}      policies:\n        - {{name: a, error: true}}\n        - {{name: a, rate: 1}}\n"));
    assert!(e.contains("policies[1].name"), "{e}");
    let e = err(&format!("{base}      policies: []\n"));
    assert!(e.contains("pipeline.sample.tail.policies"), "{e}");
    let e = err(&format!(
        "{base}      root_wait: 20s\n      policies:\n        - {{name: a, error: true}}\n"
    ));
    assert!(e.contains("root_wait"), "{e}");
    let e = err(&format!(
        "{base}      policies:\n        - {{name: a, probability: 2}}\n"
    ));
    assert!(e.contains("policies[0].probability"), "{e}");
    let e = err(&format!(
        "{base}      policies:\n        - {{name: a, latncy: 1s}}\n"
    ));
    assert!(e.contains("latncy"), "{e}");
}

#[test]
fn richer_tail_policies_and_logs_with_trace_are_checked() {
    let base = "exporters:\n  b: {blackhole: {}}\npipeline:\n  sample:\n    tail:\n";
    let with_trace = format!("{base}      logs: with_trace\n      policies:\n");
    let ok = |policies: &str| {
        parse(&format!("{with_trace}{policies}"), "t.yaml", no_env)
            .unwrap_or_else(|e| panic!("{policies}: {e}"))
    };
    let c = ok("        - {name: h, drop: true, attribute: {key: http.route, regex: \"^/health\", invert: false}}\n        - {name: e, status_code: [error, STATUS_CODE_UNSET]}\n        - {name: l, log_severity: error}\n        - {name: big, span_count: {min: 50}}\n        - {name: n, numeric_attribute: {key: retries, min: 1, max: 9}}\n        - {name: s, trace_bytes: {max: 2MiB}}\n        - {name: a, log_attribute: {key: audit, values: [x]}}\n        - name: both\n          and:\n            - {error: true}\n            - {latency: 1s}\n");
    let t = c.pipeline.sample.tail.unwrap();
    assert_eq!(t.logs, crate::TailLogs::WithTrace);
    assert_eq!(
        t.policies[1].status_code,
        Some(vec![
            crate::StatusCodeName::Error,
            crate::StatusCodeName::Unset
        ])
    );
    assert_eq!(t.policies[7].and.as_ref().unwrap().len(), 2);

    let bad = |policies: &str, want: &str| {
        let e = err(&format!("{with_trace}{policies}"));
        assert!(e.contains(want), "{policies}: {e}");
    };
    bad(
        "        - {name: x, attribute: {key: k, regex: \"(\"}}\n",
        "pipeline.sample.tail.policies[0].attribute.regex",
    );
    bad(
        "        - {name: x, attribute: {key: k, values: [a], regex: a}}\n",
        "set values or regex, not both",
    );
    bad(
        "        - {name: x, span_count: {min: 5, max: 2}}\n",
        "policies[0].span_count: min must not exceed max",
    );
    bad(
        "        - {name: x, numeric_attribute: {key: k}}\n",
        "policies[0].numeric_attribute: set min, max or both",
    );
    bad("        - {name: x, status_code: [loud]}\n", "status_code");
    bad(
        "        - {name: x, drop: true, error: true, traces_per_second: 5}\n",
        "policies[0].drop: a drop policy takes no budget",
    );
    bad(
        "        - name: x\n          and: [{error: true}]\n",
        "policies[0].and: list at least two",
    );
    bad(
        "        - name: x\n          and: [{error: true}, {name: y, latency: 1s}]\n",
        "policies[0].and[1]: entries of `and` are conditions",
    );
    bad(
        "        - name: x\n          and: [{error: true}, {latency: 1s, error: true}]\n",
        "policies[0].and[1]: set exactly one",
    );
    let e = err(&format!(
        "{base}      policies:\n        - {{name: x, log_severity: error}}\n"
    ));
    assert!(e.contains("only with `logs: with_trace`"), "{e}");
    let e = err("exporters:\n  l: {loki: {endpoint: \"http://127.0.0.1:3100\"}}\npipeline:\n  sample:\n    tail:\n      logs: with_trace\n      policies: [{name: a, error: true}]\n");
    assert!(
        e.contains("pipeline.sample.tail.logs") && e.contains("an exporter must take traces"),
        "{e}"
    );
}

#[test]
fn redaction_config_parses_and_is_checked() {
    let base = "exporters:\n  b: {blackhole: {}}\npipeline:\n  redact:\n    enabled: true\n";
    let c = parse(
        &format!("{base}    keys:\n      - {{key: \"*password*\", action: drop}}\n    detectors: {{email: hash, ipv4: off}}\n    patterns:\n      - {{name: order, regex: \"ORD-[0-9]{{6}}\"}}\n    hash: {{key_env: K, algorithm: blake3}}\n    mask: {{keep_suffix: 4}}\n"),
        "r.yaml",
        no_env,
    )
    .unwrap();
    let r = &c.pipeline.redact;
    use crate::redact::{Action, Switch};
    assert_eq!(r.detectors.email, Switch::On(Action::Hash));
    assert_eq!(r.detectors.ipv4, Switch::Off);
    assert_eq!(
        r.detectors.jwt,
        Switch::On(Action::Mask),
        "the rest default to mask"
    );
    assert_eq!(r.patterns[0].action, Action::Mask);

    let e = err(&format!("{base}    detectors: {{email: hash}}\n"));
    assert!(e.contains("pipeline.redact.hash"), "{e}");
    let e = err(&format!(
        "{base}    patterns:\n      - {{name: x, regex: \"(unclosed\"}}\n"
    ));
    assert!(e.contains("pipeline.redact.patterns[0].regex"), "{e}");
    let e = err(&format!(
        "{base}    patterns:\n      - {{name: x, regex: \"a*\"}}\n"
    ));
    assert!(e.contains("empty string"), "{e}");
    let e = err(&format!("{base}    detectors: {{email: scramble}}\n"));
    assert!(
        e.contains("pipeline.redact.detectors.email") && e.contains("scramble"),
        "{e}"
    );
    let e = err(&format!("{base}    detectors: {{emial: mask}}\n"));
    assert!(e.contains("emial"), "{e}");
    let e = err(&format!(
        "{base}    keys:\n      - {{key: \"**\", action: mask}}\n"
    ));
    assert!(e.contains("keys[0].key"), "{e}");
}

#[test]
fn spill_needs_durable_and_a_name_fit_for_a_directory() {
    let spilling = |name: &str| {
        format!("exporters:\n  \"{name}\":\n    blackhole: {{}}\n    queue: {{overflow: spill}}\n")
    };
    let e = err(&spilling("slow"));
    assert!(
        e.contains("exporters.slow.queue.overflow") && e.contains("durable"),
        "{e}"
    );
    let durable = "durable: {dir: /tmp/w}\n";
    let e = err(&format!("{durable}{}", spilling("../x")));
    assert!(e.contains("names a directory"), "{e}");
    let e = err(&format!(
        "{durable}{}",
        spilling("slow").replace("spill}", "spill, spill_max_bytes: 1KiB}")
    ));
    assert!(e.contains("exporters.slow.queue.spill_max_bytes"), "{e}");
    let c = parse(&format!("{durable}{}", spilling("slow")), "t", |_| None).unwrap();
    assert_eq!(c.exporters["slow"].queue.overflow, crate::Overflow::Spill);
    assert_eq!(c.exporters["slow"].queue.spill_max_bytes.0, 1 << 30);
}

#[test]
fn memory_limit_is_checked_and_derived_from_what_the_queues_hold() {
    let e = err("memory_limit: 1MiB\nexporters: {x: {blackhole: {}}}\n");
    assert!(e.contains("memory_limit") && e.contains("16MiB"), "{e}");
    let c = parse(
        "memory_limit: 128MiB\nexporters: {x: {blackhole: {}}}\n",
        "t",
        no_env,
    )
    .unwrap();
    assert_eq!(c.memory_limit.unwrap().0, 128 << 20);
    // Logs only: one intake queue (32MiB) and one exporter queue (64MiB), plus 64MiB to work in.
    let logs = parse(
        "exporters: {x: {blackhole: {}, signals: [logs]}}\n",
        "t",
        no_env,
    )
    .unwrap();
    assert_eq!(logs.derived_memory_limit(), (32 + 64 + 64) << 20);
    let tail = parse(
        "pipeline: {sample: {tail: {max_bytes: 10MiB, policies: [{name: all, probability: 1.0}]}}}\n\
         exporters: {x: {blackhole: {}, signals: [traces]}}\n",
        "t",
        no_env,
    )
    .unwrap();
    assert_eq!(tail.derived_memory_limit(), (32 + 64 + 10 + 64) << 20);
}

#[test]
fn broken_yaml_is_an_error_not_a_panic() {
    let e = err("exporters: [\n");
    assert!(e.starts_with("test.yaml"), "{e}");
}
