//! W3C `tracestate` validation: at most 32 list members, each `key=value` with the spec's grammar, no
//! duplicate keys, at most 512 characters. Invalid members are removed; an over-long list loses whole
//! members, largest first. A span never leaves Weir with a broken `tracestate`.

const MAX_MEMBERS: usize = 32;
const MAX_LEN: usize = 512;

fn key_char(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'*' | b'/')
}

fn valid_key(k: &str) -> bool {
    let b = k.as_bytes();
    match k.split_once('@') {
        None => {
            !b.is_empty()
                && b.len() <= 256
                && b[0].is_ascii_lowercase()
                && b.iter().all(|c| key_char(*c))
        }
        Some((tenant, system)) => {
            let (t, s) = (tenant.as_bytes(), system.as_bytes());
            !t.is_empty()
                && t.len() <= 241
                && (t[0].is_ascii_lowercase() || t[0].is_ascii_digit())
                && t.iter().all(|c| key_char(*c))
                && !s.is_empty()
                && s.len() <= 14
                && s[0].is_ascii_lowercase()
                && s.iter().all(|c| key_char(*c))
        }
    }
}

fn valid_value(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && b.iter()
            .all(|c| (0x20..=0x7e).contains(c) && *c != b',' && *c != b'=')
        && b[b.len() - 1] != b' '
}

/// The valid form of `state`, or `None` when it is valid already (the common case allocates nothing).
pub fn normalize(state: &str) -> Option<String> {
    if state.is_empty() {
        return None;
    }
    let mut members: Vec<&str> = Vec::with_capacity(MAX_MEMBERS.min(8));
    let mut changed = false;
    for raw in state.split(',') {
        let m = raw.trim_matches(|c| c == ' ' || c == '\t');
        if m.len() != raw.len() {
            changed = true;
        }
        if m.is_empty() {
            continue;
        }
        if members.len() == MAX_MEMBERS {
            // Everything past the limit goes; stopping here keeps the duplicate check below at most
            // 32 comparisons per member, whatever a client sends (100 000 members cost 40 s before).
            changed = true;
            break;
        }
        let ok = m.split_once('=').is_some_and(|(k, v)| {
            valid_key(k)
                && valid_value(v)
                && !members
                    .iter()
                    .any(|o| o.split_once('=').map(|x| x.0) == Some(k))
        });
        if ok {
            members.push(m);
        } else {
            changed = true;
        }
    }
    let len = |m: &[&str]| m.iter().map(|s| s.len()).sum::<usize>() + m.len().saturating_sub(1);
    while len(&members) > MAX_LEN {
        let largest = members
            .iter()
            .enumerate()
            .max_by_key(|(_, m)| m.len())
            .map(|(i, _)| i)
            .unwrap_or(0);
        members.remove(largest);
        changed = true;
    }
    changed.then(|| members.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_states_are_left_alone() {
        assert_eq!(normalize("ot=th:8,congo=t61rcWkgMzE"), None);
        assert_eq!(normalize("tenant@system=v,a-b*c/d=1"), None);
        assert_eq!(normalize(""), None);
    }

    #[test]
    fn invalid_members_duplicates_and_excess_are_removed() {
        assert_eq!(
            normalize("ok=1,Bad=2,x=has,comma"),
            Some("ok=1,x=has".into())
        );
        assert_eq!(normalize("a=1, a=2 ,b=3"), Some("a=1,b=3".into()));
        assert_eq!(
            normalize("a=1,b=spaced "),
            Some("a=1,b=spaced".into()),
            "white space around members is trimmed"
        );
        assert_eq!(normalize("a=1,b=x y=z"), Some("a=1".into()));
        let many: Vec<String> = (0..40).map(|i| format!("k{i}=v")).collect();
        assert_eq!(
            normalize(&many.join(",")).unwrap(),
            many[..32].join(","),
            "the first 32 are kept"
        );
        assert_eq!(normalize(&many.join(",")).unwrap().split(',').count(), 32);
        let long = format!("big={},small=1", "x".repeat(256));
        let long = format!("{long},other={}", "y".repeat(250));
        assert_eq!(
            normalize(&long),
            Some(format!("small=1,other={}", "y".repeat(250)))
        );
    }

    /// A client-chosen tracestate costs time linear in its length (it was quadratic: 100 000 members
    /// pinned a core for 40 s).
    #[test]
    fn a_hundred_thousand_members_cost_linear_time() {
        let members: Vec<String> = (0..100_000).map(|i| format!("k{i}=v{i}")).collect();
        let state = members.join(",");
        let start = std::time::Instant::now();
        let out = normalize(&state).unwrap();
        let took = start.elapsed();
        assert_eq!(out.split(',').count(), 32);
        assert!(took < std::time::Duration::from_millis(200), "{took:?}");
        let dupes = vec!["a=1"; 100_000].join(",");
        assert_eq!(normalize(&dupes).as_deref(), Some("a=1"));
    }
}
