//! Policy schema v1: what IT decides, as a JSON document.
//!
//! Untrusted input goes through [`parse_policy`], which walks the JSON once and
//! reports *every* problem with its JSON path (`mfa.provider.kind: unknown value
//! "dou", expected one of: totp, duo`), instead of serde's first error only.
//! Unknown fields are errors everywhere: a misspelt `requried` must not
//! silently leave MFA off. The serde derives are for documents that already
//! passed this check (IPC, the last-known-good copy written by the agent).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::links::{check_https_link, check_ntp_server};
use crate::version::Version;

pub const POLICY_SCHEMA: u64 = 1;

/// Where the built-in links point: the project's own documentation.
pub const DOCS_BASE_URL: &str = "https://github.com/rampart-security/rampart/blob/main/docs";

/// Largest policy document the agent will read, from any source.
pub const MAX_POLICY_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub schema: u64,
    /// Increases with every document IT publishes; the agent never goes back.
    pub serial: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Shown to the employee and used as the authenticator app's issuer.
    pub organization: String,
    pub mfa: MfaPolicy,
    pub clock: ClockPolicy,
    pub links: Links,
    pub agent: AgentPolicy,
    pub reporting: Option<Reporting>,
    /// How often the agent polls the policy URL.
    pub poll_interval_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfaPolicy {
    pub required: bool,
    pub provider: Provider,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Provider {
    /// The built-in RFC 6238 provider: works with any authenticator app, offline.
    Totp,
    /// Duo Auth API v2. The secret key lives in a 0600 file, never in policy.
    Duo {
        api_host: String,
        integration_key: String,
        secret_key_file: String,
        /// `{user}` is replaced by the login name.
        username: String,
    },
}

impl Provider {
    pub fn kind(&self) -> ProviderKind {
        match self {
            Self::Totp => ProviderKind::Totp,
            Self::Duo { .. } => ProviderKind::Duo,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Totp,
    Duo,
}

impl ProviderKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Totp => "authenticator app (TOTP)",
            Self::Duo => "Duo",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockPolicy {
    /// `host`, `host:port`, or `[v6]:port`.
    pub ntp_servers: Vec<String>,
    pub max_skew_secs: u64,
    pub check_interval_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Links {
    pub offline_guide_url: String,
    pub support_url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentPolicy {
    pub min_version: Option<Version>,
    pub update_channel: UpdateChannel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateChannel {
    Stable,
    Beta,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reporting {
    pub url: String,
    pub interval_secs: u64,
}

impl Default for Policy {
    /// The built-in policy: what a fresh machine runs before IT says anything.
    fn default() -> Self {
        Self {
            schema: POLICY_SCHEMA,
            serial: 0,
            expires_at: None,
            organization: "Rampart".to_owned(),
            mfa: MfaPolicy {
                required: true,
                provider: Provider::Totp,
            },
            clock: ClockPolicy {
                ntp_servers: ["time.apple.com", "time.windows.com", "pool.ntp.org"]
                    .map(str::to_owned)
                    .to_vec(),
                max_skew_secs: 30,
                check_interval_secs: 3600,
            },
            links: Links {
                offline_guide_url: format!("{DOCS_BASE_URL}/offline-access.md"),
                support_url: format!("{DOCS_BASE_URL}/support.md"),
            },
            agent: AgentPolicy {
                min_version: None,
                update_channel: UpdateChannel::Stable,
            },
            reporting: None,
            poll_interval_secs: 900,
        }
    }
}

/// One thing wrong with a policy document, at a JSON path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// `mfa.provider.kind`, `clock.ntp_servers[2]`; empty for the document itself.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy is larger than {MAX_POLICY_BYTES} bytes ({0} bytes)")]
    TooLarge(usize),
    #[error("policy is not valid JSON: {0}")]
    Json(String),
    #[error("policy has {} problem(s):\n{}", .0.len(), ProblemList(.0))]
    Invalid(Vec<Problem>),
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl PolicyError {
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            Self::Invalid(problems) => problems.clone(),
            other => vec![Problem {
                path: String::new(),
                message: other.to_string(),
            }],
        }
    }
}

/// Parses and validates an untrusted policy document. A key given twice in
/// one object is a problem at its path, like any other: `serde_json` would
/// silently keep the last one, so a signed `"serial": 17, …, "serial": 50`
/// would mean 50 to the agent while a reviewer (or another parser) read 17.
pub fn parse_policy(bytes: &[u8]) -> Result<Policy, PolicyError> {
    if bytes.len() > MAX_POLICY_BYTES {
        return Err(PolicyError::TooLarge(bytes.len()));
    }
    let mut duplicates = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde::de::DeserializeSeed::deserialize(
        dupcheck::Seed {
            path: String::new(),
            duplicates: &mut duplicates,
        },
        &mut de,
    )
    .and_then(|value| de.end().map(|()| value))
    .map_err(|e| PolicyError::Json(e.to_string()))?;
    match (policy_from_value(&value), duplicates.is_empty()) {
        (result, true) => result,
        (result, false) => {
            let mut problems = duplicates;
            problems.extend(result.err().map(|e| e.problems()).unwrap_or_default());
            Err(PolicyError::Invalid(problems))
        }
    }
}

/// Builds a [`Value`] like `serde_json` does, noting every key that an
/// object gives more than once (with its JSON path) instead of letting the
/// last one win unseen.
mod dupcheck {
    use std::fmt;

    use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Number, Value};

    use super::{Problem, join};

    pub(super) struct Seed<'a> {
        pub path: String,
        pub duplicates: &'a mut Vec<Problem>,
    }

    impl<'de> DeserializeSeed<'de> for Seed<'_> {
        type Value = Value;

        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Seed<'_> {
        type Value = Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }

        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }

        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }

        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }

        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            // JSON has no NaN or infinity, so this is always a number.
            Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
        }

        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }

        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }

        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }

        fn visit_none<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut items = Vec::new();
            loop {
                let seed = Seed {
                    path: format!("{}[{}]", self.path, items.len()),
                    duplicates: &mut *self.duplicates,
                };
                match seq.next_element_seed(seed)? {
                    Some(item) => items.push(item),
                    None => return Ok(Value::Array(items)),
                }
            }
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut out = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                let path = join(&self.path, &key);
                let value = map.next_value_seed(Seed {
                    path: path.clone(),
                    duplicates: &mut *self.duplicates,
                })?;
                if out.insert(key, value).is_some()
                    && !self.duplicates.iter().any(|p| p.path == path)
                {
                    self.duplicates.push(Problem {
                        path,
                        message: "appears more than once in the same object; keep only one \
                                  (JSON readers disagree on which one counts)"
                            .to_owned(),
                    });
                }
            }
            Ok(Value::Object(out))
        }
    }
}

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

fn join(path: &str, key: &str) -> String {
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
                    Err(e) => cx.push(&item_path, e),
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

#[cfg(test)]
mod tests {
    use super::*;
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
        let p = policy_from_value(&json!({"schema": 1, "serial": 7, "mfa": {"required": false}}))
            .unwrap();
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
}
