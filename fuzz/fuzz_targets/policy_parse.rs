//! Untrusted policy documents: parse + validate must never panic, and a
//! document that passes must survive a round trip through serialization.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_shared::policy::parse_policy;

fuzz_target!(|data: &[u8]| {
    if let Ok(policy) = parse_policy(data) {
        let json = serde_json::to_vec(&policy).expect("a policy serializes");
        assert_eq!(parse_policy(&json).expect("a valid policy re-validates"), policy);
    }
});
