//! Plans, renderings and staged installs (`--root` into a temporary
//! directory). Real service managers are exercised in `tests/tests/installer.rs`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::*;

const KEY: &str = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| (*s).to_owned()).collect()
}

struct Staged {
    _dir: tempfile::TempDir,
    src: PathBuf,
    root: PathBuf,
}

fn staged() -> Staged {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let root = dir.path().join("root");
    fs::create_dir_all(&src).unwrap();
    fs::create_dir_all(&root).unwrap();
    fs::write(src.join("rampart-agent"), b"#!/bin/sh\necho agent v1\n").unwrap();
    fs::write(src.join("rampart"), b"#!/bin/sh\necho app v1\n").unwrap();
    Staged {
        _dir: dir,
        src,
        root,
    }
}

impl Staged {
    fn opts(&self) -> InstallOptions {
        InstallOptions {
            agent_source: self.src.join("rampart-agent"),
            app_source: Some(self.src.join("rampart")),
            ..InstallOptions::default()
        }
    }

    fn target(&self) -> Target {
        Target {
            root: Some(self.root.clone()),
        }
    }

    fn install(&self, opts: &InstallOptions) -> Vec<String> {
        let layout = Layout::for_os(TargetOs::Linux);
        let plan = plan_install(&layout, &self.target(), opts).unwrap();
        let mut notes = Vec::new();
        execute(&plan, &self.target(), &mut |n| notes.push(n)).unwrap();
        notes
    }

    fn uninstall(&self, purge: bool) {
        let plan = uninstall_plan(&Layout::for_os(TargetOs::Linux), purge);
        execute(&plan, &self.target(), &mut |_| {}).unwrap();
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }

    /// Every entry under the root: path -> (mode, contents; directories have
    /// none).
    fn tree(&self) -> BTreeMap<String, (u32, Option<Vec<u8>>)> {
        fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, (u32, Option<Vec<u8>>)>) {
            for entry in fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let meta = fs::symlink_metadata(&path).unwrap();
                let rel = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let mode = meta.permissions().mode() & 0o7777;
                if meta.is_dir() {
                    out.insert(rel, (mode, None));
                    walk(base, &path, out);
                } else {
                    out.insert(rel, (mode, Some(fs::read(&path).unwrap())));
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.root, &self.root, &mut out);
        out
    }

    fn files(&self) -> Vec<String> {
        self.tree()
            .into_iter()
            .filter(|(_, (_, c))| c.is_some())
            .map(|(p, _)| p)
            .collect()
    }
}

#[test]
fn systemd_unit_has_the_service_settings_and_quotes_its_arguments() {
    let exec = words(&[
        "/opt/rampart/bin/rampart-agent",
        "run",
        "--config",
        "/etc/rampart/agent.json",
    ]);
    let unit = render::systemd_unit(&render::SystemdUnit {
        exec: &exec,
        self_update_dir: Some(Path::new("/opt/rampart/bin")),
    });
    for line in [
        "ExecStart=/opt/rampart/bin/rampart-agent run --config /etc/rampart/agent.json",
        "Restart=always",
        "StateDirectory=rampart",
        "RuntimeDirectory=rampart",
        "LogsDirectory=rampart",
        "ConfigurationDirectory=rampart",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        "CapabilityBoundingSet=",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged",
        "UMask=0077",
        // Issue 15, finding 1: a soft limit of 1024 let one user's
        // connections fail the owner's MFA save.
        "LimitNOFILE=65536",
        "ReadWritePaths=/opt/rampart/bin",
        "WantedBy=multi-user.target",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "missing {line:?} in\n{unit}"
        );
    }
    let packaged = render::systemd_unit(&render::SystemdUnit {
        exec: &exec,
        self_update_dir: None,
    });
    assert!(!packaged.contains("ReadWritePaths="), "{packaged}");

    assert_eq!(
        render::systemd_exec(&words(&[
            "/opt/my app/agent",
            "a\"b",
            "50%",
            "$HOME",
            "",
            "x\\y"
        ])),
        r#""/opt/my app/agent" "a\"b" 50%% $$HOME "" "x\\y""#
    );
}

#[test]
fn desktop_entry_quotes_exec_per_the_spec() {
    let entry = render::xdg_autostart(&words(&["/opt/rampart/bin/rampart"]));
    assert!(entry.starts_with("# Written by Rampart's installer"));
    for line in [
        "[Desktop Entry]",
        "Type=Application",
        "Name=Rampart",
        "Exec=/opt/rampart/bin/rampart",
    ] {
        assert!(
            entry.lines().any(|l| l == line),
            "missing {line:?} in\n{entry}"
        );
    }
    assert_eq!(
        render::desktop_exec(&words(&["/opt/my app/rampart", "100%", "a$b", "c\\d"])),
        r#""/opt/my app/rampart" 100%% "a\\$b" "c\\\\d""#
    );
}

#[test]
fn plists_name_the_job_and_escape_xml() {
    let daemon = render::launchd_daemon(
        &words(&[
            "/Library/Application Support/Rampart/bin/rampart-agent",
            "run",
            "a<&>b",
        ]),
        Path::new("/Library/Logs/Rampart/agent.log"),
    );
    assert!(daemon.contains("<key>Label</key>\n\t<string>dev.rampart.agent</string>"));
    assert!(
        daemon.contains("<string>/Library/Application Support/Rampart/bin/rampart-agent</string>")
    );
    assert!(daemon.contains("<string>a&lt;&amp;&gt;b</string>"));
    assert!(daemon.contains("<key>KeepAlive</key>\n\t<true/>"));
    let app = render::launchd_app(&words(&["/x/rampart"]));
    assert!(app.contains("<key>Label</key>\n\t<string>dev.rampart.app</string>"));
    assert!(app.contains("<key>LimitLoadToSessionType</key>\n\t<string>Aqua</string>"));
}

#[test]
fn windows_command_lines_round_trip_the_msvc_rules() {
    assert_eq!(render::windows_arg("plain"), "plain");
    assert_eq!(
        render::windows_arg(r"C:\Program Files\x.exe"),
        r#""C:\Program Files\x.exe""#
    );
    assert_eq!(render::windows_arg(r#"a"b"#), r#""a\"b""#);
    assert_eq!(render::windows_arg(r"a b\"), r#""a b\\""#);
    assert_eq!(render::windows_arg(""), r#""""#);
}

#[test]
fn windows_plan_creates_a_service_and_a_run_key() {
    let layout = Layout::for_os(TargetOs::Windows);
    let opts = InstallOptions {
        agent_source: "rampart-agent.exe".into(),
        app_source: Some("rampart.exe".into()),
        ..InstallOptions::default()
    };
    let plan = install_plan(&layout, &opts, None);
    let cmds: Vec<String> = plan.commands().map(|c| c.join(" ")).collect();
    let bin_path = r#""C:\Program Files\Rampart\rampart-agent.exe" run --windows-service --config C:\ProgramData\Rampart\agent.json"#;
    assert!(
        cmds.contains(&format!(
            "sc.exe create RampartAgent binPath= {bin_path} start= auto DisplayName= Rampart Agent"
        )),
        "{cmds:#?}"
    );
    assert!(cmds.iter().any(|c| c.starts_with(
        r"reg.exe add HKLM\Software\Microsoft\Windows\CurrentVersion\Run /v Rampart"
    )));
    assert_eq!(cmds.last().unwrap(), "sc.exe start RampartAgent");
    let acls: Vec<String> = plan
        .steps
        .iter()
        .filter(|s| matches!(s, Step::Acl { .. }))
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        acls,
        [
            r"acl    C:\ProgramData\Rampart D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;;FRFX;;;BU)",
            r"acl    C:\ProgramData\Rampart\state D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)",
            r"acl    C:\ProgramData\Rampart\logs D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)",
        ]
    );
    // The data root's ACL goes on right after it is made, before any file is
    // written in it (the Duo key); each other ACL after what it guards.
    let opts = InstallOptions {
        duo_secret_key: Some(zeroize::Zeroizing::new("secret".into())),
        ..opts
    };
    let plan = install_plan(&layout, &opts, Some(b"{}".to_vec()));
    let at = |want: &dyn Fn(&Step) -> bool| plan.steps.iter().position(want).unwrap();
    let root_dir = at(
        &|s| matches!(s, Step::Dir { path, .. } if path.as_os_str() == r"C:\ProgramData\Rampart"),
    );
    let root_acl = at(
        &|s| matches!(s, Step::Acl { sddl, .. } if *sddl == rampart_agent::winsec::DATA_ROOT_SDDL),
    );
    let first_file = at(&|s| matches!(s, Step::File { .. }));
    assert_eq!(root_acl, root_dir + 1);
    assert!(root_acl < first_file);
    let config_acl = at(&|s| {
        *s == Step::Acl {
            path: r"C:\ProgramData\Rampart\agent.json".into(),
            sddl: rampart_agent::winsec::CONFIG_FILE_SDDL,
        }
    });
    let config_file = at(
        &|s| matches!(s, Step::File { path, .. } if path.as_os_str() == r"C:\ProgramData\Rampart\agent.json"),
    );
    assert!(config_acl > config_file);
    let last_dir = plan
        .steps
        .iter()
        .rposition(|s| matches!(s, Step::Dir { .. }))
        .unwrap();
    let state_acl = at(
        &|s| matches!(s, Step::Acl { path, .. } if path.as_os_str() == r"C:\ProgramData\Rampart\state"),
    );
    assert!(state_acl > last_dir);
    let un: Vec<String> = uninstall_plan(&layout, false)
        .commands()
        .map(|c| c.join(" "))
        .collect();
    assert!(
        un.contains(&"sc.exe delete RampartAgent".to_owned()),
        "{un:?}"
    );
}

#[test]
fn macos_plan_bootstraps_the_daemon_and_installs_the_agent_plist() {
    let layout = Layout::for_os(TargetOs::Macos);
    let opts = InstallOptions {
        agent_source: "rampart-agent".into(),
        app_source: Some("rampart".into()),
        ..InstallOptions::default()
    };
    let plan = install_plan(&layout, &opts, None);
    let cmds: Vec<String> = plan.commands().map(|c| c.join(" ")).collect();
    assert_eq!(
        cmds,
        [
            "launchctl bootout system/dev.rampart.agent",
            "launchctl bootstrap system /Library/LaunchDaemons/dev.rampart.agent.plist"
        ]
    );
    assert!(
        plan.file("/Library/LaunchAgents/dev.rampart.app.plist")
            .is_some()
    );
    let daemon = String::from_utf8(
        plan.file("/Library/LaunchDaemons/dev.rampart.agent.plist")
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(
        daemon.contains("<string>/Library/Application Support/Rampart/agent.json</string>"),
        "{daemon}"
    );
}

#[test]
fn staged_install_puts_every_file_in_place_with_its_mode() {
    let s = staged();
    let notes = s.install(&InstallOptions {
        device_id: Some("LAPTOP-7".into()),
        policy_url: Some("https://policy.example.com/p.json".into()),
        public_keys: vec![format!("untrusted comment: minisign public key\n{KEY}\n")],
        ..s.opts()
    });
    assert!(
        notes
            .iter()
            .any(|n| n == "staged: not running `systemctl restart rampart-agent.service`"),
        "{notes:?}"
    );
    let tree = s.tree();
    let want: &[(&str, u32)] = &[
        ("opt/rampart", 0o755),
        ("opt/rampart/bin", 0o755),
        ("opt/rampart/bin/rampart-agent", 0o755),
        ("opt/rampart/bin/rampart", 0o755),
        ("etc/rampart", 0o755),
        ("etc/rampart/agent.json", 0o644),
        ("var/lib/rampart", 0o700),
        ("var/log/rampart", 0o750),
        ("etc/systemd/system/rampart-agent.service", 0o644),
        ("etc/xdg/autostart/rampart.desktop", 0o644),
    ];
    for (path, mode) in want {
        let (got, _) = tree
            .get(*path)
            .unwrap_or_else(|| panic!("{path} missing: {:#?}", tree.keys()));
        assert_eq!(*got, *mode, "{path}: {got:o}");
    }
    assert_eq!(s.files().len(), 5, "{:#?}", s.files());
    assert_eq!(
        fs::read(s.path("/opt/rampart/bin/rampart-agent")).unwrap(),
        b"#!/bin/sh\necho agent v1\n"
    );
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(s.path("/etc/rampart/agent.json")).unwrap()).unwrap();
    assert_eq!(
        config,
        serde_json::json!({
            "device_id": "LAPTOP-7",
            "policy_url": "https://policy.example.com/p.json",
            "public_keys": [format!("untrusted comment: minisign public key\n{KEY}")],
            "allow_unsigned_local_policy": false
        })
    );
    let unit = fs::read_to_string(s.path("/etc/systemd/system/rampart-agent.service")).unwrap();
    assert!(unit.contains(
        "ExecStart=/opt/rampart/bin/rampart-agent run --config /etc/rampart/agent.json\n"
    ));
}

#[test]
fn installing_twice_gives_the_same_tree() {
    let s = staged();
    let opts = InstallOptions {
        device_id: Some("d1".into()),
        ..s.opts()
    };
    s.install(&opts);
    let first = s.tree();
    s.install(&opts);
    assert_eq!(s.tree(), first);
    // And without flags the second time (an upgrade that keeps config).
    s.install(&s.opts());
    assert_eq!(s.tree(), first);
}

#[test]
fn upgrade_keeps_state_and_config_and_replaces_binaries() {
    let s = staged();
    s.install(&InstallOptions {
        device_id: Some("d1".into()),
        ..s.opts()
    });
    fs::write(s.path("/var/lib/rampart/mfa.json"), b"enrolled").unwrap();
    fs::write(s.path("/etc/rampart/policy.json"), b"{managed}").unwrap();
    fs::write(s.src.join("rampart-agent"), b"agent v2").unwrap();
    s.install(&s.opts());
    assert_eq!(
        fs::read(s.path("/opt/rampart/bin/rampart-agent")).unwrap(),
        b"agent v2"
    );
    assert_eq!(
        fs::read(s.path("/var/lib/rampart/mfa.json")).unwrap(),
        b"enrolled"
    );
    assert_eq!(
        fs::read(s.path("/etc/rampart/policy.json")).unwrap(),
        b"{managed}"
    );
    let config = fs::read_to_string(s.path("/etc/rampart/agent.json")).unwrap();
    assert!(config.contains("\"device_id\": \"d1\""), "{config}");

    // A flag on upgrade changes only what it names.
    s.install(&InstallOptions {
        policy_url: Some("https://p.example.com/x.json".into()),
        public_keys: vec![KEY.into()],
        ..s.opts()
    });
    let config = fs::read_to_string(s.path("/etc/rampart/agent.json")).unwrap();
    assert!(config.contains("\"device_id\": \"d1\""), "{config}");
    assert!(config.contains("https://p.example.com/x.json"), "{config}");
}

#[test]
fn update_flags_reach_the_install_config_and_are_checked() {
    let s = staged();
    let key = "ZmFrZWtleWZha2VrZXlmYWtla2V5ZmFrZWtleTAxMjM=";
    let source = rampart_agent::config::UpdateSource {
        kind: rampart_agent::config::UpdateSourceKind::Manifest,
        url: "https://r.example.com/{channel}/manifest.json".into(),
    };
    s.install(&InstallOptions {
        device_id: Some("d1".into()),
        update_source: Some(source.clone()),
        update_keys: vec![key.into()],
        ..s.opts()
    });
    let config = rampart_agent::config::InstallConfig::load(&s.path("/etc/rampart/agent.json"))
        .unwrap()
        .unwrap();
    assert_eq!(config.update_source, Some(source.clone()));
    assert_eq!(config.update_public_keys, [key]);
    // A feed without a key is refused, as the agent would refuse it.
    let fresh = staged();
    let err = plan_install(
        &Layout::for_os(TargetOs::Linux),
        &fresh.target(),
        &InstallOptions {
            update_source: Some(source),
            ..fresh.opts()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("update_public_keys: an update_source needs at least one key"),
        "{err}"
    );
}

#[test]
fn flags_the_agent_would_refuse_are_refused_before_anything_changes() {
    let s = staged();
    let err = plan_install(
        &Layout::for_os(TargetOs::Linux),
        &s.target(),
        &InstallOptions {
            policy_url: Some("https://p.example.com/x.json".into()),
            ..s.opts()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("public_keys: a policy_url needs at least one public key"),
        "{err}"
    );
    assert!(s.tree().is_empty());
}

#[test]
fn uninstall_removes_what_it_installed_and_purge_removes_state() {
    let s = staged();
    s.install(&s.opts());
    fs::write(s.path("/var/lib/rampart/mfa.json"), b"enrolled").unwrap();
    s.uninstall(false);
    assert_eq!(s.files(), ["var/lib/rampart/mfa.json"]);
    let left: Vec<String> = s
        .tree()
        .into_keys()
        .filter(|p| p.contains("rampart"))
        .collect();
    assert_eq!(left, ["var/lib/rampart", "var/lib/rampart/mfa.json"]);

    s.install(&s.opts());
    s.uninstall(true);
    assert!(s.files().is_empty(), "{:?}", s.files());
    let left: Vec<String> = s
        .tree()
        .into_keys()
        .filter(|p| p.contains("rampart"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn uninstall_keeps_a_config_dir_holding_files_it_did_not_install() {
    let s = staged();
    s.install(&s.opts());
    fs::write(s.path("/etc/rampart/policy.json"), b"{managed}").unwrap();
    let mut notes = Vec::new();
    execute(
        &uninstall_plan(&Layout::for_os(TargetOs::Linux), false),
        &s.target(),
        &mut |n| notes.push(n),
    )
    .unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("kept ") && n.contains("etc/rampart")),
        "{notes:?}"
    );
    assert!(!s.path("/etc/rampart/agent.json").exists());
    assert!(s.path("/etc/rampart/policy.json").exists());
}

#[test]
fn dry_run_text_lists_each_step() {
    let layout = Layout::for_os(TargetOs::Linux);
    let text = uninstall_plan(&layout, true).to_string();
    assert!(
        text.starts_with(
            "run    [uninstall] systemctl disable --now rampart-agent.service (may fail)\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("purge  /var/lib/rampart (and everything in it)\n"),
        "{text}"
    );
}

/// The .deb's unit and autostart entry are committed files (cargo-deb takes
/// assets from the tree); they must be what the renderer produces.
/// `RAMPART_BLESS=1 cargo test -p rampart-installer` rewrites them.
#[test]
fn packaged_files_match_the_renderer() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/deb");
    for (name, want) in [
        ("rampart-agent.service", render::deb_systemd_unit()),
        ("rampart.desktop", render::deb_autostart()),
    ] {
        let path = dir.join(name);
        if std::env::var_os("RAMPART_BLESS").is_some() {
            fs::write(&path, &want).unwrap();
        }
        let have = fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            have,
            want,
            "{} is stale: run RAMPART_BLESS=1 cargo test -p rampart-installer",
            path.display()
        );
    }
    assert!(render::deb_systemd_unit().contains("\nExecStart=/usr/bin/rampart-agent run\n"));
}

#[test]
fn the_duo_secret_key_is_written_for_root_alone_and_kept_on_upgrade() {
    use std::os::unix::fs::PermissionsExt;
    let s = staged();
    let key = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep";
    let opts = InstallOptions {
        duo_secret_key: Some(zeroize::Zeroizing::new(format!("  {key}\n"))),
        extra_ca_pem: Some(b"-----BEGIN CERTIFICATE-----\n...\n".to_vec()),
        ..s.opts()
    };
    let layout = Layout::for_os(TargetOs::Linux);
    let plan = plan_install(&layout, &s.target(), &opts).unwrap();
    assert!(
        !plan.to_string().contains(key),
        "the printed plan shows the key: {plan}"
    );
    s.install(&opts);
    let file = s.path("/etc/rampart/duo.key");
    assert_eq!(fs::read_to_string(&file).unwrap(), format!("{key}\n"));
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let config = rampart_agent::config::InstallConfig::load(&s.path("/etc/rampart/agent.json"))
        .unwrap()
        .unwrap();
    assert_eq!(
        config.extra_ca_file.as_deref(),
        Some(std::path::Path::new("/etc/rampart/extra-ca.pem"))
    );
    assert_eq!(
        fs::read(s.path("/etc/rampart/extra-ca.pem")).unwrap(),
        b"-----BEGIN CERTIFICATE-----\n...\n"
    );
    // An upgrade without the flag leaves the key alone.
    s.install(&s.opts());
    assert_eq!(fs::read_to_string(&file).unwrap(), format!("{key}\n"));
}

/// What the MSI's custom action runs: `configure` with each public property,
/// set or not.
#[test]
fn configure_writes_only_the_install_config_and_merges_on_upgrade() {
    let s = staged();
    let layout = Layout::for_os(TargetOs::Linux);
    let configure = |opts: &InstallOptions| {
        let plan = plan_configure(&layout, &s.target(), opts).unwrap();
        execute(&plan, &s.target(), &mut |_| {}).unwrap();
    };
    // No property set: nothing written, not even a default config.
    configure(&InstallOptions::default());
    assert!(s.tree().is_empty(), "{:?}", s.tree());

    configure(&InstallOptions {
        policy_url: Some("https://p.example.com/policy.json".into()),
        public_keys: vec![KEY.into()],
        ..InstallOptions::default()
    });
    assert_eq!(s.files(), ["etc/rampart/agent.json"]);
    let load = || {
        rampart_agent::config::InstallConfig::load(&s.path("/etc/rampart/agent.json"))
            .unwrap()
            .unwrap()
    };
    let first = load();
    assert_eq!(
        first.policy_url.as_deref(),
        Some("https://p.example.com/policy.json")
    );
    assert_eq!(first.public_keys, [KEY]);
    assert_eq!(first.device_id, default_device_id());

    // An upgrade that sets only the device id keeps the URL and the key.
    configure(&InstallOptions {
        device_id: Some("LAPTOP-0042".into()),
        ..InstallOptions::default()
    });
    let second = load();
    assert_eq!(second.device_id, "LAPTOP-0042");
    assert_eq!(second.policy_url, first.policy_url);
    assert_eq!(second.public_keys, first.public_keys);

    // Uninstall removes the install config and nothing the installer did
    // not write.
    fs::write(s.path("/etc/rampart/policy.json"), b"{managed}").unwrap();
    execute(&unconfigure_plan(&layout), &s.target(), &mut |_| {}).unwrap();
    assert_eq!(s.files(), ["etc/rampart/policy.json"]);
}

#[test]
fn configure_refuses_what_the_agent_would_refuse() {
    let s = staged();
    let err = plan_configure(
        &Layout::for_os(TargetOs::Linux),
        &s.target(),
        &InstallOptions {
            policy_url: Some("http://p.example.com/policy.json".into()),
            public_keys: vec![KEY.into()],
            ..InstallOptions::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("policy_url"), "{err}");
    assert!(s.tree().is_empty());
}

#[test]
fn the_host_layout_uses_the_agents_system_paths() {
    let host = Layout::host();
    let agent = rampart_agent::paths::AgentPaths::system();
    assert_eq!(host, Layout::for_os(TargetOs::host()));
    assert_eq!(host.config_file, agent.install_config());
    assert_eq!(host.state_dir, agent.state_dir);
}

/// The MSI creates the data directories but sets no ACL: `configure` does,
/// root first, with or without a config to write.
#[test]
fn configure_on_windows_puts_the_data_acls_in_place() {
    let layout = Layout::for_os(TargetOs::Windows);
    let acls = |plan: &Plan| -> Vec<String> {
        plan.steps
            .iter()
            .filter_map(|s| match s {
                Step::Acl { path, .. } => Some(path.display().to_string()),
                _ => None,
            })
            .collect()
    };
    let bare = configure_plan(&layout, None, None);
    assert_eq!(
        acls(&bare),
        [
            r"C:\ProgramData\Rampart",
            r"C:\ProgramData\Rampart\state",
            r"C:\ProgramData\Rampart\logs"
        ]
    );
    assert!(bare.file(r"C:\ProgramData\Rampart\agent.json").is_none());
    let with = configure_plan(&layout, Some(b"{}\n".to_vec()), None);
    assert_eq!(acls(&with)[1], r"C:\ProgramData\Rampart\agent.json");
    let at = |want: &dyn Fn(&Step) -> bool| with.steps.iter().position(want).unwrap();
    let root_acl = at(
        &|s| matches!(s, Step::Acl { path, .. } if path.as_os_str() == r"C:\ProgramData\Rampart"),
    );
    let file = at(&|s| matches!(s, Step::File { .. }));
    assert!(root_acl < file);
}

/// Issue 15, finding 9: the deployment secret goes in a file of its own,
/// root's alone, which the world-readable install config names; the plan
/// as printed never shows it; an upgrade without the flag keeps it.
#[test]
fn the_report_secret_is_written_for_root_alone_and_named_by_the_config() {
    use std::os::unix::fs::PermissionsExt;
    let s = staged();
    let secret = "PLANTEDreportSECRET-0123456789abcdef";
    let opts = InstallOptions {
        report_secret: Some(zeroize::Zeroizing::new(secret.into())),
        ..s.opts()
    };
    let layout = Layout::for_os(TargetOs::Linux);
    let plan = plan_install(&layout, &s.target(), &opts).unwrap();
    assert!(!plan.to_string().contains("PLANTED"), "{plan}");
    s.install(&opts);
    let file = s.path("/etc/rampart/report.secret");
    assert_eq!(fs::read_to_string(&file).unwrap(), format!("{secret}\n"));
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let config_file = s.path("/etc/rampart/agent.json");
    assert!(
        !fs::read_to_string(&config_file)
            .unwrap()
            .contains("PLANTED")
    );
    let config = rampart_agent::config::InstallConfig::load(&config_file)
        .unwrap()
        .unwrap();
    assert_eq!(
        config.report_secret_file.as_deref(),
        Some(std::path::Path::new("/etc/rampart/report.secret"))
    );
    s.install(&s.opts());
    assert_eq!(fs::read_to_string(&file).unwrap(), format!("{secret}\n"));
}

/// On Windows the secret's ACL (SYSTEM and Administrators) comes after the
/// file is written, and the MSI's `configure` writes it too.
#[test]
fn windows_guards_the_report_secret_in_install_and_configure() {
    let layout = Layout::for_os(TargetOs::Windows);
    let opts = InstallOptions {
        report_secret: Some(zeroize::Zeroizing::new(
            "PLANTEDreportSECRET-0123456789abcdef".into(),
        )),
        ..InstallOptions::default()
    };
    let secret = layout.report_secret_file();
    for plan in [
        install_plan(&layout, &opts, Some(b"{}".to_vec())),
        configure_plan(&layout, Some(b"{}".to_vec()), opts.report_secret.as_ref()),
    ] {
        let written = plan
            .steps
            .iter()
            .position(|st| matches!(st, Step::File { path, mode: 0o600, .. } if *path == secret))
            .unwrap_or_else(|| panic!("no secret file in {plan}"));
        let guarded = plan
            .steps
            .iter()
            .position(|st| matches!(st, Step::Acl { path, sddl } if *path == secret && *sddl == rampart_agent::winsec::SECRET_FILE_SDDL))
            .unwrap_or_else(|| panic!("no ACL for the secret in {plan}"));
        assert!(written < guarded, "{plan}");
    }
}

/// A plan is printed with `{:?}` in error context and by hand when
/// debugging: the secrets it writes must not come with it.
#[test]
fn a_plans_debug_shows_no_file_contents() {
    let s = staged();
    let secret = "duo-secret-key-0123456789abcdef0123456789";
    let opts = InstallOptions {
        duo_secret_key: Some(secret.to_owned().into()),
        ..s.opts()
    };
    let plan = plan_install(&Layout::for_os(TargetOs::Linux), &s.target(), &opts).unwrap();
    assert!(plan.file("/etc/rampart/duo.key").is_some(), "{plan}");
    let debug = format!("{plan:?}");
    // Neither as text nor as the list of bytes a derived Debug would print.
    let as_bytes = format!("{:?}", &secret.as_bytes()[..8]);
    assert!(!debug.contains(secret), "{debug}");
    assert!(
        !debug.contains(as_bytes.trim_matches(['[', ']'])),
        "{debug}"
    );
    assert!(debug.contains("bytes>"), "{debug}");
}

/// Issue 19: the sign-in PAM module is installed beside the binaries when it
/// came with them, readable by the PAM stacks that may load it, in no PAM
/// stack, and removed with the rest.
#[test]
fn the_pam_module_is_shipped_switched_off_and_removed_with_the_rest() {
    let s = staged();
    fs::write(s.src.join("libpam_rampart.so"), b"\x7fELF pam module").unwrap();
    let opts = InstallOptions {
        pam_source: Some(s.src.join("libpam_rampart.so")),
        ..s.opts()
    };
    s.install(&opts);
    let tree = s.tree();
    let (mode, contents) = &tree["opt/rampart/lib/pam_rampart.so"];
    assert_eq!(*mode, 0o644);
    assert_eq!(contents.as_deref(), Some(&b"\x7fELF pam module"[..]));
    assert!(
        !tree.keys().any(|p| p.starts_with("etc/pam.d")),
        "no PAM stack touched: {:?}",
        tree.keys().collect::<Vec<_>>()
    );
    // Without a module among the binaries there is none to install.
    let bare = staged();
    bare.install(&bare.opts());
    assert!(!bare.path("/opt/rampart/lib").exists());

    s.uninstall(false);
    assert!(!s.path("/opt/rampart/lib/pam_rampart.so").exists());
    assert!(!s.path("/opt/rampart").exists(), "{:?}", s.files());
}
