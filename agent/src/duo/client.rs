//! [`DuoClient`]: the Auth API v2 endpoints the MFA engine uses, over
//! reqwest with the agent's TLS stack.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;
use zeroize::Zeroizing;

use super::sign;
use super::{Activation, AuthResult, AuthStatus, Device, DuoError, EnrollStatus, Preauth};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Duo's replies are small; anything bigger is not Duo.
const MAX_REPLY_BYTES: usize = 256 * 1024;
/// A 429 is retried here only while Duo's wait is this short…
pub const MAX_INLINE_WAIT: Duration = Duration::from_secs(4);
/// …and at most this many times; the engine handles longer waits.
pub const MAX_RETRIES: u32 = 3;
/// Duo's clients: 1 s doubling up to 32 s.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(32);

/// How to reach Duo and sign for it.
pub struct DuoConfig {
    /// `https://{api_host}`; `http://` only to loopback.
    pub base_url: String,
    pub integration_key: String,
    pub secret_key: Zeroizing<String>,
    /// PEM certificates trusted besides the system roots.
    pub extra_ca_file: Option<PathBuf>,
}

impl fmt::Debug for DuoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DuoConfig")
            .field("base_url", &self.base_url)
            .field("integration_key", &self.integration_key)
            .field("secret_key", &"***")
            .field("extra_ca_file", &self.extra_ca_file)
            .finish()
    }
}

impl DuoConfig {
    /// The policy's provider plus the secret key from its file, which only
    /// its owner may read.
    pub fn from_policy(
        api_host: &str,
        integration_key: &str,
        secret_key_file: &Path,
        extra_ca_file: Option<&Path>,
    ) -> Result<Self, DuoError> {
        let shown = secret_key_file.display();
        let metadata = std::fs::metadata(secret_key_file).map_err(|e| {
            DuoError::Config(format!(
                "the Duo secret key file {shown} cannot be read ({e})"
            ))
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = metadata.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(DuoError::Config(format!(
                    "the Duo secret key file {shown} can be read by other users (mode {:03o}); \
                     run `chmod 600 {shown}`",
                    mode & 0o777
                )));
            }
        }
        #[cfg(not(unix))]
        let _ = metadata;
        let text = Zeroizing::new(std::fs::read_to_string(secret_key_file).map_err(|e| {
            DuoError::Config(format!(
                "the Duo secret key file {shown} cannot be read ({e})"
            ))
        })?);
        let key = Zeroizing::new(text.trim().to_owned());
        if key.is_empty() {
            return Err(DuoError::Config(format!(
                "the Duo secret key file {shown} is empty"
            )));
        }
        Ok(Self {
            base_url: format!("https://{api_host}"),
            integration_key: integration_key.to_owned(),
            secret_key: key,
            extra_ca_file: extra_ca_file.map(Path::to_owned),
        })
    }
}

/// A Duo Auth API v2 client. Cheap to clone.
#[derive(Clone)]
pub struct DuoClient {
    http: reqwest::Client,
    base_url: String,
    /// As signed: lower-case `host[:port]`.
    host: String,
    integration_key: String,
    secret_key: std::sync::Arc<Zeroizing<String>>,
    /// Duo's clock as `/ping` last read it, and when (monotonic): what
    /// requests are signed with while it is fresh and the skew small
    /// ([`sign::signing_time`]). Shared by the clones.
    reading: std::sync::Arc<std::sync::Mutex<Option<(sign::DuoReading, Instant)>>>,
}

impl fmt::Debug for DuoClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DuoClient")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// How a request's parameters travel.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
}

impl DuoClient {
    pub fn new(config: DuoConfig) -> Result<Self, DuoError> {
        let (scheme, rest) = config
            .base_url
            .split_once("://")
            .ok_or_else(|| DuoError::Config(format!("\"{}\" is not a URL", config.base_url)))?;
        let host = rest.trim_end_matches('/').to_ascii_lowercase();
        match scheme.to_ascii_lowercase().as_str() {
            "https" => {}
            "http" if is_loopback(&host) => {}
            _ => {
                return Err(DuoError::Config(format!(
                    "Duo must be reached over https (\"{}\"); plain http is allowed only to this \
                     computer",
                    config.base_url
                )));
            }
        }
        crate::install_tls_provider();
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("rampart-agent/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // A redirect would send signed requests somewhere unsigned for.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(file) = &config.extra_ca_file {
            let certs =
                crate::network::extra_roots(file).map_err(|e| DuoError::Config(e.to_string()))?;
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(|e| {
            DuoError::Config(format!(
                "cannot set up the HTTP client: {}",
                crate::error_chain(&e)
            ))
        })?;
        Ok(Self {
            http,
            base_url: format!("{}://{host}", scheme.to_ascii_lowercase()),
            host,
            integration_key: config.integration_key,
            secret_key: std::sync::Arc::new(config.secret_key),
            reading: Default::default(),
        })
    }

    /// Duo's clock (`/ping` needs no signature).
    pub async fn ping(&self) -> Result<DateTime<Utc>, DuoError> {
        let reply = self.call(Method::Get, "/auth/v2/ping", &[], false).await?;
        duo_time(&reply)
    }

    /// Reads Duo's clock with `/ping` and keeps the reading for signing.
    /// Duo's `time` is truncated to the second, so its clock is taken as
    /// half a second later than it says, against the middle of the round
    /// trip on this computer's clock.
    pub async fn read_clock(&self) -> Result<sign::DuoReading, DuoError> {
        let before = Utc::now();
        let duo_time = self.ping().await?;
        let after = Utc::now();
        let reading = sign::DuoReading {
            duo_time: duo_time + chrono::TimeDelta::milliseconds(500),
            local_time: before + (after - before) / 2,
        };
        *self.reading.lock().unwrap_or_else(|e| e.into_inner()) = Some((reading, Instant::now()));
        Ok(reading)
    }

    /// The last reading of Duo's clock while it is fresh enough to sign with.
    pub fn fresh_reading(&self) -> Option<sign::DuoReading> {
        let guard = self.reading.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .filter(|(_, at)| at.elapsed() <= sign::READING_FRESH_FOR)
            .map(|(reading, _)| reading)
    }

    /// The time the next request is signed with, and whether it is Duo's
    /// (corrected) rather than this computer's own.
    pub fn signing_time(&self) -> (DateTime<Utc>, bool) {
        let now = Utc::now();
        let guard = self.reading.lock().unwrap_or_else(|e| e.into_inner());
        let (reading, since) = match *guard {
            Some((reading, at)) => (Some(reading), at.elapsed()),
            None => (None, Duration::ZERO),
        };
        let at = sign::signing_time(now, reading.as_ref(), since);
        (at, at != now)
    }

    /// Whether Duo accepts the keys; Duo's clock.
    pub async fn check(&self) -> Result<DateTime<Utc>, DuoError> {
        let reply = self.call(Method::Get, "/auth/v2/check", &[], true).await?;
        duo_time(&reply)
    }

    pub async fn preauth(&self, username: &str) -> Result<Preauth, DuoError> {
        let reply = self
            .call(
                Method::Post,
                "/auth/v2/preauth",
                &[("username", username)],
                true,
            )
            .await?;
        parse_preauth(&reply)
    }

    pub async fn enroll(&self, username: &str) -> Result<Activation, DuoError> {
        let reply = self
            .call(
                Method::Post,
                "/auth/v2/enroll",
                &[("username", username)],
                true,
            )
            .await?;
        parse_activation(&reply)
    }

    pub async fn enroll_status(
        &self,
        user_id: &str,
        activation_code: &str,
    ) -> Result<EnrollStatus, DuoError> {
        let params = [("user_id", user_id), ("activation_code", activation_code)];
        let reply = self
            .call(Method::Post, "/auth/v2/enroll_status", &params, true)
            .await?;
        match reply.as_str() {
            Some("success") => Ok(EnrollStatus::Success),
            Some("waiting") => Ok(EnrollStatus::Waiting),
            Some("invalid") => Ok(EnrollStatus::Invalid),
            _ => Err(bad(format!("enroll_status answered {reply}"))),
        }
    }

    /// Sends a push; Duo's transaction id to ask [`Self::auth_status`] about.
    pub async fn auth_push(&self, username: &str, device: &str) -> Result<String, DuoError> {
        let params = [
            ("username", username),
            ("factor", "push"),
            ("device", device),
            ("async", "1"),
        ];
        let reply = self
            .call(Method::Post, "/auth/v2/auth", &params, true)
            .await?;
        reply["txid"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| bad("auth answered without a txid".into()))
    }

    pub async fn auth_passcode(
        &self,
        username: &str,
        passcode: &str,
    ) -> Result<AuthStatus, DuoError> {
        let params = [
            ("username", username),
            ("factor", "passcode"),
            ("passcode", passcode),
        ];
        let reply = self
            .call(Method::Post, "/auth/v2/auth", &params, true)
            .await?;
        parse_auth(&reply)
    }

    pub async fn auth_status(&self, txid: &str) -> Result<AuthStatus, DuoError> {
        let reply = self
            .call(Method::Get, "/auth/v2/auth_status", &[("txid", txid)], true)
            .await?;
        parse_auth(&reply)
    }

    /// One API call, retried here on a short 429; `response` of an OK
    /// envelope.
    async fn call(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
        signed: bool,
    ) -> Result<Value, DuoError> {
        let mut attempt = 0;
        loop {
            match self.once(method, path, params, signed).await? {
                Answer::Reply(value) => return Ok(value),
                Answer::SlowDown(retry_after) => {
                    let wait = rate_limit_wait(attempt, retry_after, fastrand::f64());
                    if attempt >= MAX_RETRIES || wait > MAX_INLINE_WAIT {
                        return Err(DuoError::RateLimited { retry_after: wait });
                    }
                    tracing::debug!(
                        path,
                        wait_ms = wait.as_millis() as u64,
                        "Duo said 429; waiting"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn once(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
        signed: bool,
    ) -> Result<Answer, DuoError> {
        let canon_params = sign::canon_params(params);
        let date = sign::date_header(self.signing_time().0);
        let (verb, url) = match method {
            Method::Get if canon_params.is_empty() => ("GET", format!("{}{path}", self.base_url)),
            Method::Get => ("GET", format!("{}{path}?{canon_params}", self.base_url)),
            Method::Post => ("POST", format!("{}{path}", self.base_url)),
        };
        let mut request = match method {
            Method::Get => self.http.get(&url),
            Method::Post => self
                .http
                .post(&url)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(canon_params.clone()),
        };
        if signed {
            let canonical = sign::canonical(&date, verb, &self.host, path, &canon_params);
            let authorization = sign::authorization(
                &self.integration_key,
                self.secret_key.as_bytes(),
                &canonical,
            );
            request = request
                .header(reqwest::header::DATE, &date)
                .header(reqwest::header::AUTHORIZATION, authorization);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| DuoError::Unreachable(crate::error_chain(&e)))?;
        let status = response.status().as_u16();
        tracing::debug!(verb, path, status, "Duo answered");
        if status == 429 {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, Utc::now()));
            return Ok(Answer::SlowDown(retry_after));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| DuoError::Unreachable(crate::error_chain(&e)))?
        {
            if body.len() + chunk.len() > MAX_REPLY_BYTES {
                return Err(bad(format!("a reply larger than {MAX_REPLY_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        parse_envelope(status, &body).map(Answer::Reply)
    }
}

enum Answer {
    Reply(Value),
    SlowDown(Option<Duration>),
}

fn bad(what: String) -> DuoError {
    DuoError::BadResponse(what)
}

fn is_loopback(authority: &str) -> bool {
    rampart_shared::links::split_host_port(authority).is_some_and(|(host, _)| {
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

/// The wait before retry number `attempt` (0-based) after a 429: Duo's
/// `Retry-After` when it gave one, else 1 s doubling to 32 s, plus up to
/// 10 % jitter (`jitter` in 0..1) so that a fleet does not retry in step.
pub fn rate_limit_wait(attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    let base = retry_after.unwrap_or_else(|| {
        FIRST_BACKOFF
            .saturating_mul(1u32 << attempt.min(5))
            .min(MAX_BACKOFF)
    });
    base + base.mul_f64(jitter.clamp(0.0, 1.0) * 0.1)
}

/// `Retry-After`: seconds, or an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// `{"stat": "OK", "response": …}` → the response; `FAIL` → an error with
/// Duo's code (which has been seen as `""` or a string) and message.
pub fn parse_envelope(http_status: u16, body: &[u8]) -> Result<Value, DuoError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| {
        bad(format!(
            "HTTP {http_status} with a body that is not JSON ({} bytes)",
            body.len()
        ))
    })?;
    match value["stat"].as_str() {
        Some("OK") if (200..300).contains(&http_status) => Ok(value["response"].clone()),
        Some("FAIL") | Some("OK") => {
            let code = match &value["code"] {
                Value::Number(n) => n.as_u64().and_then(|c| u32::try_from(c).ok()),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            };
            Err(DuoError::Fail {
                http_status,
                code,
                message: value["message"].as_str().unwrap_or("no message").to_owned(),
                detail: value["message_detail"].as_str().map(str::to_owned),
            })
        }
        _ => Err(bad(format!("HTTP {http_status} without a stat"))),
    }
}

fn duo_time(response: &Value) -> Result<DateTime<Utc>, DuoError> {
    response["time"]
        .as_i64()
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .ok_or_else(|| bad("no time in the reply".into()))
}

fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_default().to_owned()
}

pub fn parse_preauth(response: &Value) -> Result<Preauth, DuoError> {
    let status_msg = text(response, "status_msg");
    match response["result"].as_str() {
        Some("auth") => {
            let devices = response["devices"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .filter_map(|d| {
                            let id = d["device"].as_str()?.to_owned();
                            let display_name = d["display_name"]
                                .as_str()
                                .or_else(|| d["name"].as_str())
                                .filter(|n| !n.is_empty())
                                .unwrap_or(&id)
                                .to_owned();
                            let capabilities = d["capabilities"]
                                .as_array()
                                .map(|c| {
                                    c.iter()
                                        .filter_map(|x| x.as_str().map(str::to_owned))
                                        .collect()
                                })
                                .unwrap_or_default();
                            Some(Device {
                                id,
                                display_name,
                                capabilities,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(Preauth::Auth { devices })
        }
        Some("enroll") => Ok(Preauth::Enroll {
            enroll_portal_url: response["enroll_portal_url"].as_str().map(str::to_owned),
        }),
        Some("allow") => Ok(Preauth::Allow { status_msg }),
        Some("deny") => Ok(Preauth::Deny { status_msg }),
        other => Err(bad(format!("preauth result {other:?}"))),
    }
}

pub fn parse_activation(response: &Value) -> Result<Activation, DuoError> {
    let need = |key: &str| {
        response[key]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| bad(format!("enroll answered without {key}")))
    };
    Ok(Activation {
        user_id: need("user_id")?,
        username: text(response, "username"),
        activation_code: need("activation_code")?,
        activation_url: need("activation_url")?,
        expires_at: response["expiration"]
            .as_i64()
            .and_then(|t| DateTime::from_timestamp(t, 0)),
    })
}

pub fn parse_auth(response: &Value) -> Result<AuthStatus, DuoError> {
    let result = match response["result"].as_str() {
        Some("allow") => AuthResult::Allow,
        Some("deny") => AuthResult::Deny,
        Some("waiting") => AuthResult::Waiting,
        other => return Err(bad(format!("auth result {other:?}"))),
    };
    Ok(AuthStatus {
        result,
        status: text(response, "status"),
        status_msg: text(response, "status_msg"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fail_envelopes_parse_leniently() {
        let err = parse_envelope(
            401,
            br#"{"stat":"FAIL","code":40103,"message":"Invalid signature in request credentials"}"#,
        )
        .unwrap_err();
        assert!(err.is_invalid_signature(), "{err}");
        assert_eq!(
            err.to_string(),
            "Duo refused the request: Invalid signature in request credentials (code 40103, HTTP 401)"
        );
        for code in [json!(""), json!(null)] {
            let body = json!({"stat": "FAIL", "code": code, "message": "Oops"}).to_string();
            let err = parse_envelope(400, body.as_bytes()).unwrap_err();
            assert!(matches!(err, DuoError::Fail { code: None, .. }), "{err}");
        }
        let body = json!({"stat": "FAIL", "code": "40002", "message": "Invalid request parameters",
            "message_detail": "username"})
        .to_string();
        let err = parse_envelope(400, body.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Duo refused the request: Invalid request parameters (username) (code 40002, HTTP 400)"
        );
        assert!(matches!(
            parse_envelope(502, b"<html>Bad gateway</html>"),
            Err(DuoError::BadResponse(_))
        ));
        assert_eq!(
            parse_envelope(200, br#"{"stat":"OK","response":"waiting"}"#).unwrap(),
            json!("waiting")
        );
    }

    #[test]
    fn rate_limit_waits_honour_retry_after_then_double() {
        assert_eq!(
            rate_limit_wait(0, Some(Duration::from_secs(7)), 0.0),
            Duration::from_secs(7)
        );
        let doubling: Vec<u64> = (0..7)
            .map(|a| rate_limit_wait(a, None, 0.0).as_secs())
            .collect();
        assert_eq!(doubling, [1, 2, 4, 8, 16, 32, 32]);
        assert_eq!(
            rate_limit_wait(0, None, 1.0),
            Duration::from_millis(1100),
            "at most 10 % jitter"
        );
        let now = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        assert_eq!(parse_retry_after("12", now), Some(Duration::from_secs(12)));
        assert_eq!(
            parse_retry_after("Wed, 18 Nov 2026 11:07:00 GMT", now),
            Some(Duration::from_secs(20))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn plain_http_only_to_loopback() {
        let config = |url: &str| DuoConfig {
            base_url: url.into(),
            integration_key: "DIWJ8X6AEYOR5OMC6TQ1".into(),
            secret_key: Zeroizing::new("x".repeat(40)),
            extra_ca_file: None,
        };
        assert!(DuoClient::new(config("http://127.0.0.1:8080")).is_ok());
        assert!(DuoClient::new(config("http://[::1]:8080")).is_ok());
        assert!(DuoClient::new(config("https://api-1234abcd.duosecurity.com")).is_ok());
        let err = DuoClient::new(config("http://api-1234abcd.duosecurity.com")).unwrap_err();
        assert!(
            err.to_string().contains("must be reached over https"),
            "{err}"
        );
        assert!(DuoClient::new(config("http://127.0.0.1.evil.example")).is_err());
    }

    // File modes are Unix's; Windows has no 0600 to check.
    #[cfg(unix)]
    #[test]
    fn the_secret_key_file_must_be_private_and_is_never_printed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("duo.key");
        std::fs::write(&file, "PLANTEDsecretKEY0123456789abcdefghijklmn\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = DuoConfig::from_policy("api-x.duosecurity.com", "DI", &file, None).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = DuoConfig::from_policy("api-x.duosecurity.com", "DI", &file, None).unwrap();
        assert_eq!(
            config.secret_key.as_str(),
            "PLANTEDsecretKEY0123456789abcdefghijklmn"
        );
        assert!(!format!("{config:?}").contains("PLANTED"));
        let client = DuoClient::new(config).unwrap();
        assert!(!format!("{client:?}").contains("PLANTED"));
        let missing =
            DuoConfig::from_policy("h.example", "DI", &dir.path().join("nope"), None).unwrap_err();
        assert!(missing.to_string().contains("cannot be read"), "{missing}");
    }

    #[test]
    fn preauth_devices_and_auth_results_parse() {
        let p = parse_preauth(&json!({"result": "auth", "status_msg": "Account is active",
            "devices": [{"device": "DPFZRS9FB0D46QFTM891", "display_name": "iOS (XXX-XXX-0100)",
                         "capabilities": ["auto", "push", "sms"], "type": "phone"},
                        {"device": "DHEKH0JJIYC1LX3AZWO4", "name": "", "capabilities": ["mobile_otp"]}]}))
        .unwrap();
        let Preauth::Auth { devices } = p else {
            panic!("{p:?}")
        };
        assert!(devices[0].takes_push());
        assert_eq!(devices[1].display_name, "DHEKH0JJIYC1LX3AZWO4");
        assert!(!devices[1].takes_push());
        assert_eq!(
            parse_preauth(&json!({"result": "enroll", "status_msg": "Enroll an authentication device to proceed",
                "enroll_portal_url": "https://api-x.duosecurity.com/portal?code=48bac5d9393fb2c2"})).unwrap(),
            Preauth::Enroll { enroll_portal_url: Some("https://api-x.duosecurity.com/portal?code=48bac5d9393fb2c2".into()) }
        );
        let a = parse_auth(&json!({"result": "deny", "status": "fraud", "status_msg": "Login request reported as fraudulent."})).unwrap();
        assert_eq!(a.result, AuthResult::Deny);
        assert_eq!(a.status, "fraud");
        assert!(parse_activation(&json!({"user_id": "DU1"})).is_err());
    }
}
