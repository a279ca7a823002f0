//! Tidy tests, as rust-analyzer keeps them: the architecture's rules and the
//! documents' claims checked against the tree, so that ARCHITECTURE.md and
//! docs/protocol.md cannot drift from the code.
// Test helpers: a missing file is the test failing, with its path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rampart_shared::mfa::MfaCommand;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Each package's direct dependencies, from Cargo.lock.
fn lock_graph() -> BTreeMap<String, Vec<String>> {
    let lock = read("Cargo.lock");
    let mut graph = BTreeMap::new();
    for block in lock.split("[[package]]").skip(1) {
        let Some(name) = block
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .map(|n| n.trim_end_matches('"').to_owned())
        else {
            continue;
        };
        let deps = match block.split_once("dependencies = [") {
            Some((_, rest)) => rest
                .split(']')
                .next()
                .unwrap_or("")
                .lines()
                .filter_map(|l| {
                    let l = l.trim().trim_end_matches(',').trim_matches('"');
                    // "name" or "name version": the name is the first word.
                    l.split_whitespace().next().map(str::to_owned)
                })
                .collect(),
            None => Vec::new(),
        };
        graph.entry(name).or_insert(deps);
    }
    graph
}

/// Architecture Invariant (shared/src/lib.rs): `rampart-shared` performs no
/// I/O and depends on no async runtime, GUI toolkit or HTTP stack, not even
/// through another crate.
#[test]
fn shared_depends_on_no_runtime_gui_or_network_stack() {
    let graph = lock_graph();
    let mut seen = BTreeSet::new();
    let mut todo = vec!["rampart-shared".to_owned()];
    while let Some(name) = todo.pop() {
        if seen.insert(name.clone()) {
            todo.extend(graph.get(&name).cloned().unwrap_or_default());
        }
    }
    assert!(seen.len() > 5, "Cargo.lock was not read: {seen:?}");
    let forbidden = [
        "tokio", "iced", "reqwest", "hyper", "winit", "wgpu", "rustls", "mio",
    ];
    let found: Vec<&String> = seen
        .iter()
        .filter(|n| {
            forbidden
                .iter()
                .any(|f| n.as_str() == *f || n.starts_with(&format!("{f}_")))
        })
        .collect();
    assert!(found.is_empty(), "rampart-shared reaches {found:?}");
}

/// One of each MFA command. A new variant stops this match compiling until
/// it is added to the list beside it.
fn every_mfa_command() -> Vec<MfaCommand> {
    let all = vec![
        MfaCommand::StartEnrollment,
        MfaCommand::VerifyCode {
            code: "123456".into(),
        },
        MfaCommand::ConfirmRecoveryCodesSaved,
        MfaCommand::AcknowledgeOfflineGuide {
            guide_url: "https://example.com/".into(),
        },
        MfaCommand::RegenerateRecoveryCodes,
        MfaCommand::ResetEnrollment,
        MfaCommand::SendPush { device: None },
        MfaCommand::CheckProgress,
        MfaCommand::RenewActivation,
    ];
    for command in &all {
        match command {
            MfaCommand::StartEnrollment
            | MfaCommand::VerifyCode { .. }
            | MfaCommand::ConfirmRecoveryCodesSaved
            | MfaCommand::AcknowledgeOfflineGuide { .. }
            | MfaCommand::RegenerateRecoveryCodes
            | MfaCommand::ResetEnrollment
            | MfaCommand::SendPush { .. }
            | MfaCommand::CheckProgress
            | MfaCommand::RenewActivation => {}
        }
    }
    all
}

#[test]
fn every_mfa_command_is_in_the_protocol_document() {
    let doc = read("docs/protocol.md");
    for command in every_mfa_command() {
        let json = serde_json::to_value(&command).unwrap();
        let name = json["type"].as_str().unwrap().to_owned();
        assert_eq!(name, command.name());
        assert!(
            doc.contains(&format!("`{name}`")),
            "docs/protocol.md does not name the MFA command `{name}`"
        );
    }
}

/// Every module of the workspace's crates, as `crate/path` without `.rs`.
fn modules() -> Vec<(String, String)> {
    let mut found = Vec::new();
    for krate in ["shared", "agent", "gui", "installer", "tests"] {
        let src = root().join(krate).join("src");
        let mut dirs = vec![src.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                    continue;
                };
                if path.extension().is_none_or(|e| e != "rs")
                    || matches!(stem, "main" | "lib" | "mod" | "tests" | "test_support")
                {
                    continue;
                }
                found.push((krate.to_owned(), stem.to_owned()));
            }
        }
    }
    found.sort();
    found
}

/// ARCHITECTURE.md's code map names every module (as `name` or as the last
/// part of a `path/name`), so that a new module cannot arrive unmapped.
#[test]
fn every_module_is_in_the_code_map() {
    let map = read("ARCHITECTURE.md");
    let quoted: BTreeSet<String> = map
        .split('`')
        .skip(1)
        .step_by(2)
        .flat_map(|q| {
            q.split(['/', ':', '(', ')', ',', ' ', '.', '{', '}'])
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    let missing: Vec<String> = modules()
        .into_iter()
        .filter(|(_, m)| !quoted.contains(m))
        .map(|(k, m)| format!("{k}: {m}"))
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's code map does not name: {missing:?}"
    );
}

/// The built-in policy opens a page of this repository's docs as the
/// offline-access guide: the page exists and describes the sign-in that
/// exists (the prompt's words, recovery codes, the throttle's words).
#[test]
fn the_built_in_offline_guide_is_a_page_here_and_describes_the_sign_in() {
    let url = rampart_shared::policy::Policy::default()
        .links
        .offline_guide_url;
    let base = format!("{}/", rampart_shared::policy::DOCS_BASE_URL);
    let page = url
        .strip_prefix(&base)
        .unwrap_or_else(|| panic!("{url} is not under {base}"));
    let guide = read(&format!("docs/{page}"));
    assert!(guide.contains(rampart_shared::signin::PROMPT.trim()));
    assert!(guide.contains("Too many wrong codes. Try again in"));
    assert!(guide.contains("That code was already used to sign in"));
    assert!(guide.contains("recovery code"));
}
