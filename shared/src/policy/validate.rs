//! The validator behind [`super::parse_policy`]: one walk over the JSON
//! that reports every problem with its JSON path, and builds the schema's
//! types only from a document that has none. The accepted keys are listed
//! here by hand (unknown fields are errors); `tests` round-trips a fully
//! populated policy so that these lists cannot drift from the serde types.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::*;
use crate::links::{check_https_link, check_ntp_server};

/// Validates a JSON value as a policy document.
pub fn policy_from_value(value: &Value) -> Result<Policy, PolicyError> {
    let mut cx = Cx::default();
    let policy = walk_policy(&mut cx, value);
    match policy {
        Some(policy) if cx.problems.is_empty() => Ok(policy),
        _ => {
            if cx.problems.is_empty() {
                // A walker that returned nothing without saying why is a bug;
                // never let it through as an empty error list.
                cx.push("", "policy could not be read");
            }
            Err(PolicyError::Invalid(cx.problems))
        }
    }
}

#[derive(Default)]
struct Cx {
    problems: Vec<Problem>,
}

impl Cx {
    fn push(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.to_owned(),
            message: message.into(),
        });
    }
}

pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An object being walked: remembers which keys the schema knows so that the
/// rest can be reported as unknown.
struct Obj<'v> {
    path: String,
    map: &'v Map<String, Value>,
    known: &'static [&'static str],
}

impl<'v> Obj<'v> {
    fn new(
        cx: &mut Cx,
        path: &str,
        value: &'v Value,
        known: &'static [&'static str],
    ) -> Option<Self> {
        match value {
            Value::Object(map) => {
                let mut unknown: Vec<&String> = map
                    .keys()
                    .filter(|k| !known.contains(&k.as_str()))
                    .collect();
                unknown.sort();
                for key in unknown {
                    cx.push(
                        &join(path, key),
                        format!("unknown field, expected one of: {}", known.join(", ")),
                    );
                }
                Some(Self {
                    path: path.to_owned(),
                    map,
                    known,
                })
            }
            other => {
                cx.push(
                    path,
                    format!("expected an object, found {}", kind_of(other)),
                );
                None
            }
        }
    }

    fn path(&self, key: &str) -> String {
        debug_assert!(
            self.known.contains(&key),
            "schema walker asks for undeclared key {key}"
        );
        join(&self.path, key)
    }

    /// A required field, converted; `None` (with a problem pushed) otherwise.
    fn req<T>(
        &self,
        cx: &mut Cx,
        key: &str,
        conv: impl FnOnce(&mut Cx, &str, &'v Value) -> Option<T>,
    ) -> Option<T> {
        let path = self.path(key);
        match self.map.get(key) {
            Some(v) => conv(cx, &path, v),
            None => {
                cx.push(&path, "missing required field");
                None
            }
        }
    }

    /// An optional field: `default` when absent; `null` also means absent.
    fn opt<T>(
        &self,
        cx: &mut Cx,
        key: &str,
        default: T,
        conv: impl FnOnce(&mut Cx, &str, &'v Value) -> Option<T>,
    ) -> Option<T> {
        let path = self.path(key);
        match self.map.get(key) {
            None | Some(Value::Null) => Some(default),
            Some(v) => conv(cx, &path, v),
        }
    }
}

fn boolean(cx: &mut Cx, path: &str, v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        other => {
            cx.push(
                path,
                format!("expected true or false, found {}", kind_of(other)),
            );
            None
        }
    }
}

fn integer(min: u64, max: u64) -> impl FnOnce(&mut Cx, &str, &Value) -> Option<u64> {
    move |cx, path, v| match v.as_u64() {
        Some(n) if (min..=max).contains(&n) => Some(n),
        Some(n) => {
            cx.push(
                path,
                format!("{n} is out of range, expected {min} to {max}"),
            );
            None
        }
        None => {
            cx.push(
                path,
                format!(
                    "expected a whole number from {min} to {max}, found {}",
                    describe(v)
                ),
            );
            None
        }
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Number(n) => format!("{n}"),
        other => kind_of(other).to_owned(),
    }
}

fn string<'v>(cx: &mut Cx, path: &str, v: &'v Value) -> Option<&'v str> {
    match v {
        Value::String(s) => Some(s),
        other => {
            cx.push(path, format!("expected a string, found {}", kind_of(other)));
            None
        }
    }
}

fn text(max_len: usize) -> impl FnOnce(&mut Cx, &str, &Value) -> Option<String> {
    move |cx, path, v| {
        let s = string(cx, path, v)?;
        if s.trim().is_empty() {
            cx.push(path, "must not be empty");
            None
        } else if s.chars().count() > max_len {
            cx.push(path, format!("is longer than {max_len} characters"));
            None
        } else if s.chars().any(char::is_control) {
            cx.push(path, "contains control characters");
            None
        } else {
            Some(s.to_owned())
        }
    }
}

fn one_of<'a>(
    allowed: &'static [&'static str],
) -> impl FnOnce(&mut Cx, &str, &'a Value) -> Option<&'a str> {
    move |cx, path, v| {
        let s = string(cx, path, v)?;
        if allowed.contains(&s) {
            Some(s)
        } else {
            cx.push(
                path,
                format!(
                    "unknown value \"{s}\", expected one of: {}",
                    allowed.join(", ")
                ),
            );
            None
        }
    }
}

fn https_link(cx: &mut Cx, path: &str, v: &Value) -> Option<String> {
    let s = string(cx, path, v)?;
    match check_https_link(s) {
        Ok(()) => Some(s.to_owned()),
        Err(e) => {
            cx.push(path, format!("\"{s}\" {e}"));
            None
        }
    }
}

fn timestamp(cx: &mut Cx, path: &str, v: &Value) -> Option<Option<DateTime<Utc>>> {
    let s = string(cx, path, v)?;
    match DateTime::parse_from_rfc3339(s) {
        Ok(t) => Some(Some(t.with_timezone(&Utc))),
        Err(_) => {
            cx.push(
                path,
                format!("\"{s}\" is not an RFC 3339 time, e.g. 2027-01-31T00:00:00Z"),
            );
            None
        }
    }
}

fn walk_policy(cx: &mut Cx, value: &Value) -> Option<Policy> {
    const KEYS: &[&str] = &[
        "schema",
        "serial",
        "expires_at",
        "organization",
        "mfa",
        "clock",
        "links",
        "agent",
        "reporting",
        "poll_interval_secs",
    ];
    let obj = Obj::new(cx, "", value, KEYS)?;
    let defaults = Policy::default();
    let schema = obj.req(cx, "schema", |cx, path, v| match v.as_u64() {
        Some(POLICY_SCHEMA) => Some(POLICY_SCHEMA),
        _ => {
            cx.push(
                path,
                format!(
                    "unsupported schema {}, this agent reads schema {POLICY_SCHEMA}",
                    describe(v)
                ),
            );
            None
        }
    });
    let serial = obj.req(cx, "serial", integer(0, i64::MAX as u64));
    let expires_at = obj.opt(cx, "expires_at", None, timestamp);
    let organization = obj.opt(cx, "organization", defaults.organization, text(64));
    let mfa = obj.req(cx, "mfa", walk_mfa);
    let clock = obj.opt(cx, "clock", defaults.clock, walk_clock);
    let links = obj.opt(cx, "links", defaults.links, walk_links);
    let agent = obj.opt(cx, "agent", defaults.agent, walk_agent);
    let reporting = obj.opt(cx, "reporting", None, |cx, path, v| {
        walk_reporting(cx, path, v).map(Some)
    });
    let poll_interval_secs = obj.opt(
        cx,
        "poll_interval_secs",
        defaults.poll_interval_secs,
        integer(60, 86_400),
    );
    Some(Policy {
        schema: schema?,
        serial: serial?,
        expires_at: expires_at?,
        organization: organization?,
        mfa: mfa?,
        clock: clock?,
        links: links?,
        agent: agent?,
        reporting: reporting?,
        poll_interval_secs: poll_interval_secs?,
    })
}

fn walk_mfa(cx: &mut Cx, path: &str, value: &Value) -> Option<MfaPolicy> {
    let obj = Obj::new(cx, path, value, &["required", "provider"])?;
    let required = obj.req(cx, "required", boolean);
    let provider = obj.opt(cx, "provider", Provider::Totp, walk_provider);
    Some(MfaPolicy {
        required: required?,
        provider: provider?,
    })
}

fn walk_provider(cx: &mut Cx, path: &str, value: &Value) -> Option<Provider> {
    const TOTP_KEYS: &[&str] = &["kind"];
    const DUO_KEYS: &[&str] = &[
        "kind",
        "api_host",
        "integration_key",
        "secret_key_file",
        "username",
    ];
    let Value::Object(map) = value else {
        cx.push(
            path,
            format!("expected an object, found {}", kind_of(value)),
        );
        return None;
    };
    let kind_path = join(path, "kind");
    let Some(kind) = map.get("kind") else {
        cx.push(
            &kind_path,
            "missing required field, expected one of: totp, duo",
        );
        return None;
    };
    match one_of(&["totp", "duo"])(cx, &kind_path, kind)? {
        "totp" => {
            Obj::new(cx, path, value, TOTP_KEYS)?;
            Some(Provider::Totp)
        }
        _ => {
            let obj = Obj::new(cx, path, value, DUO_KEYS)?;
            let api_host = obj.req(cx, "api_host", |cx, path, v| {
                let s = string(cx, path, v)?;
                // A port is allowed for on-prem proxies and loopback tests.
                let host_ok = crate::links::split_host_port(s).is_some_and(|(host, port)| {
                    port != Some(0) && crate::links::is_host(host) && host.contains(['.', ':'])
                });
                if host_ok {
                    Some(s.to_ascii_lowercase())
                } else {
                    cx.push(
                        path,
                        format!("\"{s}\" is not a host name, e.g. api-1234abcd.duosecurity.com"),
                    );
                    None
                }
            });
            let integration_key = obj.req(cx, "integration_key", |cx, path, v| {
                let s = string(cx, path, v)?;
                if s.len() == 20 && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    Some(s.to_owned())
                } else {
                    cx.push(
                        path,
                        "expected the 20-character integration key from the Duo Admin Panel",
                    );
                    None
                }
            });
            let secret_key_file = obj.req(cx, "secret_key_file", text(4096));
            let username = obj.opt(cx, "username", "{user}".to_owned(), text(256));
            Some(Provider::Duo {
                api_host: api_host?,
                integration_key: integration_key?,
                secret_key_file: secret_key_file?,
                username: username?,
            })
        }
    }
}

fn walk_clock(cx: &mut Cx, path: &str, value: &Value) -> Option<ClockPolicy> {
    let defaults = Policy::default().clock;
    let obj = Obj::new(
        cx,
        path,
        value,
        &["ntp_servers", "max_skew_secs", "check_interval_secs"],
    )?;
    let ntp_servers = obj.opt(cx, "ntp_servers", defaults.ntp_servers, |cx, path, v| {
        let Value::Array(items) = v else {
            cx.push(
                path,
                format!("expected an array of host names, found {}", kind_of(v)),
            );
            return None;
        };
        if items.is_empty() || items.len() > 16 {
            cx.push(
                path,
                format!("expected 1 to 16 servers, found {}", items.len()),
            );
            return None;
        }
        let mut servers = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            if let Some(s) = string(cx, &item_path, item) {
                match check_ntp_server(s) {
                    Ok(()) => servers.push(s.to_owned()),
                    Err(e) => cx.push(&item_path, e.to_string()),
                }
            }
        }
        (servers.len() == items.len()).then_some(servers)
    });
    let max_skew_secs = obj.opt(
        cx,
        "max_skew_secs",
        defaults.max_skew_secs,
        integer(1, 3600),
    );
    let check_interval_secs = obj.opt(
        cx,
        "check_interval_secs",
        defaults.check_interval_secs,
        integer(60, 86_400),
    );
    Some(ClockPolicy {
        ntp_servers: ntp_servers?,
        max_skew_secs: max_skew_secs?,
        check_interval_secs: check_interval_secs?,
    })
}

fn walk_links(cx: &mut Cx, path: &str, value: &Value) -> Option<Links> {
    let defaults = Policy::default().links;
    let obj = Obj::new(cx, path, value, &["offline_guide_url", "support_url"])?;
    let offline_guide_url = obj.opt(
        cx,
        "offline_guide_url",
        defaults.offline_guide_url,
        https_link,
    );
    let support_url = obj.opt(cx, "support_url", defaults.support_url, https_link);
    Some(Links {
        offline_guide_url: offline_guide_url?,
        support_url: support_url?,
    })
}

fn walk_agent(cx: &mut Cx, path: &str, value: &Value) -> Option<AgentPolicy> {
    let obj = Obj::new(cx, path, value, &["min_version", "update_channel"])?;
    let min_version = obj.opt(cx, "min_version", None, |cx, path, v| {
        let s = string(cx, path, v)?;
        match s.parse::<Version>() {
            Ok(version) => Some(Some(version)),
            Err(e) => {
                cx.push(path, e.to_string());
                None
            }
        }
    });
    let update_channel = obj.opt(
        cx,
        "update_channel",
        UpdateChannel::Stable,
        |cx, path, v| {
            Some(match one_of(&["stable", "beta"])(cx, path, v)? {
                "beta" => UpdateChannel::Beta,
                _ => UpdateChannel::Stable,
            })
        },
    );
    Some(AgentPolicy {
        min_version: min_version?,
        update_channel: update_channel?,
    })
}

fn walk_reporting(cx: &mut Cx, path: &str, value: &Value) -> Option<Reporting> {
    let obj = Obj::new(cx, path, value, &["url", "interval_secs"])?;
    let url = obj.req(cx, "url", |cx, path, v| {
        let s = string(cx, path, v)?;
        match crate::links::check_report_url(s) {
            Ok(()) => Some(s.to_owned()),
            Err(e) => {
                cx.push(path, format!("\"{s}\" {e} (plain http only to loopback)"));
                None
            }
        }
    });
    let interval_secs = obj.opt(cx, "interval_secs", 900, integer(60, 86_400));
    Some(Reporting {
        url: url?,
        interval_secs: interval_secs?,
    })
}
