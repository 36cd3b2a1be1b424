use super::*;
use crate::stages::redact::scanner::{builtin, Scanner};
use proptest::prelude::*;
use weir_config::redact::{Detectors, PatternRule, RedactConfig, Switch};

const NAMES: [&str; 11] = [
    "jwt",
    "secret_token",
    "credentials",
    "secret_assignment",
    "aws_access_key",
    "email",
    "iban",
    "credit_card",
    "us_ssn",
    "ipv6",
    "ipv4",
];

fn all_detectors() -> Scanner {
    Scanner::compile(&RedactConfig::default())
        .unwrap()
        .expect("detectors on")
}

/// A scanner with `only` on and every other detector off.
fn only(name: &str) -> Scanner {
    let mut c = RedactConfig::default();
    let off = |n: &str| {
        if n == name {
            Switch::On(weir_config::redact::Action::Mask)
        } else {
            Switch::Off
        }
    };
    c.detectors = Detectors {
        credit_card: off("credit_card"),
        email: off("email"),
        ipv4: off("ipv4"),
        ipv6: off("ipv6"),
        jwt: off("jwt"),
        credentials: off("credentials"),
        aws_access_key: off("aws_access_key"),
        secret_token: off("secret_token"),
        secret_assignment: off("secret_assignment"),
        us_ssn: off("us_ssn"),
        iban: off("iban"),
    };
    Scanner::compile(&c).unwrap().expect("one detector on")
}

/// A detector's own regex as a generator: without its word boundaries (which only narrow what it
/// matches, so every string it matches is still generated) and with its value group unnamed.
fn generator(name: &str) -> String {
    builtin(name).replace(r"\b", "").replace("(?P<v>", "(")
}

/// Every string a detector's regex can match, inside any context, gets a "maybe", from a scanner
/// with every detector and from one with that detector alone: 3 000 strings per detector, half of
/// them in contexts without digits or punctuation, where a wrong count shows.
#[test]
fn whatever_a_detector_matches_is_never_ruled_out() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let all = all_detectors();
    for name in NAMES {
        let alone = only(name);
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
        let mut runner = TestRunner::new_with_rng(Config::default(), rng);
        let strategy = (
            proptest::string::string_regex(&generator(name)).unwrap(),
            prop_oneof!["[ -~]{0,12}", "[a-z ]{0,6}"],
            prop_oneof!["[ -~]{0,12}", "[a-z ]{0,6}"],
        );
        for _ in 0..3000 {
            let (matched, before, after) = strategy.new_tree(&mut runner).unwrap().current();
            let text = format!("{before}{matched}{after}");
            assert!(all.prefilter().might_match(&text), "{name}: {text:?}");
            assert!(
                alone.prefilter().might_match(&text),
                "{name} alone: {text:?}"
            );
        }
    }
}

#[test]
fn each_detector_s_shortest_matches_get_a_maybe() {
    let all = all_detectors();
    for text in [
        "eyJaaaaa.eyJaaaaa.aaaaa",
        "ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "AIzaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "bearer aaaaaaaa",
        "pwd:x",
        "AKIAAAAAAAAAAAAAAAAA",
        "a@b.cc",
        "GB82WEST12345698765432",
        "4111111111111111",
        "123-45-6789",
        "::1",
        "1.2.3.4",
    ] {
        assert!(all.any_regex_matches(text), "{text:?} is a match");
        assert!(all.prefilter().might_match(text), "{text:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Against the real multi-pattern regex, on strings dense in what detectors look for: whenever
    /// it matches anywhere, the prefilter said "maybe".
    #[test]
    fn a_regex_match_always_gets_a_maybe(
        text in "([0-9]{1,4}|[.:@=_ -]|[aAbBeEyYJKIkSsZz]|bearer |Basic |eyJ|AKIA|token|AIza|xoxb-|ghp_|-----BEGIN ){0,30}",
    ) {
        let scanner = all_detectors();
        if scanner.any_regex_matches(&text) {
            prop_assert!(scanner.prefilter().might_match(&text), "{text:?}");
        }
    }
}

#[test]
fn ordinary_values_are_ruled_out_without_the_dfa() {
    let p = all_detectors();
    for text in [
        "",
        "GET",
        "https",
        "/api/v1/orders/123456",
        "checkout.internal.example.com",
        "1.1",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
        "request served cache miss database batch flush",
        "ip-10-0-2-17.ec2.internal",
    ] {
        assert!(!p.prefilter().might_match(text), "{text:?} should need no scan");
        assert!(!p.any_regex_matches(text), "{text:?} really holds nothing");
    }
    for text in [
        "10.1.2.3",
        "from 1.2.3.4.",
        "mail bob@example.org",
        "Authorization: Bearer abcdefgh12345678",
        "password=hunter2",
        "card 4111 1111 1111 1111",
        "AKIAABCDEFGHIJKLMNOP",
        "2001:db8::1",
        "naïve",
    ] {
        assert!(p.prefilter().might_match(text), "{text:?} must be scanned");
    }
}

#[test]
fn a_user_pattern_turns_the_prefilter_off() {
    let mut c = RedactConfig::default();
    c.patterns.push(PatternRule {
        name: "order".into(),
        regex: "ord-[0-9]+".into(),
        action: weir_config::redact::Action::Mask,
    });
    let scanner = Scanner::compile(&c).unwrap().unwrap();
    assert!(scanner.prefilter().might_match("GET"));
}

#[test]
fn a_dotted_quad_is_found_wherever_it_ends() {
    assert!(has_dotted_quad(b"1.2.3.4"));
    assert!(
        has_dotted_quad(b"at 1.2.3.4.x"),
        "a trailing dot still ends a quad"
    );
    assert!(has_dotted_quad(b"v9.1.2.3.4 "));
    assert!(!has_dotted_quad(b"1..2.3.4"));
    assert!(!has_dotted_quad(b"537.36 (KHTML) 131.0"));
}

#[test]
fn digit_runs_and_iban_starts() {
    assert!(has_digit_run(b"card 4111 1111 1111 1111", 13));
    assert!(has_digit_run(b"5500-0000-0000-0004.", 13));
    assert!(
        !has_digit_run(b"4111  1111 1111 1111", 13),
        "two separators break a run"
    );
    assert!(!has_digit_run(b"x86_64 537.36 131.0 537.36", 13));
    assert!(has_caps_then_digits(b"iban GB82 WEST"));
    assert!(!has_caps_then_digits(b"KHTML X11 Gecko"));
}
