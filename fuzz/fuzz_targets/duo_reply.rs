//! Whatever Duo (or something pretending to be Duo) answers: the status line
//! and any body through the agent's envelope parser, then every response
//! parser the agent applies to a successful envelope, and `Retry-After`.
//! None may panic.
#![no_main]

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use rampart_agent::duo::client::{
    parse_activation, parse_auth, parse_envelope, parse_preauth, parse_retry_after,
};

/// The statuses the client meets, and a few it should never see.
const STATUSES: [u16; 8] = [200, 201, 400, 401, 403, 429, 500, 599];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let status = STATUSES[usize::from(pick) % STATUSES.len()];
    if let Ok(response) = parse_envelope(status, body) {
        let _ = parse_preauth(&response);
        let _ = parse_activation(&response);
        let _ = parse_auth(&response);
    }
    if let Ok(text) = std::str::from_utf8(body) {
        let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let _ = parse_retry_after(text, now);
    }
});
