//! Self-update end to end: the real `rampart-agent update` (and the
//! installed service) against a GitHub-style release API or a static
//! manifest on 127.0.0.1 serving zipsigned .tar.gz archives built here. The
//! "new release" is a small script that answers `--version` as the release
//! it claims to be (or, to test the floor, as an older one); where it must
//! also serve, it hands `run` to a copy of the real agent.
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
    server: HttpServer,
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

    let source = serde_json::json!({"kind": "github", "url": server.url("/repos/acme/rampart")});
    install(server, source)
}

/// An installed agent (a copy of the real binary) whose install config pins
/// `KEY` and names `source`.
fn install(server: HttpServer, source: serde_json::Value) -> Device {
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
            "update_source": source
        }))
        .unwrap(),
    )
    .unwrap();
    // The managed policy beside the install config: its time servers are
    // the ones `update` measures the clock with (loopback only here).
    fs::write(
        config.with_file_name("policy.json"),
        rampart_tests::agent::loopback_policy(1).to_string(),
    )
    .unwrap();
    let state = dir.path().join("state");
    Device {
        original: fs::read(&exe).unwrap(),
        _dir: dir,
        exe,
        config,
        state,
        server,
    }
}

/// A static manifest feed per channel (`/feed/{channel}/manifest.json`,
/// the same list on both) with one entry per `(version as written, the
/// binary inside)`, each archive signed with `KEY` under its name and
/// listed with a relative URL.
fn manifest_device(entries: &[(&str, &str)]) -> Device {
    let server = HttpServer::start();
    let releases: Vec<serde_json::Value> = entries
        .iter()
        .map(|(version, binary)| {
            let name = format!("rampart-agent-{version}-{}.tar.gz", target());
            server.serve(
                &format!("/feed/files/{name}"),
                signed(tar_gz(binary), &name, KEY),
                "application/octet-stream",
            );
            serde_json::json!({"version": version, "assets": [{"name": name, "url": format!("../files/{name}")}]})
        })
        .collect();
    let manifest = serde_json::json!({"schema": 1, "releases": releases}).to_string();
    for channel in ["stable", "beta"] {
        server.serve(
            &format!("/feed/{channel}/manifest.json"),
            manifest.clone(),
            "application/json",
        );
    }
    let source =
        serde_json::json!({"kind": "manifest", "url": server.url("/feed/{channel}/manifest.json")});
    install(server, source)
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

    fn update_as(&self, uid: Option<u32>, extra: &[&str]) -> (bool, String) {
        let mut cmd = match uid {
            Some(uid) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={uid}"))
                    .arg("--clear-groups")
                    .arg(&self.exe);
                c
            }
            None => Command::new(&self.exe),
        };
        let out = cmd
            .arg("update")
            .arg("--config")
            .arg(&self.config)
            .arg("--state-dir")
            .arg(&self.state)
            .args(extra)
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
    assert!(
        text.starts_with(
            "update to 9.9.9 failed: the release is not signed by a key this device trusts\n"
        ),
        "{text}"
    );
    // The library's words only as details.
    assert!(
        text.contains("\nDetails: ") && text.contains("signature"),
        "{text}"
    );
    d.assert_untouched();
    assert_eq!(d.version(), format!("rampart-agent {}", current()));
}

#[test]
fn an_unsigned_release_is_refused() {
    let d = device("9.9.9", |_| tar_gz(&script("9.9.9")));
    let (ok, text) = d.update(&[]);
    assert!(!ok, "{text}");
    // Finding 7: no library error name (SignatureError) as the headline.
    let headline = text.lines().next().unwrap();
    assert_eq!(
        headline,
        "update to 9.9.9 failed: the release is not signed by a key this device trusts"
    );
    for name in [
        "SignatureError",
        "VerificationRejectedError",
        "InternalError",
    ] {
        assert!(!headline.contains(name), "{text}");
    }
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
    assert!(
        text.starts_with("Rampart 9.9.9 did not start properly (the new binary does not say which version it is); the previous version is back"),
        "{text}"
    );
    assert!(fs::read(&d.exe).unwrap() == d.original);
    assert_eq!(d.version(), format!("rampart-agent {}", current()));
}

/// Starts the copied binary as the installed service (system mode) with an
/// unsigned loopback policy beside its install config, so that every
/// endpoint stays on this machine.
fn start_service(d: &Device) -> (KillOnDrop, tempfile::TempDir, PathBuf) {
    start_service_with(d, |_| {})
}

/// [`start_service`] with the policy changed by `edit` first.
fn start_service_with(
    d: &Device,
    edit: impl FnOnce(&mut serde_json::Value),
) -> (KillOnDrop, tempfile::TempDir, PathBuf) {
    let mut install: serde_json::Value =
        serde_json::from_slice(&fs::read(&d.config).unwrap()).unwrap();
    install["allow_unsigned_local_policy"] = serde_json::json!(true);
    fs::write(&d.config, install.to_string()).unwrap();
    let mut policy = rampart_tests::agent::loopback_policy(1);
    edit(&mut policy);
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

/// A release that says `--version` as `version` and runs the real agent
/// (kept at `real`) for everything else: it serves.
fn serving_script(version: &str, real: &std::path::Path) -> String {
    format!(
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo rampart-agent {version}; exit 0; fi\nexec {} \"$@\"\n",
        real.display()
    )
}

/// Offered a newer signed release, the installed service installs it, runs
/// it as a trial until it serves, and exits cleanly so that its service
/// manager (Restart=always, KeepAlive) starts the new binary.
#[test]
fn the_service_updates_itself_and_exits_for_its_service_manager() {
    let real = tempfile::tempdir().unwrap();
    let real_bin = real.path().join("rampart-agent-real");
    fs::copy(workspace_bin("rampart-agent"), &real_bin).unwrap();
    let release = serving_script("9.9.9", &real_bin);
    let d = device("9.9.9", |name| signed(tar_gz(&release), name, KEY));
    let (mut agent, _run_dir, _socket) = start_service(&d);
    let exit = wait_for_exit(&mut agent.0, 30);
    assert!(exit.success(), "{exit:?}");
    assert_eq!(d.version(), "rampart-agent 9.9.9");
    // It served: the floor rose, nothing awaits recovery.
    let floor: serde_json::Value =
        serde_json::from_slice(&fs::read(d.state.join("update-floor.json")).unwrap()).unwrap();
    assert_eq!(floor, serde_json::json!({"floor": "9.9.9"}));
    assert!(!d.state.join("update/journal.json").exists());
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls the service's status until `done` holds.
fn status_when(
    socket: &std::path::Path,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            let mut client = rampart_tests::ipc::RawClient::greeted(socket);
            let reply = client.call(1, serde_json::json!({"type": "status"}));
            let status = reply["reply"]["response"]["status"].clone();
            if done(&status) {
                return status;
            }
        }
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Finding 3: "v0.2.0" in a manifest was skipped ("up to date" forever).
#[test]
fn a_v_prefixed_manifest_release_is_installed() {
    let d = manifest_device(&[("v9.9.9", &script("9.9.9"))]);
    let (ok, text) = d.update(&["--check"]);
    assert!(ok, "{text}");
    assert_eq!(text.trim(), "update available: 9.9.9");
    let (ok, text) = d.update(&[]);
    assert!(ok, "{text}");
    assert_eq!(d.version(), "rampart-agent 9.9.9");
}

/// Finding 3: "0.3.0-beta.1" made every device fail ("is not a version").
/// A prerelease is offered on the beta channel only, ordered by semver.
#[test]
fn prereleases_go_to_the_beta_channel_only_in_semver_order() {
    let d = manifest_device(&[
        ("9.9.9-beta.2", &script("9.9.9-beta.2")),
        ("9.9.9-beta.10", &script("9.9.9-beta.10")),
        (current(), &script(current())),
    ]);
    let (ok, text) = d.update(&["--check"]);
    assert!(ok, "{text}");
    assert_eq!(text.trim(), "up to date");
    let (ok, text) = d.update(&["--check", "--channel", "beta"]);
    assert!(ok, "{text}");
    assert_eq!(text.trim(), "update available: 9.9.9-beta.10");
    let (ok, text) = d.update(&["--channel", "beta"]);
    assert!(ok, "{text}");
    assert_eq!(d.version(), "rampart-agent 9.9.9-beta.10");
}

/// Finding 3: a tag that is not a version is named, plainly, and the device
/// carries on.
#[test]
fn an_unreadable_tag_is_named_and_the_device_carries_on() {
    let d = manifest_device(&[
        ("nightly", &script("9.9.9")),
        (current(), &script(current())),
    ]);
    let (ok, text) = d.update(&["--check"]);
    assert!(ok, "{text}");
    assert_eq!(
        text.trim(),
        "up to date (ignored: the feed lists a release that is not a version: \"nightly\")"
    );
}

/// Finding 4: a 1 GiB asset was downloaded to /tmp before being refused.
/// The cap (the manifest's `size`, or 64 MiB) stops the download itself.
#[test]
fn a_too_large_release_is_refused_while_downloading() {
    // 64 MiB + 1 byte, its length not declared: only counting stops it.
    let d = manifest_device(&[]);
    let name = format!("rampart-agent-9.9.9-{}.tar.gz", target());
    d.server.script(
        &format!("/feed/files/{name}"),
        [
            rampart_tests::http::Reply::new(200, vec![0u8; 64 * 1024 * 1024 + 1])
                .undeclared_length(),
        ],
    );
    let manifest = serde_json::json!({"schema": 1, "releases": [
        {"version": "9.9.9", "assets": [{"name": name, "url": format!("../files/{name}")}]}
    ]});
    d.server.serve(
        "/feed/stable/manifest.json",
        manifest.to_string(),
        "application/json",
    );
    let (ok, text) = d.update(&[]);
    assert!(!ok, "{text}");
    assert!(
        text.starts_with(
            "update to 9.9.9 failed: the release archive is larger than 67108864 bytes\n"
        ),
        "{text}"
    );
    d.assert_untouched();
    assert!(
        !d.state.join("update/tmp").exists(),
        "no download left behind"
    );

    // The manifest's size is the cap when it gives one (declared length).
    let real = signed(tar_gz(&script("9.9.9")), &name, KEY);
    d.server.serve(
        &format!("/feed/files/{name}"),
        real.clone(),
        "application/octet-stream",
    );
    let manifest = serde_json::json!({"schema": 1, "releases": [
        {"version": "9.9.9", "assets": [{"name": name, "url": format!("../files/{name}"), "size": real.len() - 1}]}
    ]});
    d.server.serve(
        "/feed/stable/manifest.json",
        manifest.to_string(),
        "application/json",
    );
    let (ok, text) = d.update(&[]);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!(
            "larger than {} bytes (the server said so before sending it)",
            real.len() - 1
        )),
        "{text}"
    );
    d.assert_untouched();
}

/// Finding 4: a server trickling a byte every 5 s held the updater
/// indefinitely. A stall timeout and an overall deadline end it.
#[test]
fn a_trickling_server_is_given_up_on() {
    use rampart_tests::http::{Reply, Stall};
    let d = manifest_device(&[("9.9.9", &script("9.9.9"))]);
    let name = format!("rampart-agent-9.9.9-{}.tar.gz", target());
    let path = format!("/feed/files/{name}");
    let body = signed(tar_gz(&script("9.9.9")), &name, KEY);
    // A byte every 300 ms: never stalled for 1 s, over the 2 s deadline.
    d.server.script(
        &path,
        [Reply::new(200, body.clone()).stall(Stall::Trickle(300))],
    );
    let started = std::time::Instant::now();
    let (ok, text) = d.update(&["--download-deadline-secs", "2", "--stall-secs", "1"]);
    assert!(!ok, "{text}");
    assert!(
        text.starts_with("update to 9.9.9 failed: the release download took longer than 2 s\n"),
        "{text}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // A byte every 1.5 s: stalled past 1 s.
    d.server
        .script(&path, [Reply::new(200, body).stall(Stall::Trickle(1500))]);
    let (ok, text) = d.update(&["--download-deadline-secs", "60", "--stall-secs", "1"]);
    assert!(!ok, "{text}");
    assert!(
        text.starts_with("update to 9.9.9 failed: the release server sent nothing for 1 s\n"),
        "{text}"
    );
    d.assert_untouched();
}

/// Finding 4: nothing is downloaded when the binary's folder cannot be
/// written. As root, the updater runs as `nobody` (root writes anywhere).
#[test]
fn no_download_when_the_install_folder_is_not_writable() {
    use std::os::unix::fs::PermissionsExt;
    let d = manifest_device(&[("9.9.9", &script("9.9.9"))]);
    let bin_dir = d.exe.parent().unwrap();
    let root = rustix::process::geteuid().is_root();
    let uid = root.then_some(65534);
    fs::set_permissions(bin_dir, fs::Permissions::from_mode(0o555)).unwrap();
    if root {
        // nobody must reach the binary, the config and its own state dir.
        let top = bin_dir.parent().unwrap();
        fs::set_permissions(top, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&d.config, fs::Permissions::from_mode(0o644)).unwrap();
        fs::create_dir_all(&d.state).unwrap();
        rustix::fs::chown(
            &d.state,
            Some(rustix::process::Uid::from_raw(65534)),
            Some(rustix::process::Gid::from_raw(65534)),
        )
        .unwrap();
    }
    let (ok, text) = d.update_as(uid, &[]);
    fs::set_permissions(bin_dir, fs::Permissions::from_mode(0o755)).unwrap();
    assert!(!ok, "{text}");
    assert!(
        text.starts_with(&format!(
            "update to 9.9.9 failed: Rampart cannot write to {} (where it is installed), so it cannot replace itself; nothing was downloaded",
            bin_dir.display()
        )),
        "{text}"
    );
    let downloads = d.server.requests_to(&format!(
        "/feed/files/rampart-agent-9.9.9-{}.tar.gz",
        target()
    ));
    assert!(downloads.is_empty(), "downloaded anyway: {downloads:?}");
    d.assert_untouched();
}

/// Finding 5: a feed outage, or IT withdrawing a release (the feed lists an
/// older one), turned every device's status to Error. Now a warning, in
/// plain words, and the report to IT carries the update's state and reason.
#[test]
fn a_feed_outage_or_a_withdrawn_release_is_a_warning_not_an_error() {
    // Nothing listens on the feed's port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let d = device("9.9.9", |name| signed(tar_gz(&script("9.9.9")), name, KEY));
    let mut install: serde_json::Value =
        serde_json::from_slice(&fs::read(&d.config).unwrap()).unwrap();
    install["update_source"]["url"] =
        serde_json::json!(format!("http://127.0.0.1:{port}/repos/acme/rampart"));
    fs::write(&d.config, install.to_string()).unwrap();
    let (_agent, _run_dir, socket) = start_service(&d);
    let status = status_when(&socket, "the check failed", |s| {
        !s["update"]["problem"].is_null()
    });
    assert_eq!(
        status["update"]["problem"]["cause"], "update_check_failed",
        "{status:#}"
    );
    assert_eq!(
        status["update"]["detail"],
        format!(
            "could not check for updates: the release server 127.0.0.1:{port} could not be reached"
        )
    );
    assert_ne!(status["overall"], "error", "{status:#}");

    // IT withdrew 9.9.9: the feed lists 5.0.0, this device has 9.9.9's floor.
    let d = device("5.0.0", |name| signed(tar_gz(&script("5.0.0")), name, KEY));
    fs::create_dir_all(&d.state).unwrap();
    fs::write(d.state.join("update-floor.json"), br#"{"floor": "9.9.9"}"#).unwrap();
    let collector = HttpServer::start();
    collector.script(
        "/collect",
        (0..20).map(|_| rampart_tests::http::Reply::new(200, "{}")),
    );
    let (_agent, _run_dir, socket) = start_service_with(&d, |policy| {
        policy["reporting"] =
            serde_json::json!({"url": collector.url("/collect"), "interval_secs": 3600});
    });
    let status = status_when(&socket, "the check ran", |s| {
        s["update"]["state"] != "not_checked"
    });
    assert_eq!(
        status["update"]["problem"]["cause"], "older_release_offered",
        "{status:#}"
    );
    assert_eq!(status["update"]["offered_version"], "5.0.0");
    assert_ne!(status["overall"], "error", "{status:#}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let report = loop {
        let sent: Vec<serde_json::Value> = collector
            .requests_to("/collect")
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect();
        if let Some(r) = sent
            .into_iter()
            .rev()
            .find(|r| r["update"]["state"] == "up_to_date")
        {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no report with the update's state"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(report["update"]["offered_version"], "5.0.0", "{report:#}");
    assert_eq!(report["update"]["cause"], "older_release_offered");
    assert!(
        report["update"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("IT offers only an older release: 5.0.0 is older than 9.9.9"),
        "{report:#}"
    );
    assert_ne!(report["overall"], "error");
}

/// Finding 1: a signed release that answers `--version` but crashes on
/// `run` looped forever under the service manager. Now the service's trial
/// sees it never serve: the previous binary comes back, 9.9.9 is marked bad
/// (never offered again here, the floor stays), and the next start shows
/// and reports the rollback as an error in plain words.
#[test]
fn a_release_that_crashes_on_run_is_rolled_back_and_never_offered_again() {
    let crashing = "#!/bin/sh\nif [ \"$1\" = --version ]; then echo rampart-agent 9.9.9; exit 0; fi\necho 'rampart-agent 9.9.9: boom' >&2\nexit 1\n";
    let d = device("9.9.9", |name| signed(tar_gz(crashing), name, KEY));
    let (mut agent, _run_dir, _socket) = start_service(&d);
    let exit = wait_for_exit(&mut agent.0, 60);
    assert!(exit.success(), "{exit:?}");
    assert!(
        fs::read(&d.exe).unwrap() == d.original,
        "the previous binary is back"
    );
    assert_eq!(d.version(), format!("rampart-agent {}", current()));
    let floor: serde_json::Value =
        serde_json::from_slice(&fs::read(d.state.join("update-floor.json")).unwrap()).unwrap();
    assert_eq!(floor["bad"], serde_json::json!(["9.9.9"]), "{floor}");
    assert!(
        floor["floor"].is_null(),
        "the floor did not rise to the bad release: {floor}"
    );
    assert!(!d.state.join("update/journal.json").exists());

    // The service manager starts the previous binary again.
    let feed_asked = || d.server.requests_to("/repos/acme/rampart/releases").len();
    let asked_before = feed_asked();
    let collector = HttpServer::start();
    collector.script(
        "/collect",
        (0..20).map(|_| rampart_tests::http::Reply::new(200, "{}")),
    );
    let (mut agent, _run_dir, socket) = start_service_with(&d, |policy| {
        // A new serial: the first start accepted serial 1 without reporting.
        policy["serial"] = serde_json::json!(2);
        policy["reporting"] =
            serde_json::json!({"url": collector.url("/collect"), "interval_secs": 3600});
    });
    let status = status_when(&socket, "the rollback is shown", |s| {
        s["update"]["state"] == "failed"
    });
    assert_eq!(status["overall"], "error", "{status:#}");
    assert_eq!(status["update"]["problem"]["cause"], "update_rolled_back");
    let detail = status["update"]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("Rampart 9.9.9 did not start properly (it exited with code 1 before it was serving); the previous version is back and 9.9.9 will not be installed again here"),
        "{detail}"
    );
    // Its next check finds only the bad release: nothing is installed and
    // the rollback stays in view.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while feed_asked() == asked_before {
        assert!(
            std::time::Instant::now() < deadline,
            "the restarted service never asked the feed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let status = status_when(&socket, "still failed", |s| {
        s["update"]["state"] == "failed"
    });
    assert_eq!(status["update"]["problem"]["cause"], "update_rolled_back");
    assert!(
        agent.0.try_wait().unwrap().is_none(),
        "it did not update again"
    );
    assert!(fs::read(&d.exe).unwrap() == d.original);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let report = loop {
        let sent: Vec<serde_json::Value> = collector
            .requests_to("/collect")
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect();
        if let Some(r) = sent.into_iter().find(|r| r["update"]["state"] == "failed") {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "IT was not told");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(report["overall"], "error");
    assert_eq!(report["update"]["cause"], "update_rolled_back");
    assert_eq!(report["update"]["offered_version"], "9.9.9");
}

/// Finding 6: the CLI ignored the clock. It measures it as the service
/// does: a clock 3 h off (by a real time server) pauses the update.
#[test]
fn the_cli_measures_the_clock_and_pauses_when_it_is_hours_off() {
    let Some(ahead) =
        rampart_tests::chrony::Chronyd::start("127.0.0.1".parse().unwrap(), Some("+3h"))
    else {
        return;
    };
    let d = device("9.9.9", |name| signed(tar_gz(&script("9.9.9")), name, KEY));
    let (ok, text) = d.update(&["--check", "--ntp-server", &ahead.server()]);
    assert!(!ok, "{text}");
    assert_eq!(
        text.lines().next().unwrap(),
        "updates paused: the clock is 3 h off"
    );
    drop(ahead);
    let Some(right) = rampart_tests::chrony::Chronyd::start("127.0.0.1".parse().unwrap(), None)
    else {
        return;
    };
    let (ok, text) = d.update(&["--check", "--ntp-server", &right.server()]);
    assert!(ok, "{text}");
    assert_eq!(text.trim(), "update available: 9.9.9");
}

/// Finding 2: two updaters at once could make `.previous` the new binary.
/// One update at a time: the second is told plainly and changes nothing.
#[test]
fn two_updaters_at_once_take_turns() {
    use rampart_tests::http::{Reply, Stall};
    let d = manifest_device(&[("9.9.9", &script("9.9.9"))]);
    let name = format!("rampart-agent-9.9.9-{}.tar.gz", target());
    let body = signed(tar_gz(&script("9.9.9")), &name, KEY);
    // The first download takes a while (a byte every 10 ms, about 3 s).
    d.server.script(
        &format!("/feed/files/{name}"),
        [Reply::new(200, body).stall(Stall::Trickle(10))],
    );
    let spawn = || {
        Command::new(&d.exe)
            .args(["update", "--config"])
            .arg(&d.config)
            .arg("--state-dir")
            .arg(&d.state)
            .output()
    };
    let first = std::thread::scope(|s| {
        let first = s.spawn(spawn);
        // The second starts once the first is downloading.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while d
            .server
            .requests_to(&format!("/feed/files/{name}"))
            .is_empty()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the first never downloaded"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let second = spawn().unwrap();
        let text = String::from_utf8_lossy(&second.stdout).into_owned();
        assert!(!second.status.success(), "{text}");
        assert!(
            text.starts_with("update to 9.9.9 failed: another update is already running"),
            "{text}"
        );
        first.join().unwrap().unwrap()
    });
    let text = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{text}");
    assert_eq!(d.version(), "rampart-agent 9.9.9");
    assert!(
        fs::read(d.state.join("update/rampart-agent.previous")).unwrap() == d.original,
        "the previous binary is the one that ran before"
    );
}

/// Finding 2: a kill left temporary directories behind (15 dirs, 170 MiB in
/// /tmp). Downloads go to the state directory's update area, and the next
/// update removes what a killed one left.
#[test]
fn a_killed_download_leaves_nothing_behind_after_the_next_update() {
    use rampart_tests::http::{Reply, Stall};
    let d = manifest_device(&[("9.9.9", &script("9.9.9"))]);
    let name = format!("rampart-agent-9.9.9-{}.tar.gz", target());
    let body = signed(tar_gz(&script("9.9.9")), &name, KEY);
    d.server.script(
        &format!("/feed/files/{name}"),
        [Reply::new(200, body).stall(Stall::Trickle(50))],
    );
    let mut child = Command::new(&d.exe)
        .args(["update", "--config"])
        .arg(&d.config)
        .arg("--state-dir")
        .arg(&d.state)
        .spawn()
        .unwrap();
    let partial = d.state.join("update/tmp").join(&name);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !partial.exists() {
        assert!(std::time::Instant::now() < deadline, "no download started");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(partial.exists(), "the kill left the partial download");
    let (ok, text) = d.update(&[]);
    assert!(ok, "{text}");
    assert!(
        !d.state.join("update/tmp").exists(),
        "the leftover was removed"
    );
    assert_eq!(d.version(), "rampart-agent 9.9.9");
}

/// Finding 6: a pause for a wrong clock was not retried when the clock was
/// fixed (the next check came 6 h later, and the status said "clock in
/// sync" beside "updates paused for the clock"). Now the first clock check
/// in range starts an update check.
#[test]
fn a_clock_pause_ends_as_soon_as_the_clock_is_right() {
    use rampart_tests::chrony::Chronyd;
    let Some(ahead) = Chronyd::start("127.0.0.1".parse().unwrap(), Some("+3h")) else {
        return;
    };
    let addr = ahead.addr();
    let d = device(current(), |name| {
        signed(tar_gz(&script(current())), name, KEY)
    });
    let (_agent, _run_dir, socket) = start_service_with(&d, |policy| {
        policy["clock"] = serde_json::json!({"ntp_servers": [ahead.server()]});
    });
    let status = status_when(&socket, "paused for the clock", |s| {
        s["update"]["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("updates paused: the clock is"))
    });
    assert_eq!(
        status["update"]["detail"],
        "updates paused: the clock is 3 h off"
    );
    // The time server is put right; the clock is checked again.
    drop(ahead);
    let Some(_right) = Chronyd::start_on(addr, None) else {
        return;
    };
    let mut client = rampart_tests::ipc::RawClient::greeted(&socket);
    let reply = client.call(2, serde_json::json!({"type": "refresh", "check": "clock"}));
    assert!(reply["reply"]["error"].is_null(), "{reply}");
    let status = status_when(&socket, "checked once the clock is right", |s| {
        s["update"]["state"] == "up_to_date"
    });
    assert_eq!(status["clock"]["state"], "synced", "{status:#}");
    assert_eq!(status["update"]["detail"], "up to date");
}

/// The service's exit, which must come within `secs` (it updates, then
/// exits for its service manager).
fn wait_for_exit(agent: &mut std::process::Child, secs: u64) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(status) = agent.try_wait().unwrap() {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the service did not update and exit"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
