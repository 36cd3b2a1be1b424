use super::attributes::{regex_of, unicode_classes};

#[test]
fn migrate_tail_regexes_join_as_grouped_alternatives() {
    let one = regex_of(&["^/health".into()]).unwrap();
    assert_eq!(one, "^/health");
    let re = regex_of(&[r"\/health".into(), "metrics$".into()]).unwrap();
    assert_eq!(re, r"(?:\/health)|(?:metrics$)");
    let re = regex::Regex::new(&re).unwrap();
    assert!(
        re.is_match("/v1/health/live"),
        "unanchored, like Go's MatchString"
    );
    assert!(re.is_match("/internal/metrics"));
    assert!(
        !re.is_match("/metrics/x"),
        "`$` anchors only its own alternative"
    );
    // Go reads `\Q…\E` and octal escapes; Rust's regex does not, so the policy is reported.
    assert!(regex_of(&[r"\Q*\E".into()]).is_err());
}

#[test]
fn migrate_tail_finds_perl_classes_that_differ_from_go() {
    assert_eq!(unicode_classes(r"^/v\d+/\w+\b"), [r"\d", r"\w", r"\b"]);
    assert!(
        unicode_classes(r"\\d[0-9]\.").is_empty(),
        "an escaped backslash, then d"
    );
}
