//! Fuzzing the config loader: arbitrary text and every shipped example with bytes flipped, lines
//! dropped or keys renamed either loads or fails with an error that names the file; it never panics.
//! Case counts scale with `WEIR_FUZZ_CASES`.

use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("WEIR_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn examples() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    out.sort();
    out
}

/// The one variable an example reads without a default; the others keep their defaults.
fn lookup(name: &str) -> Option<String> {
    (name == "WEIR_DATA_DIR").then(|| "/tmp/weir-fuzz".to_string())
}

fn check(text: &str) -> Result<(), TestCaseError> {
    if let Err(e) = weir_config::parse(text, "fuzz.yaml", lookup) {
        let message = e.to_string();
        prop_assert!(message.contains("fuzz.yaml"), "{message}");
    }
    Ok(())
}

fn mutated() -> impl Strategy<Value = String> {
    let n = examples().len();
    (
        0..n,
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        prop::option::of(any::<prop::sample::Index>()),
        prop::option::of((any::<prop::sample::Index>(), "[a-z_]{1,10}")),
    )
        .prop_map(|(which, flips, drop_line, rename)| {
            let mut text = examples().swap_remove(which);
            if let Some(at) = drop_line {
                let mut lines: Vec<&str> = text.lines().collect();
                if !lines.is_empty() {
                    lines.remove(at.index(lines.len()));
                }
                text = lines.join("\n");
            }
            if let Some((at, key)) = rename {
                let mut lines: Vec<String> = text.lines().map(String::from).collect();
                if !lines.is_empty() {
                    let i = at.index(lines.len());
                    if let Some(colon) = lines[i].find(':') {
                        let indent = lines[i].len() - lines[i].trim_start().len();
                        if indent <= colon {
                            lines[i] =
                                format!("{}{key}{}", &lines[i][..indent], &lines[i][colon..]);
                        }
                    }
                }
                text = lines.join("\n");
            }
            let mut bytes = text.into_bytes();
            for (at, v) in flips {
                if !bytes.is_empty() {
                    let i = at.index(bytes.len());
                    bytes[i] = v;
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        check(&text)?;
    }

    #[test]
    fn yaml_shaped_text_never_panics(text in "([a-z_]{1,12}: ?(\\{|\\[|[0-9a-zA-Z$:{}/.\"-]{0,20}|\\}|\\])\n {0,6}){0,30}") {
        check(&text)?;
    }

    #[test]
    fn mutated_examples_never_panic(text in mutated()) {
        check(&text)?;
    }
}

#[test]
fn a_type_error_names_its_key_path_once() {
    let text =
        "exporters:\n  b: {blackhole: {}}\npipeline:\n  sample:\n    traces: {probability: x}\n";
    let e = weir_config::parse(text, "fuzz.yaml", lookup)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e.matches("pipeline.sample.traces.probability").count(),
        1,
        "{e}"
    );
}

#[test]
fn every_example_loads_unmutated() {
    for text in examples() {
        weir_config::parse(&text, "fuzz.yaml", lookup).unwrap_or_else(|e| panic!("{e}"));
    }
}
