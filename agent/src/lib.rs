//! The Rampart agent: the background service that owns policy, clock and MFA
//! state and serves status over local IPC. `run` starts it in-process, which is
//! how the binary, the app's embedded mode and the tests all use it.

pub mod cli;
pub mod clock;
pub mod config;
pub mod diagnose;
pub mod doctor;
pub mod duo;
pub mod fsutil;
pub mod ipc;
pub mod logging;
pub mod mdm;
pub mod metrics;
pub mod mfa;
pub mod network;
pub mod paths;
pub mod policy;
pub mod report;
pub mod retry;
pub mod service;
pub mod storage;
pub mod tls_issuer;
pub mod update;
pub mod winsec;

pub use service::{AgentConfig, AgentError, RunningAgent, StopReason, start};

/// Makes ring the process's TLS provider (reqwest is built without one, to
/// keep aws-lc-rs and its C build out). Every TLS client calls this first;
/// only the first call does anything.
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// An error with its causes, "outer: inner: root", for one log line or one
/// status detail (reqwest and io errors hide the useful part in `source`).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
