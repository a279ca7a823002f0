//! One-time passwords: HOTP (RFC 4226) and TOTP (RFC 6238), pure.
//!
//! The product profile is [`Params::PRODUCT`] (SHA1, 6 digits, 30 s): Duo
//! Mobile, Authy and Microsoft Authenticator are reported to mishandle any
//! other, so nothing here offers a knob to the policy. The other algorithms
//! exist so that the RFC's own test vectors can run against this code.
//!
//! Time is always passed in (Unix seconds): this module reads no clock.

use std::fmt;

use data_encoding::BASE32_NOPAD;
use zeroize::Zeroize;

/// Bytes of secret the product issues: 160 bits, RFC 4226's recommendation
/// and what SHA1 authenticator apps expect.
pub const SECRET_BYTES: usize = 20;

/// How far the phone-clock diagnosis looks either way, in seconds.
pub const SKEW_SEARCH_SECS: u64 = 10 * 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    /// The name in an `otpauth://` URI.
    pub fn uri_name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }
}

/// A shared secret. Deliberately has no `Display`, no `Serialize` and a `Debug`
/// that hides the bytes, so that it cannot reach a log line or an IPC frame by
/// accident; the bytes are wiped when it is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the secret is not valid base32")]
    NotBase32,
    #[error("the secret is empty")]
    Empty,
}

impl Secret {
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Reads base32 as people and apps write it: any case, with or without
    /// spaces, dashes and `=` padding.
    pub fn from_base32(text: &str) -> Result<Self, SecretError> {
        let mut clean: String = text
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '='))
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let decoded = BASE32_NOPAD.decode(clean.as_bytes());
        clean.zeroize();
        match decoded {
            Ok(bytes) if bytes.is_empty() => Err(SecretError::Empty),
            Ok(bytes) => Ok(Self(bytes)),
            Err(_) => Err(SecretError::NotBase32),
        }
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Base32 without padding, as the `secret=` of an `otpauth://` URI.
    pub fn to_base32(&self) -> String {
        BASE32_NOPAD.encode(&self.0)
    }

    /// Base32 in groups of four separated by spaces, for typing by hand.
    pub fn to_grouped(&self) -> String {
        let mut plain = self.to_base32();
        let grouped = plain
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        plain.zeroize();
        grouped
    }
}

/// A TOTP profile. `digits` is at most 9 so that a code fits in a `u32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub algorithm: Algorithm,
    pub digits: u32,
    pub period: u64,
}

impl Params {
    pub const PRODUCT: Self = Self {
        algorithm: Algorithm::Sha1,
        digits: 6,
        period: 30,
    };

    /// The time step containing `unix_secs` (T0 = 0). Times before 1970 are
    /// step 0: no real clock asks.
    pub fn step(&self, unix_secs: i64) -> u64 {
        u64::try_from(unix_secs).unwrap_or(0) / self.period.max(1)
    }
}

/// HOTP (RFC 4226 section 5.3) as a zero-padded decimal string.
pub fn hotp(secret: &Secret, counter: u64, digits: u32, algorithm: Algorithm) -> String {
    let digits = digits.clamp(1, 9);
    let value = truncate(&hmac_of(algorithm, secret.expose(), &counter.to_be_bytes()));
    format!(
        "{:0width$}",
        value % 10u32.pow(digits),
        width = digits as usize
    )
}

/// TOTP (RFC 6238) at `unix_secs`.
pub fn totp(secret: &Secret, unix_secs: i64, params: Params) -> String {
    hotp(
        secret,
        params.step(unix_secs),
        params.digits,
        params.algorithm,
    )
}

fn hmac_of(algorithm: Algorithm, key: &[u8], msg: &[u8]) -> Vec<u8> {
    match algorithm {
        Algorithm::Sha1 => crate::mac::hmac_sha1(key, msg),
        Algorithm::Sha256 => crate::mac::hmac_sha256(key, msg),
        Algorithm::Sha512 => crate::mac::hmac_sha512(key, msg),
    }
}

/// Dynamic truncation, RFC 4226 section 5.3.
fn truncate(mac: &[u8]) -> u32 {
    let Some(last) = mac.last() else { return 0 };
    let offset = usize::from(last & 0x0f);
    match mac.get(offset..offset + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a & 0x7f, b, c, d]),
        _ => 0,
    }
}

/// Why a code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("enter the {digits}-digit code from your authenticator app")]
    Malformed { digits: u32 },
    /// The code is right but its step was already used (or an older one was).
    #[error("this code was already used: wait for the next code in your app")]
    Replayed,
    /// No step near now matches. `phone_skew_secs` is set when a step within
    /// [`SKEW_SEARCH_SECS`] does: the phone's clock minus this one (negative:
    /// the phone is behind).
    #[error("{}", wrong_code_message(*.phone_skew_secs))]
    Wrong { phone_skew_secs: Option<i64> },
}

fn wrong_code_message(skew: Option<i64>) -> String {
    match skew {
        None => "That code is not right. Check you are reading the Rampart entry in your \
                 authenticator app, then try the newest code."
            .to_owned(),
        Some(s) => format!(
            "This code matches a phone clock about {} {}. Set your phone's time to \
             automatic, then try a new code.",
            skew_words(s.unsigned_abs()),
            if s < 0 { "behind" } else { "ahead" }
        ),
    }
}

/// "90 seconds", "5 minutes", "2 minutes 30 seconds".
fn skew_words(secs: u64) -> String {
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match (secs / 60, secs % 60) {
        (_, _) if secs < 120 => plural(secs, "second"),
        (m, 0) => plural(m, "minute"),
        (m, s) => format!("{} {}", plural(m, "minute"), plural(s, "second")),
    }
}

/// Strips what people type around a code (spaces, dashes) and checks that
/// what remains is exactly `digits` ASCII digits.
pub fn normalize_code(input: &str, digits: u32) -> Option<String> {
    let code: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    (code.len() == digits as usize && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

/// Checks `input` against the previous, current and next step at `now`.
///
/// `last_accepted_step` is the step of the last code accepted for this secret:
/// a code from that step or an earlier one is refused, so an observed code
/// cannot be replayed. On success returns the step to store as the new
/// `last_accepted_step`.
pub fn verify(
    secret: &Secret,
    params: Params,
    input: &str,
    now_unix: i64,
    last_accepted_step: Option<u64>,
) -> Result<u64, VerifyError> {
    let code = normalize_code(input, params.digits).ok_or(VerifyError::Malformed {
        digits: params.digits,
    })?;
    let now_step = params.step(now_unix);
    let matches = |step: u64| {
        let expected = hotp(secret, step, params.digits, params.algorithm);
        constant_time_eq(expected.as_bytes(), code.as_bytes())
    };

    // Current first, then the neighbours, so that the step stored is the one
    // the phone most likely used.
    let window = [
        Some(now_step),
        now_step.checked_sub(1),
        now_step.checked_add(1),
    ];
    if let Some(step) = window.into_iter().flatten().find(|&s| matches(s)) {
        return match last_accepted_step {
            Some(last) if step <= last => Err(VerifyError::Replayed),
            _ => Ok(step),
        };
    }

    // Diagnosis only: the nearest step within the search range that matches.
    // The code stays refused; accepting it would widen the window tenfold.
    let period = params.period.max(1);
    let reach = SKEW_SEARCH_SECS / period;
    let phone_skew_secs = (2..=reach).find_map(|d| {
        let behind = now_step
            .checked_sub(d)
            .filter(|&s| matches(s))
            .map(|_| -(d as i64));
        let ahead = now_step
            .checked_add(d)
            .filter(|&s| matches(s))
            .map(|_| d as i64);
        behind.or(ahead).map(|steps| steps * period as i64)
    });
    Err(VerifyError::Wrong { phone_skew_secs })
}

/// Equality whose time does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`
/// (Google Authenticator's key URI format). Issuer and account are
/// percent-encoded: a colon, space or `&` in either would otherwise change
/// what the app reads.
pub fn otpauth_uri(secret: &Secret, issuer: &str, account: &str, params: Params) -> String {
    let issuer = crate::percent::encode(issuer);
    format!(
        "otpauth://totp/{issuer}:{}?secret={}&issuer={issuer}&algorithm={}&digits={}&period={}",
        crate::percent::encode(account),
        secret.to_base32(),
        params.algorithm.uri_name(),
        params.digits,
        params.period,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ascii(s: &str) -> Secret {
        Secret::from_bytes(s.as_bytes().to_vec())
    }

    /// RFC 4226 Appendix D.
    #[test]
    fn rfc4226_hotp_vectors() {
        let secret = ascii("12345678901234567890");
        let want = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, want) in want.iter().enumerate() {
            assert_eq!(
                hotp(&secret, counter as u64, 6, Algorithm::Sha1),
                *want,
                "count {counter}"
            );
        }
    }

    /// RFC 6238 Appendix B. The seeds differ by algorithm (20, 32, 64 bytes):
    /// the RFC's table only works with the key length matching the hash.
    #[test]
    fn rfc6238_totp_vectors() {
        let sha1 = ascii("12345678901234567890");
        let sha256 = ascii("12345678901234567890123456789012");
        let sha512 = ascii("1234567890123456789012345678901234567890123456789012345678901234");
        let table: [(i64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1_111_111_109, "07081804", "68084774", "25091201"),
            (1_111_111_111, "14050471", "67062674", "99943326"),
            (1_234_567_890, "89005924", "91819424", "93441116"),
            (2_000_000_000, "69279037", "90698825", "38618901"),
            (20_000_000_000, "65353130", "77737706", "47863826"),
        ];
        for (t, w1, w256, w512) in table {
            let p = |algorithm| Params {
                algorithm,
                digits: 8,
                period: 30,
            };
            assert_eq!(totp(&sha1, t, p(Algorithm::Sha1)), w1, "SHA1 at {t}");
            assert_eq!(
                totp(&sha256, t, p(Algorithm::Sha256)),
                w256,
                "SHA256 at {t}"
            );
            assert_eq!(
                totp(&sha512, t, p(Algorithm::Sha512)),
                w512,
                "SHA512 at {t}"
            );
        }
    }

    const NOW: i64 = 1_795_000_020; // 20 s into a step: edges are not at `now`.

    fn secret() -> Secret {
        Secret::from_bytes((1..=20).collect())
    }

    fn code_at(unix: i64) -> String {
        totp(&secret(), unix, Params::PRODUCT)
    }

    fn check(input: &str, last: Option<u64>) -> Result<u64, VerifyError> {
        verify(&secret(), Params::PRODUCT, input, NOW, last)
    }

    #[test]
    fn window_is_previous_current_next_and_nothing_wider() {
        let step = Params::PRODUCT.step(NOW);
        assert_eq!(check(&code_at(NOW), None), Ok(step));
        assert_eq!(check(&code_at(NOW - 30), None), Ok(step - 1));
        assert_eq!(check(&code_at(NOW + 30), None), Ok(step + 1));
        for far in [NOW - 60, NOW + 60] {
            assert!(
                matches!(check(&code_at(far), None), Err(VerifyError::Wrong { .. })),
                "{far}"
            );
        }
    }

    #[test]
    fn replay_of_the_same_or_an_older_step_is_refused() {
        let step = check(&code_at(NOW), None).unwrap();
        assert_eq!(check(&code_at(NOW), Some(step)), Err(VerifyError::Replayed));
        assert_eq!(
            check(&code_at(NOW - 30), Some(step)),
            Err(VerifyError::Replayed)
        );
        assert_eq!(check(&code_at(NOW + 30), Some(step)), Ok(step + 1));
    }

    #[test]
    fn spaces_and_dashes_are_ignored_other_junk_is_not() {
        let code = code_at(NOW);
        let spaced = format!(" {} {}-", &code[..3], &code[3..]);
        let dashed = format!("{}-{}", &code[..3], &code[3..]);
        assert!(check(&spaced, None).is_ok());
        assert!(check(&dashed, None).is_ok());
        for bad in ["", "12345", "1234567", "12a456", &format!("{code}0")] {
            assert_eq!(
                check(bad, None),
                Err(VerifyError::Malformed { digits: 6 }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn phone_clock_behind_or_ahead_is_diagnosed_and_still_refused() {
        for (offset, words) in [(-90, "90 seconds behind"), (300, "5 minutes ahead")] {
            let err = check(&code_at(NOW + offset), None).unwrap_err();
            assert_eq!(
                err,
                VerifyError::Wrong {
                    phone_skew_secs: Some(offset)
                }
            );
            let message = err.to_string();
            assert!(message.contains(&format!("about {words}")), "{message}");
            assert!(
                message.contains("Set your phone's time to automatic"),
                "{message}"
            );
        }
        assert_eq!(
            check(&code_at(NOW - 90), None).unwrap_err().to_string(),
            "This code matches a phone clock about 90 seconds behind. Set your phone's time \
             to automatic, then try a new code."
        );
    }

    #[test]
    fn codes_further_than_ten_minutes_get_no_diagnosis() {
        // 11 minutes away: a random wrong code must not be blamed on the clock.
        let err = check(&code_at(NOW - 660), None).unwrap_err();
        assert_eq!(
            err,
            VerifyError::Wrong {
                phone_skew_secs: None
            }
        );
        assert!(err.to_string().starts_with("That code is not right"));
    }

    #[test]
    fn skew_words_read_naturally() {
        assert_eq!(skew_words(1), "1 second");
        assert_eq!(skew_words(90), "90 seconds");
        assert_eq!(skew_words(120), "2 minutes");
        assert_eq!(skew_words(150), "2 minutes 30 seconds");
        assert_eq!(skew_words(61 * 60), "61 minutes");
    }

    #[test]
    fn base32_round_trip_and_grouping() {
        let s = ascii("12345678901234567890");
        assert_eq!(s.to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(s.to_grouped(), "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ");
        assert_eq!(
            Secret::from_base32("gezd gnbv-gy3t qojq gezdgnbvgy3tqojq").unwrap(),
            s
        );
        assert_eq!(
            Secret::from_base32("GEZDGNBV1"),
            Err(SecretError::NotBase32)
        );
        assert_eq!(Secret::from_base32(" - "), Err(SecretError::Empty));
    }

    #[test]
    fn otpauth_uri_encodes_issuer_and_account() {
        let s = ascii("12345678901234567890");
        assert_eq!(
            otpauth_uri(
                &s,
                "ACME Corp: IT & Co",
                "jane.doe@acme.example",
                Params::PRODUCT
            ),
            "otpauth://totp/ACME%20Corp%3A%20IT%20%26%20Co:jane.doe%40acme.example\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME%20Corp%3A%20IT%20%26%20Co\
             &algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn debug_hides_the_secret() {
        let s = ascii("PLANTEDSECRETBYTES!!");
        let shown = format!("{s:?} {:?}", Some(&s));
        assert_eq!(shown, "Secret(***) Some(Secret(***))");
        assert!(!shown.contains(&s.to_base32()));
    }
}
