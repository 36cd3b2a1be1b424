//! Live policy reload: `POST /admin/reload` and SIGHUP swap the sampling policy while traffic flows;
//! an invalid file is refused with its reason and the old policy keeps running; every item is either
//! exported or counted as sampled out by the version in force — none unaccounted.

mod common;

use common::{http_request, Options, Weir};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn logs_body(n: usize, tag: &str) -> Vec<u8> {
    let records: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"timeUnixNano":"{}","body":{{"stringValue":"{tag} {i}"}}}}"#,
                1_764_000_000_000_000_000u64 + i as u64
            )
        })
        .collect();
    format!(
        r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{}]}}]}}]}}"#,
        records.join(",")
    )
    .into_bytes()
}

fn send(weir: &Weir, n: usize, tag: &str) {
    let r = http_request(
        weir.http,
        "POST",
        "/v1/logs",
        &[("Content-Type", "application/json")],
        &logs_body(n, tag),
    )
    .unwrap();
    assert_eq!(r.status, 200);
}

fn set_probability(weir: &Weir, p: &str) {
    let path = weir.dir.path().join("weir.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find("default_probability: ").unwrap() + "default_probability: ".len();
    let end = start + text[start..].find('}').unwrap();
    std::fs::write(&path, format!("{}{p}{}", &text[..start], &text[end..])).unwrap();
}

fn reload(weir: &Weir) -> (u16, String) {
    let r = http_request(weir.admin, "POST", "/admin/reload", &[], b"").unwrap();
    (r.status, String::from_utf8_lossy(&r.body).to_string())
}

fn sampled_out(weir: &Weir) -> f64 {
    weir.metric("weir_sampled_out_items_total", &["signal=\"logs\""])
}

#[test]
fn reload_swaps_policies_refuses_bad_files_and_accounts_for_every_item() {
    let weir = Weir::start_with(Options {
        // Reloads here are explicit only, so the versions they answer are exact.
        pipeline: "reload: {watch: false}\npipeline:\n  workers: 2\n  sample:\n    logs: {default_probability: 1.0}\n"
            .into(),
        ..Options::default()
    });
    send(&weir, 100, "a");
    assert_eq!(weir.wait_for(100, Weir::log_count), 100);

    set_probability(&weir, "0.0");
    assert_eq!(reload(&weir), (200, "policy version 2\n".into()));
    send(&weir, 100, "b");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        weir.log_count(),
        100,
        "nothing new exported at probability 0"
    );
    assert_eq!(sampled_out(&weir), 100.0);

    set_probability(&weir, "7");
    let (status, body) = reload(&weir);
    assert_eq!(status, 400);
    assert!(
        body.contains("pipeline.sample.logs.default_probability"),
        "{body}"
    );
    assert_eq!(
        weir.metric("weir_policy_version", &[]),
        2.0,
        "the old policy keeps running"
    );

    set_probability(&weir, "1.0");
    let _ = Command::new("kill")
        .arg("-HUP")
        .arg(weir.child.id().to_string())
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while weir.metric("weir_policy_version", &[]) < 3.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        weir.metric("weir_policy_version", &[]),
        3.0,
        "SIGHUP reloads too"
    );
    send(&weir, 50, "c");
    assert_eq!(weir.wait_for(150, Weir::log_count), 150);

    // Under load: a sender keeps going while the policy flips 20 times.
    let weir = Arc::new(weir);
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicUsize::new(0));
    let sender = {
        let (weir, stop, accepted) = (weir.clone(), stop.clone(), accepted.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                send(&weir, 10, &format!("load{i}"));
                accepted.fetch_add(10, Ordering::Relaxed);
                i += 1;
            }
        })
    };
    for flip in 0..20 {
        set_probability(&weir, if flip % 2 == 0 { "0.0" } else { "1.0" });
        assert_eq!(reload(&weir).0, 200);
        std::thread::sleep(Duration::from_millis(30));
    }
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    let total = 250 + accepted.load(Ordering::Relaxed);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let accounted = weir.log_count() + sampled_out(&weir) as usize;
        if accounted == total || std::time::Instant::now() > deadline {
            assert_eq!(accounted, total, "exported + sampled out == accepted");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        sampled_out(&weir) > 100.0 && weir.log_count() > 150,
        "both policies were in force during the load"
    );
    assert_eq!(weir.metric("weir_policy_version", &[]), 23.0);
}

#[test]
fn a_changed_config_file_is_picked_up_and_a_broken_one_refused_once() {
    let weir = Weir::start_with(Options {
        pipeline: "reload: {interval: 100ms}\npipeline:\n  workers: 2\n  sample:\n    logs: {default_probability: 1.0}\n"
            .into(),
        ..Options::default()
    });
    let version = || weir.metric("weir_policy_version", &[]);
    let wait_version = |want: f64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while version() < want && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        version()
    };
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(version(), 1.0, "an unchanged file is not reloaded");

    set_probability(&weir, "0.0");
    assert_eq!(wait_version(2.0), 2.0);
    send(&weir, 40, "dropped");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sampled_out(&weir) < 40.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(sampled_out(&weir), 40.0);

    set_probability(&weir, "-1");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(version(), 2.0, "a broken file leaves the running policy");
    let refusals = weir.log().matches("reload refused").count();
    assert_eq!(
        refusals,
        1,
        "reported once, not every poll:\n{}",
        weir.log()
    );

    set_probability(&weir, "1.0");
    assert_eq!(wait_version(3.0), 3.0);
    send(&weir, 10, "kept");
    assert_eq!(weir.wait_for(10, Weir::log_count), 10);
}

#[test]
fn redaction_rules_swap_live_and_invalid_ones_are_refused() {
    let config = |redact: &str| {
        format!("reload: {{watch: false}}\npipeline:\n  workers: 2\n  redact:\n    enabled: true\n{redact}")
    };
    let weir = Weir::start_with(Options {
        pipeline: config(""),
        ..Options::default()
    });
    let path = weir.dir.path().join("weir.yaml");
    let rewrite = |redact: &str| {
        let text = std::fs::read_to_string(&path).unwrap();
        let start = text.find("reload:").unwrap();
        let end = text.find("exporters:").unwrap();
        std::fs::write(
            &path,
            format!("{}{}{}", &text[..start], config(redact), &text[end..]),
        )
        .unwrap();
    };
    let bodies = |weir: &Weir| -> Vec<String> {
        weir.logs()
            .iter()
            .flat_map(|r| r.resource_logs.clone())
            .flat_map(|r| r.scope_logs)
            .flat_map(|s| s.log_records)
            .filter_map(|r| match r.body?.value? {
                opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s) => Some(s),
                _ => None,
            })
            .collect()
    };
    send(&weir, 1, "mail alice@example.com");
    assert_eq!(weir.wait_for(1, Weir::log_count), 1);
    assert_eq!(bodies(&weir), ["mail **** 0"]);

    rewrite("    patterns:\n      - {name: broken, regex: \"(unclosed\"}\n");
    let (status, body) = reload(&weir);
    assert_eq!(status, 400);
    assert!(body.contains("pipeline.redact.patterns[0].regex"), "{body}");
    send(&weir, 1, "mail bob@example.com");
    assert_eq!(weir.wait_for(2, Weir::log_count), 2);
    assert_eq!(
        bodies(&weir)[1],
        "mail **** 0",
        "the old rules keep running"
    );

    rewrite("    detectors: {email: off}\n");
    assert_eq!(reload(&weir).0, 200);
    send(&weir, 1, "mail carol@example.com");
    assert_eq!(weir.wait_for(3, Weir::log_count), 3);
    assert_eq!(bodies(&weir)[2], "mail carol@example.com 0");
}

fn reload_with(weir: &Weir, token: Option<&str>) -> (u16, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let r = http_request(weir.admin, "POST", "/admin/reload", &headers, b"").unwrap();
    (r.status, String::from_utf8_lossy(&r.body).to_string())
}

/// With `admin.token` set, reloading needs it; metrics and probes stay open.
#[test]
fn reload_needs_the_admin_token_when_one_is_set() {
    let weir = Weir::start_with(Options {
        admin_extra: ", token: \"${WEIR_TEST_ADMIN_TOKEN:-s3cret}\"".into(),
        ..Options::default()
    });
    assert_eq!(reload_with(&weir, None).0, 401);
    assert_eq!(reload_with(&weir, Some("wrong")).0, 401);
    let (status, body) = reload_with(&weir, Some("s3cret"));
    assert_eq!(status, 200, "{body}");
    for path in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(
            http_request(weir.admin, "GET", path, &[], b"")
                .unwrap()
                .status,
            200
        );
    }
}

/// An admin endpoint open beyond loopback with no token never reloads, and says why.
#[test]
fn reload_is_refused_beyond_loopback_without_a_token() {
    let weir = Weir::start_with(Options {
        admin_any_address: true,
        ..Options::default()
    });
    let (status, body) = reload_with(&weir, None);
    assert_eq!(status, 403);
    assert!(body.contains("admin.token"), "{body}");
    assert_eq!(
        http_request(weir.admin, "GET", "/metrics", &[], b"")
            .unwrap()
            .status,
        200
    );
}

/// Fifty reloads at once (each reads the file, parses it and compiles every redaction detector) run
/// one after another off the runtime: ingest goes on meanwhile.
#[test]
fn a_storm_of_reloads_does_not_hold_up_ingest() {
    let weir = Arc::new(Weir::start_with(Options {
        pipeline: "pipeline:\n  workers: 2\n  redact:\n    enabled: true\n    keys:\n      - {key: \"*password*\", action: drop}\n".into(),
        ..Options::default()
    }));
    send(&weir, 10, "warm");
    let done = Arc::new(AtomicBool::new(false));
    let worst = Arc::new(AtomicUsize::new(0));
    let ingest = {
        let (weir, done, worst) = (weir.clone(), done.clone(), worst.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !done.load(Ordering::Acquire) && n < 2000 {
                let start = std::time::Instant::now();
                send(&weir, 10, "during");
                worst.fetch_max(start.elapsed().as_millis() as usize, Ordering::AcqRel);
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let storm: Vec<_> = (0..50)
        .map(|_| {
            let weir = weir.clone();
            std::thread::spawn(move || reload(&weir).0)
        })
        .collect();
    let statuses: Vec<u16> = storm.into_iter().map(|t| t.join().unwrap()).collect();
    done.store(true, Ordering::Release);
    let sent = ingest.join().unwrap();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let worst = worst.load(Ordering::Acquire);
    eprintln!("{sent} ingest requests during 50 reloads; slowest {worst} ms");
    // Measured: 9 ms; 556 ms when reloads ran on the runtime's threads.
    assert!(
        worst < 300,
        "an ingest request waited {worst} ms behind reloads"
    );
}
