//! `weir-loadtest` sweeps a real `weir` with the blackhole exporter: it climbs until the target (on this
//! 2-core box, in a debug build) saturates, within its time bound, accounts for every item, and writes
//! its JSON and SVG reports.

mod common;

use clap::Parser;
use common::{Options, Weir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_finds_the_saturation_point_and_writes_its_reports() {
    let weir = Weir::start_with(Options {
        destination: Some("    blackhole: {}".into()),
        ..Options::default()
    });
    let out = weir.dir.path().join("report");
    let endpoint = weir.grpc_url();
    let metrics = format!("http://{}/metrics", weir.admin);
    let pid = weir.child.id().to_string();
    let args = [
        "weir-loadtest",
        "--mode",
        "sweep",
        "--endpoint",
        &endpoint,
        "--start-rate",
        "5000",
        "--factor",
        "2",
        "--max-steps",
        "12",
        "--step-duration",
        "2",
        "--settle",
        "0.3",
        "--slo-p99-ms",
        "500",
        "--batch",
        "200",
        "--pid",
        &pid,
        "--metrics-url",
        &metrics,
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    let started = std::time::Instant::now();
    let report = weir_loadtest::run(&weir_loadtest::Options::try_parse_from(args).unwrap())
        .await
        .unwrap();
    let took = started.elapsed();
    println!("{}", report.summary());
    assert!(took.as_secs() < 120, "sweep took {took:?}");
    assert!(
        report.saturation.is_some(),
        "a saturation point within 12 doublings"
    );
    let best = report
        .highest_sustainable_rate
        .expect("5000/s is sustainable");
    assert!(best >= 5000.0);
    let last = report.steps.last().unwrap();
    assert_eq!(last.passed, Some(false));
    for step in &report.steps {
        let t = step.target.as_ref().expect("the target was observed");
        assert!(t.cpu_percent.unwrap() > 0.0 && t.rss_mb.unwrap() > 1.0);
        if step.passed == Some(true) {
            assert_eq!(step.accepted_items, step.sent_items);
        }
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["mode"], "sweep");
    assert_eq!(json["steps"].as_array().unwrap().len(), report.steps.len());
    let svg = std::fs::read_to_string(out.join("report.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("polyline") && svg.trim_end().ends_with("</svg>")
    );
    let exported = weir.metric("weir_exporter_sent_items_total", &[]);
    let accepted: u64 = report.steps.iter().map(|s| s.accepted_items).sum();
    assert!(
        exported <= accepted as f64 && exported > 0.0,
        "weir exported {exported} of {accepted} accepted"
    );
}
