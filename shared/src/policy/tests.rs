use super::*;
use serde_json::Value;
use serde_json::json;

fn problems(doc: Value) -> Vec<String> {
    match policy_from_value(&doc) {
        Ok(p) => panic!("expected problems, got {p:?}"),
        Err(e) => e.problems().iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn builtin_default_matches_the_brief() {
    let p = Policy::default();
    assert!(p.mfa.required);
    assert_eq!(p.mfa.provider, Provider::Totp);
    assert_eq!(
        p.clock.ntp_servers,
        ["time.apple.com", "time.windows.com", "pool.ntp.org"]
    );
    assert_eq!(p.clock.max_skew_secs, 30);
    assert!(p.links.offline_guide_url.starts_with("https://"));
    assert!(p.links.support_url.starts_with("https://"));
}

#[test]
fn default_round_trips_through_the_validator() {
    let value = serde_json::to_value(Policy::default()).unwrap();
    assert_eq!(policy_from_value(&value).unwrap(), Policy::default());
}

#[test]
fn minimal_document_takes_defaults() {
    let p =
        policy_from_value(&json!({"schema": 1, "serial": 7, "mfa": {"required": false}})).unwrap();
    assert_eq!(p.serial, 7);
    assert!(!p.mfa.required);
    assert_eq!(p.clock, Policy::default().clock);
}

#[test]
fn misspelt_provider_names_the_path_and_the_choices() {
    let got = problems(
        json!({"schema": 1, "serial": 1, "mfa": {"required": true, "provider": {"kind": "dou"}}}),
    );
    assert_eq!(
        got,
        ["mfa.provider.kind: unknown value \"dou\", expected one of: totp, duo"]
    );
}

#[test]
fn reports_every_problem_not_just_the_first() {
    let got = problems(json!({
        "schema": 1,
        "serial": -3,
        "mfa": {"requried": true},
        "clock": {"ntp_servers": ["ok.example", "bad host", 5], "max_skew_secs": 0},
        "links": {"offline_guide_url": "http://guide.example", "support_url": "javascript:alert(1)"},
        "agent": {"min_version": "6.0", "update_channel": "nightly"},
        "extra": true
    }));
    assert_eq!(
        got,
        [
            "extra: unknown field, expected one of: schema, serial, expires_at, organization, mfa, clock, links, agent, reporting, poll_interval_secs",
            "serial: expected a whole number from 0 to 9223372036854775807, found -3",
            "mfa.requried: unknown field, expected one of: required, provider",
            "mfa.required: missing required field",
            "clock.ntp_servers[1]: \"bad host\" is not a valid host name or address",
            "clock.ntp_servers[2]: expected a string, found a number",
            "clock.max_skew_secs: 0 is out of range, expected 1 to 3600",
            "links.offline_guide_url: \"http://guide.example\" must start with https:// (only https links are opened in the browser)",
            "links.support_url: \"javascript:alert(1)\" must start with https:// (only https links are opened in the browser)",
            "agent.min_version: \"6.0\" is not a version: expected MAJOR.MINOR.PATCH, e.g. 1.4.2",
            "agent.update_channel: unknown value \"nightly\", expected one of: stable, beta",
        ]
    );
}

#[test]
fn unknown_fields_are_errors_at_every_level() {
    for (doc, path) in [
        (
            json!({"schema": 1, "serial": 1, "mfa": {"required": true, "provider": {"kind": "totp", "digits": 8}}}),
            "mfa.provider.digits",
        ),
        (
            json!({"schema": 1, "serial": 1, "mfa": {"required": true}, "clock": {"max_skew": 600}}),
            "clock.max_skew",
        ),
        (
            json!({"schema": 1, "serial": 1, "mfa": {"required": true}, "links": {"guide": "https://x.example"}}),
            "links.guide",
        ),
        (
            json!({"schema": 1, "serial": 1, "mfa": {"required": true}, "agent": {"channel": "beta"}}),
            "agent.channel",
        ),
        (
            json!({"schema": 1, "serial": 1, "mfa": {"required": true}, "reporting": {"url": "https://r.example", "token": "x"}}),
            "reporting.token",
        ),
    ] {
        let got = problems(doc);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with(&format!("{path}: unknown field")),
            "{got:?}"
        );
    }
}

#[test]
fn wrong_types_and_schema() {
    assert_eq!(
        problems(json!([1, 2])),
        [": expected an object, found an array".trim_start_matches(": ")]
    );
    assert_eq!(
        problems(json!({"schema": 2, "serial": 1, "mfa": {"required": "yes"}})),
        [
            "schema: unsupported schema 2, this agent reads schema 1",
            "mfa.required: expected true or false, found a string"
        ]
    );
    assert_eq!(
        problems(
            json!({"schema": 1, "serial": 1, "mfa": {"required": true}, "expires_at": "tomorrow"})
        ),
        ["expires_at: \"tomorrow\" is not an RFC 3339 time, e.g. 2027-01-31T00:00:00Z"]
    );
}

#[test]
fn duo_provider_is_checked_field_by_field() {
    let ok = json!({"schema": 1, "serial": 1, "mfa": {"required": true, "provider": {
        "kind": "duo", "api_host": "api-1234abcd.duosecurity.com",
        "integration_key": "DIWJ8X6AEYOR5OMC6TQ1", "secret_key_file": "/etc/rampart/duo.key"}}});
    let p = policy_from_value(&ok).unwrap();
    assert_eq!(p.mfa.provider.kind(), ProviderKind::Duo);
    for host in ["127.0.0.1:8443", "API-1234.Duosecurity.com:443", "[::1]:9"] {
        let mut with_port = ok.clone();
        with_port["mfa"]["provider"]["api_host"] = json!(host);
        let p = policy_from_value(&with_port).unwrap();
        let Provider::Duo { api_host, .. } = p.mfa.provider else {
            panic!("{host}: not duo")
        };
        assert_eq!(api_host, host.to_ascii_lowercase());
    }
    for bad in [
        "localhost",
        "api.example.com:0",
        "https://api.example.com",
        "a.b:x",
    ] {
        let mut with_bad = ok.clone();
        with_bad["mfa"]["provider"]["api_host"] = json!(bad);
        assert!(policy_from_value(&with_bad).is_err(), "{bad} accepted");
    }
    let got = problems(
        json!({"schema": 1, "serial": 1, "mfa": {"required": true, "provider": {
        "kind": "duo", "api_host": "not a host", "integration_key": "short"}}}),
    );
    assert_eq!(
        got,
        [
            "mfa.provider.api_host: \"not a host\" is not a host name, e.g. api-1234abcd.duosecurity.com",
            "mfa.provider.integration_key: expected the 20-character integration key from the Duo Admin Panel",
            "mfa.provider.secret_key_file: missing required field",
        ]
    );
}

#[test]
fn size_cap_and_bad_json() {
    let big = vec![b' '; MAX_POLICY_BYTES + 1];
    assert_eq!(
        parse_policy(&big),
        Err(PolicyError::TooLarge(MAX_POLICY_BYTES + 1))
    );
    let err = parse_policy(b"{\"schema\": 1,").unwrap_err();
    assert!(matches!(err, PolicyError::Json(_)), "{err}");
}

#[test]
fn duplicate_keys_are_refused_with_their_path() {
    // The attack in issue 15: signed as 17, read as 50.
    let doc = br#"{"schema": 1, "serial": 17, "mfa": {"required": true}, "serial": 50}"#;
    let err = parse_policy(doc).unwrap_err();
    assert_eq!(
        err.problems()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "serial: appears more than once in the same object; keep only one (JSON readers disagree on which one counts)"
        ]
    );
    assert!(
        err.to_string().contains("serial: appears more than once"),
        "{err}"
    );

    let nested = br#"{"schema": 1, "serial": 2, "mfa": {"required": true,
        "provider": {"kind": "totp", "x": 1, "x": 2}},
        "clock": {"ntp_servers": ["a.example"], "ntp_servers": ["b.example"]}}"#;
    let got: Vec<String> = parse_policy(nested)
        .unwrap_err()
        .problems()
        .iter()
        .map(|p| p.path.clone())
        .collect();
    // `mfa.provider.x` is also unknown; both are reported.
    assert_eq!(
        got,
        ["mfa.provider.x", "clock.ntp_servers", "mfa.provider.x"]
    );
    let unknown = parse_policy(nested).unwrap_err().problems();
    assert!(
        unknown[2].message.starts_with("unknown field"),
        "{unknown:?}"
    );

    // Inside arrays, and three times over: one problem per path.
    let in_array = br#"{"schema": 1, "serial": 3, "mfa": {"required": false},
        "clock": {"ntp_servers": [{"h": 1, "h": 2, "h": 3}]}}"#;
    let problems = parse_policy(in_array).unwrap_err().problems();
    assert_eq!(problems[0].path, "clock.ntp_servers[0].h");
    assert_eq!(
        problems.iter().filter(|p| p.path.ends_with(".h")).count(),
        1
    );
}

#[test]
fn the_duplicate_check_reads_documents_like_serde_json() {
    let doc = br#"{"schema": 1, "serial": 9007199254740993, "organization": "Caf\u00e9 \"A\"",
        "expires_at": null, "mfa": {"required": true},
        "clock": {"ntp_servers": ["[::1]:123", "10.0.0.1"], "max_skew_secs": 30}} "#;
    let via_check = parse_policy(doc).unwrap();
    let plain: Value = serde_json::from_slice(doc).unwrap();
    assert_eq!(via_check, policy_from_value(&plain).unwrap());
    assert_eq!(via_check.serial, 9_007_199_254_740_993, "no float rounding");
    assert_eq!(via_check.organization, "Caf\u{e9} \"A\"");
    // Trailing garbage and deep nesting stay errors, as with serde_json.
    assert!(matches!(parse_policy(b"{} {}"), Err(PolicyError::Json(_))));
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(matches!(
        parse_policy(deep.as_bytes()),
        Err(PolicyError::Json(_))
    ));
}

#[test]
fn error_display_lists_every_problem() {
    let err = policy_from_value(&json!({"schema": 1})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "policy has 2 problem(s):\n  serial: missing required field\n  mfa: missing required field"
    );
}

/// Every field set, every option present: the serde types and the
/// validator's key lists agree, so a document written from the types is one
/// the validator accepts, unchanged. A field added to a type but not to the
/// validator (or the reverse) fails here.
#[test]
fn a_fully_populated_policy_round_trips_through_the_validator() {
    let policy = Policy {
        schema: POLICY_SCHEMA,
        serial: 42,
        expires_at: Some(DateTime::from_timestamp(1_800_000_000, 0).unwrap()),
        organization: "ACME Corp".into(),
        mfa: MfaPolicy {
            required: true,
            provider: Provider::Duo {
                api_host: "api-1234abcd.duosecurity.com:8443".into(),
                integration_key: "DIWJ8X6AEYOR5OMC6TQ1".into(),
                secret_key_file: "/etc/rampart/duo.key".into(),
                username: "{user}@acme.example".into(),
            },
        },
        clock: ClockPolicy {
            ntp_servers: vec!["time.example.com".into(), "[::1]:123".into()],
            max_skew_secs: 45,
            check_interval_secs: 1800,
        },
        links: Links {
            offline_guide_url: "https://intranet.acme.example/mfa/offline".into(),
            support_url: "https://help.acme.example/new".into(),
        },
        agent: AgentPolicy {
            min_version: Some(Version::new(0, 3, 1)),
            update_channel: UpdateChannel::Beta,
        },
        reporting: Some(Reporting {
            url: "https://collector.acme.example/rampart".into(),
            interval_secs: 600,
        }),
        poll_interval_secs: 900,
    };
    let bytes = serde_json::to_vec_pretty(&policy).unwrap();
    assert_eq!(parse_policy(&bytes).unwrap(), policy);
    // And every key the types write is one the validator names.
    let value: Value = serde_json::from_slice(&bytes).unwrap();
    for key in ["expires_at", "reporting"] {
        assert!(value.get(key).is_some(), "{key} is written");
    }
}
