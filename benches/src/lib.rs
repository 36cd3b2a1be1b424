//! Criterion benchmarks for Weir live under `benches/`; run them with `cargo bench -p weir-benches`.
