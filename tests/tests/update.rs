//! Self-update end to end: the real `rampart-agent update` against a
//! GitHub-style release API on 127.0.0.1 serving zipsigned .tar.gz archives
//! built here. The "new release" is a small script that answers `--version`
//! as the release it claims to be (or, to test the floor, as an older one).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Cursor;
use std::path::PathBuf;
use std::process::Command;

use rampart_tests::http::HttpServer;
use rampart_tests::workspace_bin;
use zipsign_api::SigningKey;

const KEY: [u8; 32] = [7; 32];
const OTHER_KEY: [u8; 32] = [9; 32];

fn target() -> String {
    format!("{}-unknown-linux-gnu", std::env::consts::ARCH)
}

fn script(version: &str) -> String {
    format!("#!/bin/sh\necho rampart-agent {version}\n")
}

fn tar_gz(binary: &str) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    {
        let mut tar = tar::Builder::new(&mut gz);
        let mut header = tar::Header::new_gnu();
        header.set_size(binary.len() as u64);
        header.set_mode(0o755);
        header.set_cksum();
        tar.append_data(&mut header, "rampart-agent", binary.as_bytes())
            .unwrap();
        tar.finish().unwrap();
    }
    gz.finish().unwrap()
}

/// Signed as `zipsign sign tar` does, with the file name as the context.
fn signed(archive: Vec<u8>, name: &str, key: [u8; 32]) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    zipsign_api::sign::copy_and_sign_tar(
        &mut Cursor::new(archive),
        &mut out,
        &[SigningKey::from_bytes(&key)],
        Some(name.as_bytes()),
    )
    .unwrap();
    out.into_inner()
}

struct Device {
    _dir: tempfile::TempDir,
    exe: PathBuf,
    config: PathBuf,
    state: PathBuf,
    original: Vec<u8>,
    _server: HttpServer,
}

/// An installed agent (a copy of the real binary), its install config
/// pinning `KEY`, and a feed offering one release, `tag`, whose archive is
/// `archive(name)`.
fn device(tag: &str, archive: impl FnOnce(&str) -> Vec<u8>) -> Device {
    let server = HttpServer::start();
    let name = format!("rampart-agent-{tag}-{}.tar.gz", target());
    let asset_path = format!("/assets/{name}");
    server.serve(&asset_path, archive(&name), "application/octet-stream");
    let release = serde_json::json!({
        "tag_name": format!("v{tag}"),
        "name": format!("Rampart {tag}"),
        "created_at": "2026-11-20T10:00:00Z",
        "body": "",
        "html_url": server.url("/release"),
        "assets": [{"name": name, "url": server.url(&asset_path)}]
    });
    server.serve(
        "/repos/acme/rampart/releases",
        serde_json::to_vec(&serde_json::json!([release])).unwrap(),
        "application/json",
    );
    server.serve(
        "/repos/acme/rampart/releases/latest",
        serde_json::to_vec(&release).unwrap(),
        "application/json",
    );

    let dir = tempfile::tempdir().unwrap();
    let bin_dir = dir.path().join("bin");
    fs::create_dir_all(&bin_dir).unwrap();
    let exe = bin_dir.join("rampart-agent");
    fs::copy(workspace_bin("rampart-agent"), &exe).unwrap();
    let key = SigningKey::from_bytes(&KEY).verifying_key().to_bytes();
    let config = dir.path().join("agent.json");
    fs::write(
        &config,
        serde_json::to_vec(&serde_json::json!({
            "device_id": "t-1",
            "update_public_keys": [data_encoding::BASE64.encode(&key)],
            "update_source": {"kind": "github", "url": server.url("/repos/acme/rampart")}
        }))
        .unwrap(),
    )
    .unwrap();
    let state = dir.path().join("state");
    Device {
        original: fs::read(&exe).unwrap(),
        _dir: dir,
        exe,
        config,
        state,
        _server: server,
    }
}

impl Device {
    fn update(&self, extra: &[&str]) -> (bool, String) {
        let out = Command::new(&self.exe)
            .arg("update")
            .arg("--config")
            .arg(&self.config)
            .arg("--state-dir")
            .arg(&self.state)
            .args(extra)
            // Where the rollback test's script records that it ran once.
            .env("RAMPART_TEST_MARK", self.state.with_file_name("ran-once"))
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("rampart-agent update {extra:?}: {text}");
        (out.status.success(), text)
    }

    fn version(&self) -> String {
        let out = Command::new(&self.exe).arg("--version").output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn assert_untouched(&self) {
        assert!(
            fs::read(&self.exe).unwrap() == self.original,
            "the binary was replaced"
        );
        let leftovers: Vec<_> = fs::read_dir(self.exe.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers,
            ["rampart-agent"],
            "nothing left beside the binary"
        );
    }
}

fn current() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[test]
fn a_newer_signed_release_is_installed_and_runs() {
    let d = device("9.9.9", |name| signed(tar_gz(&script("9.9.9")), name, KEY));
    let (ok, text) = d.update(&["--check"]);
    assert!(ok, "{text}");
    assert_eq!(text.trim(), "update available: 9.9.9");
    d.assert_untouched();

    let (ok, text) = d.update(&[]);
    assert!(ok, "{text}");
    assert_eq!(text.trim(), "updated to 9.9.9; restart the agent to run it");
    assert_eq!(d.version(), "rampart-agent 9.9.9");
    let kept = d.state.join("update/rampart-agent.previous");
    assert!(
        fs::read(&kept).unwrap() == d.original,
        "the previous binary is kept"
    );
    let floor: serde_json::Value =
        serde_json::from_slice(&fs::read(d.state.join("update-floor.json")).unwrap()).unwrap();
    assert_eq!(floor, serde_json::json!({"floor": "9.9.9"}));
}

#[test]
fn a_release_signed_with_another_key_is_refused() {
    let d = device("9.9.9", |name| {
        signed(tar_gz(&script("9.9.9")), name, OTHER_KEY)
    });
    let (ok, text) = d.update(&[]);
    assert!(!ok, "{text}");
    assert!(text.starts_with("update failed: "), "{text}");
    assert!(text.to_lowercase().contains("signature"), "{text}");
    d.assert_untouched();
    assert_eq!(d.version(), format!("rampart-agent {}", current()));
}

#[test]
fn an_unsigned_release_is_refused() {
    let d = device("9.9.9", |_| tar_gz(&script("9.9.9")));
    let (ok, text) = d.update(&[]);
    assert!(!ok, "{text}");
    assert!(text.starts_with("update failed: SignatureError"), "{text}");
    d.assert_untouched();
}

#[test]
fn a_signed_old_release_under_a_newer_tag_is_refused_by_the_floor() {
    // Properly signed, but the binary inside is older than what runs here.
    let d = device("9.9.9", |name| signed(tar_gz(&script("0.0.5")), name, KEY));
    let (ok, text) = d.update(&[]);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!(
            "the archive offered as 9.9.9 holds rampart-agent 0.0.5, older than {}",
            current()
        )),
        "{text}"
    );
    d.assert_untouched();
}

#[test]
fn the_stored_floor_refuses_an_offer_below_it() {
    let d = device("5.0.0", |name| signed(tar_gz(&script("5.0.0")), name, KEY));
    fs::create_dir_all(&d.state).unwrap();
    fs::write(d.state.join("update-floor.json"), br#"{"floor": "9.9.9"}"#).unwrap();
    let (ok, text) = d.update(&[]);
    assert!(!ok, "{text}");
    assert!(text.contains("5.0.0 is older than 9.9.9"), "{text}");
    d.assert_untouched();
}

#[test]
fn a_new_binary_that_fails_is_rolled_back() {
    // Answers --version as 9.9.9 the first time (the check before the swap)
    // and fails afterwards: the previous binary must come back.
    let flaky = "#!/bin/sh\nif [ -e \"$RAMPART_TEST_MARK\" ]; then exit 3; fi\n: > \"$RAMPART_TEST_MARK\"\necho rampart-agent 9.9.9\n";
    let d = device("9.9.9", |name| signed(tar_gz(flaky), name, KEY));
    let (ok, text) = d.update(&[]);
    assert!(!ok, "{text}");
    assert!(text.contains("the previous one is back in place"), "{text}");
    assert!(fs::read(&d.exe).unwrap() == d.original);
    assert_eq!(d.version(), format!("rampart-agent {}", current()));
}

/// Starts the copied binary as the installed service (system mode) with an
/// unsigned loopback policy beside its install config, so that every
/// endpoint stays on this machine.
fn start_service(d: &Device) -> (KillOnDrop, tempfile::TempDir, PathBuf) {
    let mut install: serde_json::Value =
        serde_json::from_slice(&fs::read(&d.config).unwrap()).unwrap();
    install["allow_unsigned_local_policy"] = serde_json::json!(true);
    fs::write(&d.config, install.to_string()).unwrap();
    let policy = rampart_tests::agent::loopback_policy(1);
    fs::write(d.config.with_file_name("policy.json"), policy.to_string()).unwrap();

    let run_dir = rampart_tests::short_tempdir();
    let socket = run_dir.path().join("agent.sock");
    let mut cmd = Command::new(&d.exe);
    cmd.arg("run")
        .arg("--socket")
        .arg(&socket)
        .arg("--state-dir")
        .arg(&d.state)
        .arg("--config")
        .arg(&d.config)
        .args(["--log", "warn"]);
    rampart_tests::agent::isolate_home(&mut cmd, run_dir.path());
    (KillOnDrop(cmd.spawn().unwrap()), run_dir, socket)
}

/// The installed service asks the feed by itself once it has measured the
/// clock, and says what it found in its status.
#[test]
fn the_service_checks_the_feed_after_its_first_clock_check() {
    let d = device(current(), |name| {
        signed(tar_gz(&script(current())), name, KEY)
    });
    let (mut agent, _run_dir, socket) = start_service(&d);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            let mut client = rampart_tests::ipc::RawClient::greeted(&socket);
            let reply = client.call(1, serde_json::json!({"type": "status"}));
            let status = reply["reply"]["response"]["status"].clone();
            if status["update"]["state"] != "not_checked" {
                break status;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the service never checked the feed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status["agent"]["mode"], "system");
    assert_eq!(status["update"]["state"], "up_to_date", "{status:#}");
    assert_eq!(status["update"]["detail"], "up to date");
    agent.0.kill().unwrap();
    d.assert_untouched();
}

/// Offered a newer signed release, the installed service installs it and
/// exits cleanly so that its service manager (Restart=always, KeepAlive)
/// starts the new binary.
#[test]
fn the_service_updates_itself_and_exits_for_its_service_manager() {
    let d = device("9.9.9", |name| signed(tar_gz(&script("9.9.9")), name, KEY));
    let (mut agent, _run_dir, _socket) = start_service(&d);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let exit = loop {
        if let Some(status) = agent.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the service did not update and exit"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
    assert_eq!(d.version(), "rampart-agent 9.9.9");
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
