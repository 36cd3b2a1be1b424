//! `weir tap` and `weir top` against a running Weir, through the real binary: the tap shows each
//! item's fate (dropped by which rule, changed by which detector, handed to which exporter) and
//! leaves no trace in what is exported; top draws live rates in a real terminal (tmux).

mod common;

use common::{http_request, Options, Weir};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::Value as Json;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// Severity number, body, extra attributes.
type Record<'a> = (i32, &'a str, &'a [(&'a str, &'a str)]);

/// One record per entry, all tagged `test=<tag>`, service `shop`.
fn logs(tag: &str, records: &[Record<'_>]) -> Vec<u8> {
    let log_records = records
        .iter()
        .enumerate()
        .map(|(i, (severity, body, attrs))| {
            let mut attributes = vec![kv("test", tag), kv("n", &i.to_string())];
            attributes.extend(attrs.iter().map(|(k, v)| kv(k, v)));
            LogRecord {
                time_unix_nano: 1_764_000_000_000_000_000 + i as u64,
                severity_number: *severity,
                body: Some(AnyValue {
                    value: Some(Value::StringValue(body.to_string())),
                }),
                attributes,
                ..Default::default()
            }
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "shop")],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn post_logs(weir: &Weir, body: &[u8]) {
    let r = http_request(
        weir.http,
        "POST",
        "/v1/logs",
        &[("Content-Type", "application/x-protobuf")],
        body,
    )
    .unwrap();
    assert_eq!(r.status, 200);
}

fn options() -> Options {
    Options {
        pipeline: "pipeline:\n  workers: 1\n  sample:\n    logs:\n      rules:\n        - {name: debug-noise, severity: debug, probability: 0}\n  redact: {enabled: true}\n".into(),
        ..Options::default()
    }
}

/// `weir tap` as an operator runs it; its stdout lines arrive on the channel.
struct Tap {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Tap {
    fn start(weir: &Weir, args: &[&str]) -> Tap {
        let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("tap")
            .arg("--admin")
            .arg(format!("http://{}", weir.admin))
            .args(args)
            .env_remove("WEIR_ADMIN_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Tap { child, lines }
    }

    fn next(&self) -> Option<String> {
        self.lines.recv_timeout(Duration::from_secs(10)).ok()
    }

    /// Lines until `done` holds for the ones read, or 10 s.
    fn until(&self, done: impl Fn(&[Json]) -> bool) -> Vec<Json> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        while !done(&got) && Instant::now() < deadline {
            if let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
                got.push(serde_json::from_str(&l).unwrap());
            }
        }
        got
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find<'a>(lines: &'a [Json], point: &str, n: &str) -> Vec<&'a Json> {
    lines
        .iter()
        .filter(|l| l["point"] == point)
        .filter(|l| {
            l["log_record"]["attributes"].as_array().is_none_or(|a| {
                a.iter()
                    .any(|kv| kv["key"] == "n" && kv["value"]["stringValue"] == n)
            })
        })
        .collect()
}

#[test]
fn tap_shows_each_records_fate_and_exports_nothing_of_its_own() {
    let weir = Weir::start_with(options());
    let tap = Tap::start(
        &weir,
        &[
            "--format",
            "json",
            "--attribute",
            "test=fates",
            "--rate",
            "100",
        ],
    );
    let hello: Json = serde_json::from_str(&tap.next().expect("tap attached line")).unwrap();
    assert_eq!(hello["tap"], "attached");

    // Another test's traffic: not what this tap asked for.
    post_logs(&weir, &logs("other", &[(9, "unrelated", &[])]));
    post_logs(
        &weir,
        &logs(
            "fates",
            &[
                (5, "cache miss", &[]),
                (9, "signed in", &[("user.email", "ann@example.com")]),
                (13, "order paid", &[]),
            ],
        ),
    );
    let lines = tap.until(|l| l.iter().filter(|l| l["point"] == "export").count() >= 2);
    let dump = || format!("{lines:#?}");

    assert_eq!(
        find(&lines, "receive", "0").len()
            + find(&lines, "receive", "1").len()
            + find(&lines, "receive", "2").len(),
        3,
        "{}",
        dump()
    );
    let dropped: Vec<&Json> = lines.iter().filter(|l| l["fate"] == "dropped").collect();
    assert_eq!(dropped.len(), 1, "{}", dump());
    assert_eq!(dropped[0]["point"], "sample");
    assert_eq!(dropped[0]["reason"], "log rule debug-noise");

    let changed: Vec<&Json> = lines.iter().filter(|l| l["fate"] == "changed").collect();
    assert_eq!(changed.len(), 1, "{}", dump());
    assert_eq!(changed[0]["point"], "redact");
    assert_eq!(
        changed[0]["changed"],
        serde_json::json!(["attributes.user.email"])
    );
    assert!(
        changed[0]["reason"].as_str().unwrap().contains("email"),
        "{}",
        dump()
    );
    assert!(
        !changed[0].to_string().contains("ann@example.com"),
        "the tap shows the redacted value"
    );

    let exported: Vec<&Json> = lines.iter().filter(|l| l["point"] == "export").collect();
    assert_eq!(exported.len(), 2, "{}", dump());
    assert!(exported
        .iter()
        .all(|l| l["exporter"] == "out" && l["service"] == "shop"));
    assert!(lines
        .iter()
        .all(|l| l["log_record"]["body"]["stringValue"] != "unrelated"));

    assert_eq!(weir.wait_for(3, Weir::log_count), 3);
    let written = std::fs::read_dir(&weir.data)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<String>();
    assert!(written.contains("order paid"));
    assert!(
        !written.contains("weir.tap"),
        "the tap's mark never leaves the chain"
    );
}

#[test]
fn tap_needs_the_admin_token_when_one_is_set_and_stops_at_its_limit() {
    let weir = Weir::start_with(Options {
        admin_extra: ", token: s3cret".into(),
        ..options()
    });
    let denied = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["tap", "--admin", &format!("http://{}", weir.admin)])
        .env_remove("WEIR_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(denied.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("401"),
        "{denied:?}"
    );

    let tap = Tap::start(
        &weir,
        &["--token", "s3cret", "--point", "receive", "--limit", "2"],
    );
    assert!(tap.next().unwrap().contains("tap attached"));
    let records: Vec<Record<'_>> = (0..5).map(|_| (9, "hello", &[][..])).collect();
    post_logs(&weir, &logs("limit", &records));
    let human: Vec<String> = std::iter::from_fn(|| tap.next()).collect();
    assert_eq!(human.len(), 2, "--limit 2 stops after two lines: {human:?}");
    assert!(
        human
            .iter()
            .all(|l| l.contains("receive") && l.contains("received") && l.contains("shop")),
        "{human:?}"
    );
}

#[test]
fn top_draws_live_rates_in_a_real_terminal() {
    assert!(
        Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success()),
        "tmux is needed (scripts/test.sh installs it)"
    );
    let weir = Weir::start_with(options());
    let session = format!("weir-top-{}", std::process::id());
    let started = Command::new("tmux")
        .args(["new-session", "-d", "-s", &session, "-x", "150", "-y", "60"])
        .arg(format!(
            "{} top --admin http://{} --interval 0.5",
            env!("CARGO_BIN_EXE_weir"),
            weir.admin
        ))
        .status()
        .unwrap();
    assert!(started.success());
    let kill = || {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &session])
            .status();
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut screen = String::new();
    while Instant::now() < deadline {
        post_logs(&weir, &logs("top", &[(9, "tick", &[]), (5, "noise", &[])]));
        std::thread::sleep(Duration::from_millis(100));
        screen = String::from_utf8_lossy(
            &Command::new("tmux")
                .args(["capture-pane", "-p", "-t", &session])
                .output()
                .unwrap()
                .stdout,
        )
        .into_owned();
        let accepting = screen
            .lines()
            .find(|l| l.contains("logs/http"))
            .is_some_and(|l| l.split_whitespace().nth(1).is_some_and(|r| r != "0"));
        if accepting && screen.contains("debug-noise") {
            break;
        }
    }
    kill();
    for part in [
        "RECEIVERS",
        "MEMORY",
        "EXPORTERS",
        "out/logs",
        "QUEUES",
        "intake/logs",
        "sampled out",
    ] {
        assert!(
            screen.contains(part),
            "{part} missing from the screen:\n{screen}"
        );
    }
    let rate = screen
        .lines()
        .find(|l| l.contains("logs/http"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_string));
    assert!(
        rate.is_some_and(|r| r != "0"),
        "a live accepted rate:\n{screen}"
    );
    assert!(screen.contains("debug-noise"), "drops by rule:\n{screen}");

    let once = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "top",
            "--once",
            "--interval",
            "0.2",
            "--admin",
            &format!("http://{}", weir.admin),
        ])
        .output()
        .unwrap();
    assert!(once.status.success());
    assert!(String::from_utf8_lossy(&once.stdout).contains("RECEIVERS"));
    let unreachable = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["top", "--once", "--admin", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("cannot reach"));
}
