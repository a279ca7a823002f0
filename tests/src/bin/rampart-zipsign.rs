//! A stand-in for the `zipsign` CLI (crates.io `zipsign`), for machines
//! where it is not installed: the two commands docs/updates.md uses, with
//! zipsign's file formats, through the same `zipsign-api` crate.
//!
//! - `gen-key PRIVATE VERIFYING`: the 64-byte keypair (mode 0400) and the
//!   raw 32-byte public key (0444);
//! - `sign tar FILE PRIVATE... [-c CONTEXT]`: signs FILE in place, the
//!   context being FILE's name unless given, writing it 0600 as zipsign does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Cursor, Write};
use std::path::Path;

fn write(path: &str, bytes: &[u8], mode: u32) {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = options
        .open(path)
        .unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
    f.write_all(bytes).unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["gen-key", private, public] => {
            let mut secret = [0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut secret))
                .unwrap();
            let key = zipsign_api::SigningKey::from_bytes(&secret);
            write(private, &key.to_keypair_bytes(), 0o400);
            write(public, key.verifying_key().as_bytes(), 0o444);
        }
        ["sign", "tar", file, rest @ ..] => {
            let (keys, context) = match rest {
                [keys @ .., "-c", context] => (keys, (*context).to_owned()),
                keys => (
                    keys,
                    Path::new(file)
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                ),
            };
            let keys: Vec<_> = keys
                .iter()
                .map(|k| {
                    let bytes: [u8; 64] = std::fs::read(k)
                        .unwrap()
                        .try_into()
                        .expect("a 64-byte zipsign key");
                    zipsign_api::SigningKey::from_keypair_bytes(&bytes).unwrap()
                })
                .collect();
            let input = std::fs::read(file).unwrap();
            let mut out = Cursor::new(Vec::new());
            zipsign_api::sign::copy_and_sign_tar(
                &mut Cursor::new(input),
                &mut out,
                &keys,
                Some(context.as_bytes()),
            )
            .unwrap();
            write(file, &out.into_inner(), 0o600);
            std::fs::set_permissions(file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
        }
        _ => {
            eprintln!(
                "usage: rampart-zipsign gen-key PRIVATE VERIFYING | sign tar FILE PRIVATE... [-c CONTEXT]"
            );
            std::process::exit(2);
        }
    }
}
