//! Types every part of Rampart agrees on, and the pure logic that goes with them.
//!
//! Architecture invariant: this crate performs no I/O (no files, sockets, clocks
//! or processes) and depends on no async runtime or GUI toolkit. Every
//! serializable type here is part of a boundary (IPC, policy file, status JSON),
//! so a change to one is a protocol change: additive fields only, or a new
//! schema/protocol version.

pub mod cause;
pub mod ipc;
pub mod links;
pub mod mac;
pub mod mfa;
pub mod percent;
pub mod platform;
pub mod policy;
pub mod report;
pub mod signin;
pub mod status;
pub mod totp;
pub mod user;
pub mod version;

/// The version of this build of Rampart, shared by all of its binaries.
pub const RAMPART_VERSION: &str = env!("CARGO_PKG_VERSION");
