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

    // Staged: installed, nothing running (exit 3).
    let (code, status, _) = installer_code(&["status", "--root", root_s]);
    assert_eq!(code, Some(3), "{status}");
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

fn installer_code(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(workspace_bin("rampart-installer"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A directory holding a copy of the agent, for `install --from`.
fn agent_source(dir: &Path) -> String {
    let from = dir.join("from");
    fs::create_dir_all(&from).unwrap();
    fs::copy(workspace_bin("rampart-agent"), from.join("rampart-agent")).unwrap();
    from.to_str().unwrap().to_owned()
}

/// Issue 17: detection scripts (Jamf, Intune) read `status`'s exit code:
/// 4 nothing installed, 3 installed but nothing answers, 0 a real agent
/// answered on the socket.
#[test]
fn status_exit_codes_tell_not_installed_from_not_running_from_running() {
    let dir = tempfile::tempdir().unwrap();
    let from = agent_source(dir.path());
    let root = dir.path().join("root");
    let root_s = root.to_str().unwrap();

    let (code, stdout, _) = installer_code(&["status", "--root", root_s]);
    assert_eq!(code, Some(4), "{stdout}");
    assert!(stdout.contains("\nnot-installed: "), "{stdout}");

    let (code, _, stderr) = installer_code(&["install", "--root", root_s, "--from", &from]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stdout, _) = installer_code(&["status", "--root", root_s]);
    assert_eq!(code, Some(3), "{stdout}");
    assert!(
        stdout.contains("\nnot-running: installed, but the agent does not answer"),
        "{stdout}"
    );
    assert!(stdout.contains("systemctl start rampart-agent"), "{stdout}");

    let agent = rampart_tests::agent::AgentProcess::start_dev(&[]);
    let socket = agent.socket.to_str().unwrap();
    let (code, stdout, _) = installer_code(&["status", "--root", root_s, "--socket", socket]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "\nrunning: Rampart agent {} answered",
            env!("CARGO_PKG_VERSION")
        )),
        "{stdout}"
    );
    // An agent installed some other way (a package) is running all the same.
    let empty = dir.path().join("empty");
    let (code, _, _) = installer_code(&[
        "status",
        "--root",
        empty.to_str().unwrap(),
        "--socket",
        socket,
    ]);
    assert_eq!(code, Some(0));
    // The Debian package's files, with nothing answering: installed, not running.
    for file in [
        "usr/bin/rampart-agent",
        "usr/lib/systemd/system/rampart-agent.service",
    ] {
        fs::create_dir_all(empty.join(file).parent().unwrap()).unwrap();
        fs::write(empty.join(file), "").unwrap();
    }
    let (code, stdout, _) = installer_code(&["status", "--root", empty.to_str().unwrap()]);
    assert_eq!(code, Some(3), "{stdout}");
}

fn ca_pem() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

/// `--extra-ca-file`: checked by the agent's reader, copied into the config
/// directory, named by its absolute path; anything else stops the install
/// with the file's name and changes nothing.
#[test]
fn the_extra_ca_file_is_checked_copied_and_named_absolutely() {
    let dir = tempfile::tempdir().unwrap();
    let from = agent_source(dir.path());
    let root = dir.path().join("root");
    let root_s = root.to_str().unwrap();
    let pem = ca_pem();
    fs::write(dir.path().join("proxy-ca.pem"), &pem).unwrap();
    fs::write(dir.path().join("not-pem.txt"), "hello\n").unwrap();
    fs::write(
        dir.path().join("broken.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();

    let run_in = |args: &[&str]| {
        let out = Command::new(workspace_bin("rampart-installer"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for (file, want) in [
        ("not-pem.txt", "holds no certificate"),
        ("broken.pem", "certificate 1 cannot be read"),
        ("absent.pem", "cannot be read"),
    ] {
        let (code, stderr) = run_in(&[
            "install",
            "--root",
            root_s,
            "--from",
            &from,
            "--extra-ca-file",
            file,
        ]);
        assert_eq!(code, Some(1), "{file}: {stderr}");
        assert!(
            stderr.contains(file)
                && stderr.contains(want)
                && stderr.contains("nothing was installed"),
            "{file}: {stderr}"
        );
        assert!(
            !root.exists(),
            "{file}: the refused install wrote something"
        );
    }

    // A relative path is fine: the copy is what the config names.
    let (code, stderr) = run_in(&[
        "install",
        "--root",
        root_s,
        "--from",
        &from,
        "--extra-ca-file",
        "proxy-ca.pem",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        fs::read_to_string(root.join("etc/rampart/extra-ca.pem")).unwrap(),
        pem
    );
    let config = rampart_agent::config::InstallConfig::load(&root.join("etc/rampart/agent.json"))
        .unwrap()
        .unwrap();
    assert_eq!(
        config.extra_ca_file.as_deref(),
        Some(Path::new("/etc/rampart/extra-ca.pem"))
    );
    // The agent's own reader accepts the copy.
    assert_eq!(
        rampart_agent::network::extra_roots(&root.join("etc/rampart/extra-ca.pem"))
            .unwrap()
            .len(),
        1
    );
}

/// `--pubkey` replaces the pinned keys and says so when it drops one;
/// `--add-pubkey` keeps them (key rotation).
#[test]
fn pubkey_replaces_the_keys_and_add_pubkey_adds_one() {
    let dir = tempfile::tempdir().unwrap();
    let from = agent_source(dir.path());
    let root = dir.path().join("root");
    let root_s = root.to_str().unwrap();
    let key = |name: &str| {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let path = dir.path().join(name);
        fs::write(&path, pair.pk.to_box().unwrap().into_string()).unwrap();
        (path.to_str().unwrap().to_owned(), pair.pk.to_base64())
    };
    let (old_file, old) = key("old.pub");
    let (new_file, new) = key("new.pub");
    let (third_file, third) = key("third.pub");
    let keys = || {
        rampart_agent::config::InstallConfig::load(&root.join("etc/rampart/agent.json"))
            .unwrap()
            .unwrap()
            .public_keys
            .iter()
            .map(|k| {
                rampart_agent::policy::verify::PinnedKey::parse(k)
                    .unwrap()
                    .id()
                    .to_string()
            })
            .collect::<Vec<_>>()
    };
    let id = |b64: &str| {
        rampart_agent::policy::verify::PinnedKey::parse(b64)
            .unwrap()
            .id()
            .to_string()
    };
    let install = |args: &[&str]| {
        let mut all = vec!["install", "--root", root_s, "--from", &from];
        all.extend_from_slice(args);
        installer_code(&all)
    };

    let (code, _, stderr) = install(&["--pubkey", &old_file]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(keys(), [id(&old)]);

    let (code, _, stderr) = install(&["--add-pubkey", &new_file]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(keys(), [id(&old), id(&new)]);
    assert!(
        stderr.contains("--add-pubkey: 1 key(s) added, 2 trusted in all"),
        "{stderr}"
    );
    // Adding one already there adds nothing.
    let (_, _, stderr) = install(&["--add-pubkey", &new_file]);
    assert!(
        stderr.contains("0 key(s) added, 2 trusted in all"),
        "{stderr}"
    );

    let (code, _, stderr) = install(&["--pubkey", &third_file]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(keys(), [id(&third)]);
    assert!(
        stderr.contains(
            "--pubkey replaces the policy keys: 2 key(s) in place will no longer be trusted"
        ),
        "{stderr}"
    );

    let (code, _, stderr) = install(&["--pubkey", &old_file, "--add-pubkey", &new_file]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}
