//! `pam_rampart.so`: asks the Rampart agent whether the code a person typed
//! at a sign-in prompt is theirs (`verify_signin`, docs/protocol.md) and
//! turns the answer into a PAM result. Installed, never switched on by the
//! installer: IT adds it to a PAM stack (docs/signin.md).
//!
//! - `args`: the module arguments (pure).
//! - `verdict`: the agent's answer, or its absence, as a PAM result and
//!   the words the person sees (pure).
//! - `agent`: one blocking exchange over the agent's socket, with the
//!   shared frames; no async runtime inside a PAM client.
//! - `hooks`: the PAM entry points (`pam-bindings`).
//!
//! Linux only: elsewhere this crate is empty (the `cfg` below), so the
//! workspace still builds on Windows and macOS.
//!
//! Architecture Invariant: this crate is the workspace's PAM FFI; its own
//! code holds no `unsafe` block (the one `#[allow(unsafe_code)]` is for the
//! exported symbols `pam_hooks!` generates, `hooks.rs`).
#![cfg(target_os = "linux")]

pub mod agent;
pub mod args;
mod hooks;
pub mod verdict;
