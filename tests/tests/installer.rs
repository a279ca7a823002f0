//! The installer against the real tools that read its output:
//! `systemd-analyze verify` for the unit, Python's `plistlib` for the launchd
//! plists, and the real `rampart-installer` binary staging into a directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;
use std::process::Command;

use rampart_installer::render;
use rampart_tests::{real_peer, workspace_bin};

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| (*s).to_owned()).collect()
}

/// `systemd-analyze verify` output: its exit code ignores unknown keys and
/// bad values (it only warns), so any line on stderr counts as a failure.
fn verify_unit(analyze: &Path, unit: &Path) -> Result<(), String> {
    let out = Command::new(analyze)
        .arg("verify")
        .arg(unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() && stderr.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {stderr}", out.status))
    }
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let Some(analyze) = real_peer("systemd-analyze", "systemd") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // verify insists that ExecStart's binary exists: stage a real one (with a
    // space in its path to exercise the quoting) and point the unit at it.
    let bin_dir = dir.path().join("opt rampart/bin");
    fs::create_dir_all(&bin_dir).unwrap();
    let agent = bin_dir.join("rampart-agent");
    fs::write(&agent, "#!/bin/sh\n").unwrap();
    fs::set_permissions(&agent, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let exec = vec![
        agent.to_string_lossy().into_owned(),
        "run".into(),
        "--config".into(),
        "/etc/rampart/agent.json".into(),
    ];
    for self_update_dir in [Some(bin_dir.as_path()), None] {
        let text = render::systemd_unit(&render::SystemdUnit {
            exec: &exec,
            self_update_dir,
        });
        let unit = dir.path().join(render::SYSTEMD_UNIT);
        fs::write(&unit, &text).unwrap();
        if let Err(e) = verify_unit(&analyze, &unit) {
            panic!("systemd-analyze verify rejected the unit: {e}\n{text}");
        }
        // The check itself can fail: a unit with a key systemd does not know.
        fs::write(&unit, format!("{text}Bogus=1\n")).unwrap();
        let err = verify_unit(&analyze, &unit).unwrap_err();
        assert!(err.contains("Unknown key"), "{err}");
    }
}

/// `systemd-analyze security --offline=yes`'s overall exposure (0 to 10,
/// lower is better; up to 2.0 is "OK").
fn exposure(analyze: &Path, unit: &Path) -> f64 {
    let out = Command::new(analyze)
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no overall exposure from systemd-analyze security:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    // "→ Overall exposure level for rampart-agent.service: 1.8 OK 🙂"
    line.rsplit(": ")
        .next()
        .and_then(|tail| tail.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the exposure in {line:?}"))
}

/// Issue 15, finding 10: the unit scored 8.6 "EXPOSED".
#[test]
fn systemd_units_are_sandboxed_ok_for_systemd_analyze_security() {
    let Some(analyze) = real_peer("systemd-analyze", "systemd") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join(render::SYSTEMD_UNIT);
    let exec = words(&["/opt/rampart/bin/rampart-agent", "run"]);
    let installed = render::systemd_unit(&render::SystemdUnit {
        exec: &exec,
        self_update_dir: Some(Path::new("/opt/rampart/bin")),
    });
    for (what, text) in [
        ("installer", installed),
        (".deb", render::deb_systemd_unit()),
    ] {
        fs::write(&unit, &text).unwrap();
        let score = exposure(&analyze, &unit);
        eprintln!("{what} unit: exposure {score}");
        assert!(score <= 2.0, "the {what} unit scores {score}:\n{text}");
    }
    // The measure tells a sandbox from none: a bare unit is far above.
    fs::write(
        &unit,
        "[Service]\nExecStart=/opt/rampart/bin/rampart-agent run\n",
    )
    .unwrap();
    let bare = exposure(&analyze, &unit);
    assert!(bare > 8.0, "a bare unit scores {bare}");
}

fn load_plist(python: &Path, file: &Path) -> serde_json::Value {
    let out = Command::new(python)
        .args([
            "-c",
            "import json, plistlib, sys; print(json.dumps(plistlib.load(open(sys.argv[1], 'rb'))))",
        ])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "plistlib rejected {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn launchd_plists_parse_with_plistlib() {
    let Some(python) = real_peer("python3", "python3") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let daemon = dir.path().join("daemon.plist");
    fs::write(
        &daemon,
        render::launchd_daemon(
            &words(&[
                "/Library/Application Support/Rampart/bin/rampart-agent",
                "run",
                "--config",
                "/Library/Application Support/Rampart/agent.json",
                "<&>'\"",
            ]),
            Path::new("/Library/Logs/Rampart/agent.log"),
        ),
    )
    .unwrap();
    assert_eq!(
        load_plist(&python, &daemon),
        serde_json::json!({
            "Label": "dev.rampart.agent",
            "ProgramArguments": [
                "/Library/Application Support/Rampart/bin/rampart-agent",
                "run",
                "--config",
                "/Library/Application Support/Rampart/agent.json",
                "<&>'\""
            ],
            "RunAtLoad": true,
            "KeepAlive": true,
            "ThrottleInterval": 5,
            "StandardErrorPath": "/Library/Logs/Rampart/agent.log"
        })
    );
    let app = dir.path().join("app.plist");
    fs::write(
        &app,
        render::launchd_app(&words(&[
            "/Library/Application Support/Rampart/bin/rampart",
        ])),
    )
    .unwrap();
    assert_eq!(
        load_plist(&python, &app),
        serde_json::json!({
            "Label": "dev.rampart.app",
            "ProgramArguments": ["/Library/Application Support/Rampart/bin/rampart"],
            "LimitLoadToSessionType": "Aqua",
            "ProcessType": "Interactive",
            "RunAtLoad": true,
            "KeepAlive": {"SuccessfulExit": false}
        })
    );
}

fn installer(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(workspace_bin("rampart-installer"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_installer_binary_stages_installs_reports_and_uninstalls() {
    let agent = workspace_bin("rampart-agent");
    let dir = tempfile::tempdir().unwrap();
    let from = dir.path().join("from");
    fs::create_dir_all(&from).unwrap();
    fs::copy(&agent, from.join("rampart-agent")).unwrap();
    let root = dir.path().join("root");
    let root_s = root.to_str().unwrap();
    let from_s = from.to_str().unwrap();

    let (ok, plan, _) = installer(&["install", "--dry-run", "--root", root_s, "--from", from_s]);
    assert!(ok);
    assert!(
        plan.contains("write  0644 root:root /etc/systemd/system/rampart-agent.service"),
        "{plan}"
    );
    assert!(!root.exists(), "--dry-run changed nothing");

    let (ok, _, stderr) = installer(&[
        "install",
        "--root",
        root_s,
        "--from",
        from_s,
        "--device-id",
        "T-1",
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("staged: not running `systemctl daemon-reload`"),
        "{stderr}"
    );
    // The installed agent accepts the config the installer wrote.
    let installed = root.join("opt/rampart/bin/rampart-agent");
    let out = Command::new(&installed).arg("--version").output().unwrap();
    assert!(out.status.success());
    let config = root.join("etc/rampart/agent.json");
    let parsed = rampart_agent::config::InstallConfig::load(&config)
        .unwrap()
        .unwrap();
    assert_eq!(parsed.device_id, "T-1");

    let (ok, status, _) = installer(&["status", "--root", root_s]);
    assert!(ok);
    assert!(
        status.contains("present  /opt/rampart/bin/rampart-agent\n"),
        "{status}"
    );
    assert!(
        status.contains("missing  /opt/rampart/bin/rampart\n"),
        "{status}"
    );

    let (ok, _, stderr) = installer(&["uninstall", "--purge", "--root", root_s]);
    assert!(ok, "{stderr}");
    let (_, status, _) = installer(&["status", "--root", root_s]);
    assert!(!status.contains("present"), "{status}");
}
