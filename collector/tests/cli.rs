//! The command line: `weir check`, `weir default-config`, and `weir` with no arguments.

mod common;

use common::{free_addrs, http_request};
use std::process::Command;
use std::time::{Duration, Instant};

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

/// `weir check --config <path>`.
fn check(path: impl AsRef<std::path::Path>) -> Command {
    let mut c = weir();
    c.arg("check").arg("--config").arg(path.as_ref());
    c
}

#[test]
fn check_accepts_valid_configs_and_every_example() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let out = check(&path)
                .env("WEIR_REDACT_KEY", "example-key")
                .env("TEAM_A_TOKEN", "example-a")
                .env("TEAM_B_TOKEN", "example-b")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(String::from_utf8_lossy(&out.stdout).starts_with("config OK"));
            checked += 1;
        }
    }
    assert!(checked >= 1);
}

#[test]
fn the_gateway_examples_commented_spill_variant_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/gateway.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let uncommented = text
        .replace("# durable:", "durable:")
        .replace("#   dir:", "  dir:")
        .replace(
            "    # queue: {overflow: spill",
            "    queue: {overflow: spill",
        );
    assert!(uncommented.contains("\ndurable:\n  dir:"));
    assert_eq!(
        uncommented.matches("\n    queue: {overflow: spill").count(),
        2
    );
    let dir = tempfile::tempdir().unwrap();
    let variant = dir.path().join("gateway-spill.yaml");
    std::fs::write(&variant, uncommented).unwrap();
    let out = check(&variant).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_refuses_a_durable_dir_that_is_a_file_without_creating_anything() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let config = dir.path().join("weir.yaml");
    let write = |wal: &std::path::Path| {
        std::fs::write(
            &config,
            format!(
                "durable: {{dir: \"{}\"}}\nexporters:\n  b: {{blackhole: {{}}}}\n",
                wal.display()
            ),
        )
        .unwrap()
    };
    write(&file.join("wal"));
    let out = check(&config).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("durable.dir") && err.contains("not a directory"),
        "{err}"
    );
    let fresh = dir.path().join("new/wal");
    write(&fresh);
    let out = check(&config).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!fresh.exists(), "check creates nothing");
}

#[test]
fn check_names_a_missing_redaction_hash_key() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/redaction.yaml");
    let out = check(path).env_remove("WEIR_REDACT_KEY").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pipeline.redact.hash.key_env") && err.contains("WEIR_REDACT_KEY"),
        "{err}"
    );
}

#[test]
fn check_rejects_bad_configs_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "exporters:\n  out:\n    file:\n      path: /tmp/x\n      rotate_byts: 1MiB\n",
    )
    .unwrap();
    let out = check(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:5"), "{err}");
    assert!(err.contains("exporters.out.file"), "{err}");
    assert!(err.contains("rotate_byts"), "{err}");

    let out = check(dir.path().join("missing.yaml")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));

    // Running (not just checking) a bad config fails fast with the reason too.
    let out = weir().arg("--config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn default_config_is_the_shipped_example() {
    let out = weir().arg("default-config").output().unwrap();
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/default.yaml"
    ))
    .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), shipped);
}

#[test]
fn no_arguments_runs_the_embedded_default_reading_env_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let [grpc, http, admin] = free_addrs::<3>();
    let mut child = weir()
        .current_dir(dir.path())
        .env("WEIR_GRPC_ADDR", grpc.to_string())
        .env("WEIR_HTTP_ADDR", http.to_string())
        .env("WEIR_ADMIN_ADDR", admin.to_string())
        .env_remove("WEIR_DATA_DIR")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http_request(admin, "GET", "/readyz", &[], b"")
        .map(|r| r.status)
        .ok()
        != Some(200)
    {
        assert!(Instant::now() < deadline, "not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let body = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"hello weir"}}]}]}]}"#;
    let r = http_request(
        http,
        "POST",
        "/v1/logs",
        &[("Content-Type", "application/json")],
        body,
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"{}");
    let out = dir.path().join("weir-data/logs.jsonl");
    while !std::fs::read_to_string(&out)
        .unwrap_or_default()
        .contains("hello weir")
    {
        assert!(Instant::now() < deadline, "no output at {}", out.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    assert!(child.wait().unwrap().success());
}
