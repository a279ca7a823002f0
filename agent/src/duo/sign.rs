//! Duo's request signature (version 2), as its official clients make it:
//! HMAC-SHA512 over a canonical request of five lines (date, method, host,
//! path, parameters), sent as HTTP Basic credentials `ikey:hexdigest`.

use chrono::{DateTime, Utc};
use data_encoding::{BASE64, HEXLOWER};
use rampart_shared::mac::hmac_sha512;

/// The `Date` header, RFC 2822 with `-0000` as Duo's Python client writes
/// it: `Fri, 07 Dec 2012 17:18:00 -0000`. The signature covers this exact
/// string.
pub fn date_header(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S -0000").to_string()
}

/// Duo's clock as `/ping` read it: Duo's time at the middle of the round
/// trip (its whole seconds + 0.5 s), and this computer's clock then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DuoReading {
    pub duo_time: DateTime<Utc>,
    pub local_time: DateTime<Utc>,
}

impl DuoReading {
    /// This computer's clock minus Duo's when it was read.
    pub fn offset_ms(&self) -> i64 {
        (self.local_time - self.duo_time).num_milliseconds()
    }
}

/// A skew this small is signed around (see [`signing_time`]); a larger one
/// is left for Duo to refuse, so that the person hears about it.
pub const CORRECTABLE_SKEW_SECS: u64 = 120;
/// A reading older than this is not trusted to sign with (the clock may
/// have been set meanwhile); the client reads Duo's clock again.
pub const READING_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The time a request is signed with. Duo refuses a `Date` too far from its
/// own clock (40105, or 40103 on some endpoints), so a laptop a minute off
/// could not enroll at all (duo_unix issue #311 asks for the same: offset
/// the date by what `/ping` measured). Decision: sign with Duo's time when
/// the reading is fresh and this computer's clock is within
/// [`CORRECTABLE_SKEW_SECS`] of it; otherwise sign with this computer's own
/// time. A larger skew is never hidden: Duo refuses it and the person reads
/// "clock is N min fast by Duo's time", because TOTP codes, certificates and
/// the rest of the device need the clock right too, and the clock check
/// reports the skew whatever Duo accepts. Duo's time now is the reading
/// plus the monotonic time since (`since`), so a wall clock set after the
/// reading does not move it; `now` is this computer's clock.
pub fn signing_time(
    now: DateTime<Utc>,
    reading: Option<&DuoReading>,
    since: std::time::Duration,
) -> DateTime<Utc> {
    let Some(reading) = reading.filter(|_| since <= READING_FRESH_FOR) else {
        return now;
    };
    let Ok(since) = chrono::TimeDelta::from_std(since) else {
        return now;
    };
    let duo_now = reading.duo_time + since;
    let skew_ms = (now - duo_now).num_milliseconds().unsigned_abs();
    if skew_ms <= CORRECTABLE_SKEW_SECS * 1000 {
        duo_now
    } else {
        now
    }
}

/// Percent-encodes all but `A-Z a-z 0-9 - . _ ~` (RFC 3986 unreserved),
/// upper-case hex; a space is `%20`: the encoding otpauth URIs use too.
use rampart_shared::percent::encode;

/// `k=v` pairs, each side encoded, sorted by encoded key then value, joined
/// by `&`: the same string is the signed parameters, the query string of a
/// GET and the body of a POST. (duo_client_python sorts the encoded forms,
/// as OAuth 1.0 does; duo_api_golang sorts before encoding. The orders
/// differ only where encoding reorders characters, e.g. `/` against `.`;
/// Rampart's parameter names are fixed unreserved ASCII and never repeat,
/// so both clients would send what this sends.)
pub fn canon_params(params: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> =
        params.iter().map(|(k, v)| (encode(k), encode(v))).collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The text that is signed.
pub fn canonical(date: &str, method: &str, host: &str, path: &str, params: &str) -> String {
    [
        date,
        &method.to_ascii_uppercase(),
        &host.to_ascii_lowercase(),
        path,
        params,
    ]
    .join("\n")
}

/// `Basic base64(ikey:hex(HMAC-SHA512(skey, canonical)))`.
pub fn authorization(integration_key: &str, secret_key: &[u8], canonical: &str) -> String {
    let digest = HEXLOWER.encode(&hmac_sha512(secret_key, canonical.as_bytes()));
    let credentials = format!("{integration_key}:{digest}");
    format!("Basic {}", BASE64.encode(credentials.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn a_small_skew_is_signed_with_duos_time_a_large_one_is_not() {
        use std::time::Duration;
        let t = 1_795_000_000;
        // This computer 90 s fast: Duo's time, carried forward 10 s.
        let fast = DuoReading {
            duo_time: at(t),
            local_time: at(t + 90),
        };
        assert_eq!(fast.offset_ms(), 90_000);
        let since = Duration::from_secs(10);
        assert_eq!(signing_time(at(t + 100), Some(&fast), since), at(t + 10));
        // 10 min fast: its own time, for Duo to refuse and the person to hear.
        let far = DuoReading {
            duo_time: at(t),
            local_time: at(t + 600),
        };
        assert_eq!(signing_time(at(t + 610), Some(&far), since), at(t + 610));
        // The clock was set right after a small-skew reading: nothing to fix.
        assert_eq!(signing_time(at(t + 10), Some(&fast), since), at(t + 10));
        // It jumped 10 min after the reading: beyond the bound, its own time.
        assert_eq!(signing_time(at(t + 700), Some(&fast), since), at(t + 700));
        // A stale reading, or none: its own time.
        let stale = READING_FRESH_FOR + Duration::from_secs(1);
        assert_eq!(
            signing_time(at(t + 90) + stale, Some(&fast), stale),
            at(t + 90) + stale
        );
        assert_eq!(signing_time(at(t + 90), None, since), at(t + 90));
    }

    // The vectors below are from duo_client_python, tests/test_client.py
    // (TestQueryParameters, TestCanonicalize.test_v2, TestSign.test_hmac_sha512).

    const FUZZ_PARAMS: [(&str, &str); 4] = [
        (
            "\u{469a}\u{287b}\u{35d0}\u{8ef3}\u{6727}\u{502a}\u{0810}\u{d091}\u{c8}\u{c170}",
            "\u{0f45}\u{1a76}\u{341a}\u{654c}\u{c23f}\u{9b09}\u{abe2}\u{8343}\u{1b27}\u{60d0}",
        ),
        (
            "\u{7449}\u{7e4b}\u{ccfb}\u{59ff}\u{fe5f}\u{83b7}\u{adcc}\u{900c}\u{cfd1}\u{7813}",
            "\u{8db7}\u{5022}\u{92d3}\u{42ef}\u{207d}\u{8730}\u{acfe}\u{5617}\u{0946}\u{4e30}",
        ),
        (
            "\u{7470}\u{9314}\u{901c}\u{9eae}\u{40d8}\u{4201}\u{82d8}\u{8c70}\u{1d31}\u{a042}",
            "\u{17d9}\u{0ba8}\u{9358}\u{aadf}\u{a42a}\u{48be}\u{fb96}\u{6fe9}\u{b7ff}\u{32f3}",
        ),
        (
            "\u{c2c5}\u{2c1d}\u{2620}\u{3617}\u{96b3}F\u{8605}\u{20e8}\u{ac21}\u{5934}",
            "\u{fba9}\u{41aa}\u{bd83}\u{840b}\u{2615}\u{3e6e}\u{652d}\u{a8b5}\u{d56b}U",
        ),
    ];

    const FUZZ_CANON: &str = "%E4%9A%9A%E2%A1%BB%E3%97%90%E8%BB%B3%E6%9C%A7%E5%80%AA%E0%A0%90%ED%82%91%C3%88%EC%85%B0=%E0%BD%85%E1%A9%B6%E3%90%9A%E6%95%8C%EC%88%BF%E9%AC%89%EA%AF%A2%E8%8D%83%E1%AC%A7%E6%83%90&%E7%91%89%E7%B9%8B%EC%B3%BB%E5%A7%BF%EF%B9%9F%E8%8E%B7%EA%B7%8C%E9%80%8C%EC%BF%91%E7%A0%93=%E8%B6%B7%E5%80%A2%E9%8B%93%E4%8B%AF%E2%81%BD%E8%9C%B0%EA%B3%BE%E5%98%97%E0%A5%86%E4%B8%B0&%E7%91%B0%E9%8C%94%E9%80%9C%E9%BA%AE%E4%83%98%E4%88%81%E8%8B%98%E8%B1%B0%E1%B4%B1%EA%81%82=%E1%9F%99%E0%AE%A8%E9%8D%98%EA%AB%9F%EA%90%AA%E4%A2%BE%EF%AE%96%E6%BF%A9%EB%9F%BF%E3%8B%B3&%EC%8B%85%E2%B0%9D%E2%98%A0%E3%98%97%E9%9A%B3F%E8%98%85%E2%83%A8%EA%B0%A1%E5%A4%B4=%EF%AE%A9%E4%86%AA%EB%B6%83%E8%90%8B%E2%98%95%E3%B9%AE%E6%94%AD%EA%A2%B5%ED%95%ABU";

    #[test]
    fn canonical_parameters_match_duos_vectors() {
        assert_eq!(canon_params(&[]), "");
        assert_eq!(
            canon_params(&[("realname", "First Last"), ("username", "root")]),
            "realname=First%20Last&username=root"
        );
        assert_eq!(
            canon_params(&[
                ("whitespace", "\t\n\x0b\x0c\r "),
                ("punctuation", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
                (
                    "letters",
                    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                ),
                ("digits", "0123456789"),
            ]),
            "digits=0123456789&letters=abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ&punctuation=%21%22%23%24%25%26%27%28%29%2A%2B%2C-.%2F%3A%3B%3C%3D%3E%3F%40%5B%5C%5D%5E_%60%7B%7C%7D~&whitespace=%09%0A%0B%0C%0D%20"
        );
        assert_eq!(
            canon_params(&[("foo_bar", "2"), ("foo", "1")]),
            "foo=1&foo_bar=2"
        );
        assert_eq!(canon_params(&FUZZ_PARAMS), FUZZ_CANON);
    }

    #[test]
    fn canonical_request_and_signature_match_duos_vectors() {
        let date = "Fri, 07 Dec 2012 17:18:00 -0000";
        let canon = canonical(
            date,
            "PoSt",
            "foO.BAr52.cOm",
            "/Foo/BaR2/qux",
            &canon_params(&FUZZ_PARAMS),
        );
        assert_eq!(
            canon,
            format!("{date}\nPOST\nfoo.bar52.com\n/Foo/BaR2/qux\n{FUZZ_CANON}")
        );
        let digest = "0508065035a03b2a1de2f453e629e791d180329e157f65df6b3e0f08299d4321e1c5c7a7c7ee6b9e5fc80d1fb6fbf3ad5eb7c44dd3b3985a02c37aca53ec3698";
        assert_eq!(
            authorization(
                "test_ikey",
                b"gtdfxv9YgVBYcF6dl2Eq17KUQJN2PLM2ODVTkvoT",
                &canon
            ),
            format!(
                "Basic {}",
                BASE64.encode(format!("test_ikey:{digest}").as_bytes())
            )
        );
    }

    #[test]
    fn duo_api_golang_vectors_agree() {
        // duo_api_golang duo_test.go: TestCanonicalize (repeated keys,
        // unreserved characters left as they are) and TestSign.
        let canon = canonical(
            "5",
            "post",
            "API-XXX.duosecurity.COM",
            "/auth/v2/ping",
            &canon_params(&[
                ("username", "H ell?o"),
                ("password", "H-._~i"),
                ("password", "A(!'*)"),
            ]),
        );
        assert_eq!(
            canon,
            "5\nPOST\napi-xxx.duosecurity.com\n/auth/v2/ping\npassword=A%28%21%27%2A%29&password=H-._~i&username=H%20ell%3Fo"
        );
        let canon = canonical(
            "Tue, 21 Aug 2012 17:29:18 -0000",
            "POST",
            "api-XXXXXXXX.duosecurity.com",
            "/accounts/v1/account/list",
            &canon_params(&[("realname", "First Last"), ("username", "root")]),
        );
        assert_eq!(
            authorization(
                "DIWJ8X6AEYOR5OMC6TQ1",
                b"Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep",
                &canon
            ),
            "Basic RElXSjhYNkFFWU9SNU9NQzZUUTE6MWJmZmI4OTI0MzQ4ZjdkYjdkYTllN2Q3ZDc0OWRlZDkzYWFmZDAyZDhlOTA0OTYwZGE3Yjk2YzU3NTEwMjIwMTg1YTY0YTI4MjdlZThmMjRhYzVkMzA4MDJhOWVlOTdlNTlkZTQ0YjMwNGIxODI0MmYwZDU5NmQxNWE4MTIyYWY="
        );
    }

    #[test]
    fn the_date_is_rfc_2822_as_duos_clients_send_it() {
        let t = DateTime::from_timestamp(1_354_900_680, 0).unwrap();
        assert_eq!(date_header(t), "Fri, 07 Dec 2012 17:18:00 -0000");
        let single_digit_day = DateTime::from_timestamp(1_751_328_000, 0).unwrap();
        assert_eq!(
            date_header(single_digit_day),
            "Tue, 01 Jul 2025 00:00:00 -0000"
        );
    }
}
