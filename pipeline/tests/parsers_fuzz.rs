//! Property tests for the trace-context parsers: arbitrary input never panics; whatever parses is a
//! valid context; a context written back in each format parses to itself.

use proptest::prelude::*;
use weir_pipeline::stages::context::{amzn, b3_single, hex_ids, traceparent, uber, Context};
use weir_pipeline::stages::tracestate;

fn valid(c: &Context) -> bool {
    c.trace_id.iter().any(|b| *b != 0) && c.span_id.iter().any(|b| *b != 0)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("WEIR_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
    ))]

    #[test]
    fn arbitrary_input_never_panics_and_only_valid_contexts_parse(s in ".{0,120}") {
        let parsed = [traceparent(&s), b3_single(&s), uber(&s), amzn(&s), hex_ids(&s, &s, Some(&s))];
        for c in parsed.iter().flatten() {
            prop_assert!(valid(c));
        }
        let _ = tracestate::normalize(&s);
    }

    #[test]
    fn near_valid_input_never_panics(s in "[0-9a-fA-F:;=\\-]{0,80}") {
        let _ = (traceparent(&s), b3_single(&s), uber(&s), amzn(&s));
    }

    #[test]
    fn every_format_round_trips(trace in any::<[u8; 16]>(), span in any::<[u8; 8]>(), sampled in any::<bool>()) {
        prop_assume!(trace.iter().any(|b| *b != 0) && span.iter().any(|b| *b != 0));
        let (t, s, f) = (hex(&trace), hex(&span), u8::from(sampled));
        let want = Context { trace_id: trace, span_id: span, flags: Some(f) };
        prop_assert_eq!(traceparent(&format!("00-{t}-{s}-0{f}")), Ok(want));
        prop_assert_eq!(b3_single(&format!("{t}-{s}-{f}")), Ok(want));
        prop_assert_eq!(uber(&format!("{t}:{s}:0:{f}")), Ok(want));
        prop_assert_eq!(amzn(&format!("Root=1-{}-{};Parent={s};Sampled={f}", &t[..8], &t[8..])), Ok(want));
        prop_assert_eq!(hex_ids(&t.to_uppercase(), &s, Some(&format!("0{f}"))), Ok(want));
    }

    #[test]
    fn tracestate_output_is_valid_and_stable(s in "([a-z][a-z0-9_]{0,6}=[ -~]{0,8},?){0,40}") {
        let once = tracestate::normalize(&s).unwrap_or_else(|| s.clone());
        prop_assert!(once.len() <= 512);
        prop_assert!(once.split(',').filter(|m| !m.is_empty()).count() <= 32);
        prop_assert_eq!(tracestate::normalize(&once), None, "normalising is idempotent");
    }
}
