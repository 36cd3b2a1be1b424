//! The files under deploy/ cannot run here (no container runtime, no cluster), so this checks what can
//! be checked without one: every Weir container in them, given the environment the image (Dockerfile
//! `ENV`) and the manifest set, has a config that `weir check` accepts; it listens on the ports the
//! manifest exposes, publishes and probes; a pod's grace period outlasts Weir's shutdown deadline;
//! and a sidecar's gateway address names a port the gateway listens on.

use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

type Env = BTreeMap<String, String>;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn docs(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo().join(path)).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect()
}

/// The image's `ENV` instruction, as `KEY=value` pairs (continuation lines joined).
fn image_env() -> Env {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let joined = dockerfile.replace("\\\n", " ");
    let line = joined
        .lines()
        .find(|l| l.starts_with("ENV "))
        .expect("Dockerfile sets ENV");
    line[4..]
        .split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("ENV KEY=value");
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// A path inside the image, as the repository file the Dockerfile copied there.
fn in_repo(image_path: &str) -> PathBuf {
    let rest = image_path
        .strip_prefix("/etc/weir/examples/")
        .unwrap_or_else(|| panic!("{image_path} is not copied into the image"));
    repo().join("examples").join(rest)
}

/// What `weir check` made of the config: the addresses it will listen on, by receiver.
struct Checked {
    listen: BTreeMap<String, String>,
    shutdown_secs: u64,
}

fn check(config: &Path, env: &Env) -> Checked {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["check", "--config"])
        .arg(config)
        .env_clear()
        .envs(env)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: {}{}",
        config.display(),
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let listen = stdout
        .trim()
        .split(", ")
        .filter_map(|part| {
            let (name, addr) = part.rsplit_once(' ')?;
            let name = name.rsplit(' ').next()?;
            ["grpc", "http", "admin"]
                .contains(&name)
                .then(|| (name.to_string(), addr.to_string()))
        })
        .collect();
    let text = std::fs::read_to_string(config).unwrap();
    let parsed = weir_config::parse(&text, "deploy", |k| env.get(k).cloned()).unwrap();
    if parsed.admin.endpoint.starts_with("0.0.0.0:") {
        assert_eq!(
            parsed.admin.token.as_deref(),
            env.get("WEIR_ADMIN_TOKEN").map(String::as_str).or(Some("")),
            "{}: an admin endpoint beyond loopback takes its token from WEIR_ADMIN_TOKEN",
            config.display()
        );
    }
    Checked {
        listen,
        shutdown_secs: parsed.shutdown_timeout.0.as_secs(),
    }
}

fn port(addr: &str) -> u64 {
    addr.rsplit_once(':').unwrap().1.parse().unwrap()
}

fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// Checks one Kubernetes pod spec's Weir container; `configs` maps a mounted file to its text.
fn check_pod(pod: &Value, configs: &BTreeMap<String, String>) -> Checked {
    let weir = pod["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "weir")
        .expect("a container named weir");
    let args: Vec<String> = weir["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(str_of)
        .collect();
    let config = &args[args.iter().position(|a| a == "--config").unwrap() + 1];
    let mut env = image_env();
    for e in weir["env"].as_sequence().into_iter().flatten() {
        let value = match &e["valueFrom"]["secretKeyRef"] {
            Value::Mapping(_) => "from-a-secret".to_string(),
            _ => str_of(&e["value"]),
        };
        env.insert(str_of(&e["name"]), value);
    }
    assert_eq!(
        env.get("WEIR_ADMIN_TOKEN").map(String::as_str),
        Some("from-a-secret"),
        "the admin token comes from a Secret"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = match configs.get(config) {
        Some(text) => {
            let p = dir.path().join("weir.yaml");
            std::fs::write(&p, text).unwrap();
            p
        }
        None => in_repo(config),
    };
    let checked = check(&path, &env);
    let ports: BTreeMap<String, u64> = weir["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| (str_of(&p["name"]), p["containerPort"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        ports.get("admin"),
        Some(&port(&checked.listen["admin"])),
        "{config}: the probes' port is the admin endpoint"
    );
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        assert_eq!(weir[probe]["httpGet"]["path"], path, "{config}: {probe}");
        assert_eq!(weir[probe]["httpGet"]["port"], "admin", "{config}: {probe}");
    }
    for (name, receiver) in [("otlp-grpc", "grpc"), ("otlp-http", "http")] {
        if let Some(p) = ports.get(name) {
            assert_eq!(*p, port(&checked.listen[receiver]), "{config}: {name}");
            assert!(
                checked.listen[receiver].starts_with("0.0.0.0:"),
                "{config}: {name} is exposed, so the receiver listens beyond loopback"
            );
        }
    }
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
    assert!(
        grace > checked.shutdown_secs,
        "{config}: grace {grace}s must outlast shutdown_timeout {}s",
        checked.shutdown_secs
    );
    checked
}

#[test]
fn kubernetes_gateway_and_sidecar_manifests_agree_with_their_configs() {
    let gateway = docs("deploy/kubernetes/gateway.yaml");
    let service = gateway.iter().find(|d| d["kind"] == "Service").unwrap();
    assert_eq!(service["spec"]["clusterIP"], "None", "headless");
    let deployment = gateway.iter().find(|d| d["kind"] == "Deployment").unwrap();
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["template"]["metadata"]["labels"]
    );
    let gw = check_pod(&deployment["spec"]["template"]["spec"], &BTreeMap::new());
    for p in service["spec"]["ports"].as_sequence().unwrap() {
        let receiver = if p["name"] == "otlp-grpc" {
            "grpc"
        } else {
            "http"
        };
        assert_eq!(p["port"].as_u64(), Some(port(&gw.listen[receiver])));
    }

    let sidecar = docs("deploy/kubernetes/sidecar.yaml");
    let map = sidecar.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    let workload = sidecar.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let pod = &workload["spec"]["template"]["spec"];
    let weir = pod["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "weir")
        .unwrap();
    let mount = weir["volumeMounts"][0]["mountPath"].as_str().unwrap();
    let volume = &pod["volumes"][0];
    assert_eq!(volume["name"], weir["volumeMounts"][0]["name"]);
    assert_eq!(volume["configMap"]["name"], map["metadata"]["name"]);
    let configs: BTreeMap<String, String> = map["data"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (format!("{mount}/{}", str_of(k)), str_of(v)))
        .collect();
    let side = check_pod(pod, &configs);
    // The application beside it sends to the sidecar's receiver.
    let app = &pod["containers"][0];
    let endpoint = str_of(&app["env"][0]["value"]);
    assert!(
        endpoint.ends_with(&side.listen["grpc"]),
        "app sends to {endpoint}, sidecar listens on {}",
        side.listen["grpc"]
    );
    let gateway_env = weir["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "WEIR_GATEWAY")
        .map(|e| str_of(&e["value"]))
        .unwrap();
    assert_eq!(
        gateway_env,
        format!(
            "{}.{}.svc.cluster.local:{}",
            str_of(&service["metadata"]["name"]),
            str_of(&service["metadata"]["namespace"]),
            port(&gw.listen["grpc"])
        ),
        "the sidecar resolves the gateway's headless Service"
    );
}

#[test]
fn compose_topology_agrees_with_its_configs() {
    let compose = docs("deploy/compose/docker-compose.yaml").remove(0);
    let services = compose["services"].as_mapping().unwrap();
    let mut listening = BTreeMap::new();
    for (name, svc) in services {
        if svc.get("build").is_none() {
            continue;
        }
        let name = str_of(name);
        assert_eq!(svc["build"]["dockerfile"], "Dockerfile");
        let command: Vec<String> = svc["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(str_of)
            .collect();
        let mut env = image_env();
        for (k, v) in svc["environment"].as_mapping().into_iter().flatten() {
            env.insert(str_of(k), str_of(v));
        }
        let checked = check(&in_repo(&command[1]), &env);
        for published in svc["ports"].as_sequence().into_iter().flatten() {
            let inside: u64 = str_of(published)
                .rsplit(':')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert!(
                checked
                    .listen
                    .values()
                    .any(|a| port(a) == inside && a.starts_with("0.0.0.0:")),
                "{name}: publishes {inside}, listens on {:?}",
                checked.listen
            );
        }
        listening.insert(name, (env, checked));
    }
    let (sidecar_env, _) = &listening["sidecar"];
    let (host, gw_port) = sidecar_env["WEIR_GATEWAY"].split_once(':').unwrap();
    let (_, gateway) = &listening[host];
    assert_eq!(
        gw_port.parse::<u64>().unwrap(),
        port(&gateway.listen["grpc"]),
        "the sidecar forwards to the gateways' gRPC port"
    );
    let (gateway_env, _) = &listening["gateway"];
    let clickhouse = gateway_env["CLICKHOUSE_URL"].clone();
    assert!(
        services.contains_key(Value::from(
            clickhouse
                .trim_start_matches("http://")
                .split(':')
                .next()
                .unwrap()
        )),
        "{clickhouse} names a service of the topology"
    );
}
