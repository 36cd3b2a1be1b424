use super::*;

fn tenancy(max: usize) -> Tenancy {
    Tenancy {
        attribute: "weir.tenant".into(),
        tables: Vec::new(),
        ddl: Vec::new(),
        layout: Layout::Modern,
        modern_server: true,
        pattern: regex::Regex::new(&format!(
            "^(?:{})$",
            weir_config::ClickHouseExporter::DEFAULT_DATABASE_PATTERN
        ))
        .unwrap(),
        max,
        shared: "otel".into(),
        prepared: Mutex::default(),
    }
}

#[test]
fn different_tenants_never_share_a_database() {
    let t = tenancy(100);
    let names: Vec<String> = ["team-a", "team_a", "team.a", "Team-A", "teama"]
        .iter()
        .map(|v| t.database_for(v).unwrap())
        .collect();
    let distinct: std::collections::HashSet<&String> = names.iter().collect();
    assert_eq!(distinct.len(), names.len(), "{names:?}");
    assert_eq!(names[0], "team_2da");
    assert!(names
        .iter()
        .all(|n| n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')));
}

#[test]
fn reserved_unmatched_and_surplus_tenants_get_no_database() {
    let t = tenancy(2);
    for bad in [
        "system", "SYSTEM", "default", "otel", "", "-x", "a b", "../etc",
    ] {
        assert!(t.database_for(bad).is_err(), "{bad:?}");
    }
    assert!(t.database_for("information_schema").is_err());
    assert!(t.database_for("INFORMATION_SCHEMA").is_err());
    assert!(t.database_for("one").is_ok());
    assert!(t.database_for("two").is_ok());
    assert!(
        t.database_for("one").is_ok(),
        "a known tenant is not a new one"
    );
    let e = t.database_for("three").unwrap_err();
    assert!(e.contains("max_databases"), "{e}");
}
