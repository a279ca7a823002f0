//! HMAC (RFC 2104), the one implementation in Rampart: RustCrypto's `hmac`
//! over `sha1`/`sha2`. TOTP codes use it (SHA-1, and SHA-256/512 for the
//! RFC's vectors), and so do Duo's request signatures (SHA-512). `ring`
//! stays in the tree only as rustls's provider.

use hmac::{EagerHash, Hmac, KeyInit, Mac};

fn run<D>(key: &[u8], msg: &[u8]) -> Vec<u8>
where
    Hmac<D>: KeyInit + Mac,
    D: EagerHash,
{
    // HMAC takes keys of any length, so this never fails; an empty MAC
    // would simply match no code and sign no request Duo accepts.
    match <Hmac<D> as KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(msg);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

pub fn hmac_sha1(key: &[u8], msg: &[u8]) -> Vec<u8> {
    run::<sha1::Sha1>(key, msg)
}

pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    run::<sha2::Sha256>(key, msg)
}

pub fn hmac_sha512(key: &[u8], msg: &[u8]) -> Vec<u8> {
    run::<sha2::Sha512>(key, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        data_encoding::HEXLOWER.encode(bytes)
    }

    #[test]
    fn rfc_4231_test_case_2() {
        // RFC 4231 section 4.3: key "Jefe", "what do ya want for nothing?".
        let (key, msg) = (b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex(&hmac_sha256(key, msg)),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha512(key, msg)),
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
             9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
        );
        // RFC 2202 section 3, test case 2: the same inputs under SHA-1.
        assert_eq!(
            hex(&hmac_sha1(key, msg)),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }
}
