//! The Windows build, end to end under Wine: the agent on its named pipe,
//! the support commands finding it without flags, a whole TOTP enrollment
//! spoken through the pipe by a client that shares none of the agent's code,
//! the support bundle, and the app's windows drawn under Xvfb.
//!
//! What Wine cannot prove: every Wine process runs as the same Unix user, so
//! "another user is refused" is covered by the identity rules' unit tests,
//! not here; and Wine's services, ACLs and fonts are Wine's, not Windows'.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rampart_tests::wine::{PipeSession, Wine, WineAgent, win_path};
use serde_json::{Value, json};

const CLI: Duration = Duration::from_secs(60);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn dev_agent_answers_status_policy_doctor_and_diagnose_found_without_a_socket_flag() {
    let Some(wine) = Wine::find() else { return };
    let _default_names = Wine::default_pipe_lock();
    let mut agent = WineAgent::start(&wine, &["--dev"], None);
    assert!(
        agent.pipe.starts_with(r"\\.\pipe\rampart-agent-"),
        "a dev agent takes the per-user pipe: {}",
        agent.pipe
    );

    let out = wine.run("rampart-agent", &["status"], CLI);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with("Rampart: Action needed\n  - MFA is not set up\n"),
        "{stdout}"
    );

    let out = wine.run("rampart-agent", &["status", "--json"], CLI);
    let status: Value = serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    assert_eq!(status["agent"]["mode"], "dev");
    assert_eq!(status["mfa"]["state"], "not_set_up");

    let out = wine.run("rampart-agent", &["policy", "show", "--json"], CLI);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let policy: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(policy["source"], "managed_file");
    assert_eq!(policy["policy"]["serial"], 1);

    // doctor and diagnose look at the files `run` was given; the socket
    // they find by themselves.
    let config = win_path(&agent.dir.path().join("etc").join("agent.json"));
    let state = win_path(&agent.dir.path().join("state"));
    let out = wine.run(
        "rampart-agent",
        &["doctor", "--config", &config, "--state-dir", &state],
        CLI,
    );
    let report = text(&out.stdout);
    let reachable = report
        .lines()
        .find(|l| l.contains("agent reachable"))
        .unwrap_or_else(|| panic!("no agent check in\n{report}"));
    assert!(
        reachable.contains("PASS") && reachable.contains(&agent.pipe),
        "{report}"
    );
    assert!(!report.contains("systemctl"), "{report}");

    let bundle = agent.dir.path().join("bundle.tar.gz");
    let files = diagnose(&wine, &config, &state, &bundle);
    assert!(
        files.iter().any(|f| f.ends_with("status.json")),
        "{files:?}"
    );

    agent.kill();
    let out = wine.run("rampart-agent", &["status"], CLI);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("not running") && err.contains("sc.exe start RampartAgent"),
        "Windows words for starting the service: {err}"
    );
    assert!(!err.contains("sudo") && !err.contains("systemctl"), "{err}");
}

/// `rampart-agent diagnose` with these (Windows) paths, writing `bundle`:
/// the bundle's entries.
fn diagnose(wine: &Wine, config: &str, state: &str, bundle: &Path) -> Vec<String> {
    let out = wine.run(
        "rampart-agent",
        &[
            "diagnose",
            "--config",
            config,
            "--state-dir",
            state,
            "-o",
            &win_path(bundle),
        ],
        CLI,
    );
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let listing = Command::new("tar").arg("tzf").arg(bundle).output().unwrap();
    assert!(listing.status.success(), "{}", text(&listing.stderr));
    text(&listing.stdout).lines().map(str::to_owned).collect()
}

/// Issue 17: Group Policy's values under HKLM\SOFTWARE\Policies\Rampart
/// set install-config keys over agent.json, key by key. Written with Wine's
/// own reg.exe in a private prefix (no other test's agent sees them), read
/// back from the support bundle's install-config.json.
#[test]
fn group_policy_in_the_registry_wins_over_the_file_key_by_key() {
    let Some(wine) = Wine::find() else { return };
    let private = wine.private_session();
    let wine = &private.wine;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.json");
    std::fs::write(
        &config,
        r#"{"device_id": "from-the-file", "allow_unsigned_local_policy": true}"#,
    )
    .unwrap();
    let key = r"HKLM\SOFTWARE\Policies\Rampart";
    let out = wine.reg(&[
        "add",
        key,
        "/v",
        "device_id",
        "/t",
        "REG_SZ",
        "/d",
        "from-group-policy",
        "/f",
    ]);
    assert!(
        out.status.success(),
        "reg add: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    let bundle = dir.path().join("bundle.tar.gz");
    let state = win_path(&dir.path().join("state"));
    let files = diagnose(wine, &win_path(&config), &state, &bundle);
    let entry = files
        .iter()
        .find(|f| f.ends_with("install-config.json"))
        .unwrap_or_else(|| panic!("no install-config.json in {files:?}"));
    let extracted = Command::new("tar")
        .arg("xzOf")
        .arg(&bundle)
        .arg(entry)
        .output()
        .unwrap();
    let install: Value = serde_json::from_slice(&extracted.stdout).expect("install-config.json");
    assert_eq!(install["device_id"], "from-group-policy", "{install:#}");
    assert_eq!(install["allow_unsigned_local_policy"], true, "{install:#}");
    assert_eq!(
        install["_set_by_mdm"],
        json!({"device_id": r"Group Policy (HKLM\SOFTWARE\Policies\Rampart)"}),
        "{install:#}"
    );
}

#[test]
fn the_service_pipe_is_found_without_flags() {
    let Some(wine) = Wine::find() else { return };
    let _default_names = Wine::default_pipe_lock();
    let agent = WineAgent::start(&wine, &[], None);
    assert_eq!(agent.pipe, r"\\.\pipe\rampart-agent");
    let out = wine.run("rampart-agent", &["status", "--json"], CLI);
    let status: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)));
    assert_eq!(status["agent"]["mode"], "system");
}

/// RFC 6238 with ring's HMAC, written here so that a fault in the agent's
/// own TOTP code cannot hide itself.
fn totp_now(otpauth_uri: &str) -> String {
    let query = otpauth_uri.split_once('?').expect("otpauth query").1;
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
    };
    assert_eq!(param("algorithm").unwrap_or("SHA1"), "SHA1");
    let digits: u32 = param("digits").unwrap_or("6").parse().unwrap();
    let period: u64 = param("period").unwrap_or("30").parse().unwrap();
    let secret = data_encoding::BASE32_NOPAD
        .decode(param("secret").expect("secret").as_bytes())
        .expect("base32 secret");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &secret);
    let mac = ring::hmac::sign(&key, &(now / period).to_be_bytes());
    let mac = mac.as_ref();
    let offset = usize::from(mac[19] & 0x0f);
    let value = u32::from_be_bytes(mac[offset..offset + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!(
        "{:0width$}",
        value % 10u32.pow(digits),
        width = digits as usize
    )
}

#[test]
fn a_whole_totp_enrollment_through_the_named_pipe() {
    let Some(wine) = Wine::find() else { return };
    let pipe = format!(r"\\.\pipe\rampart-test-{}-enrol", std::process::id());
    let agent = WineAgent::start(&wine, &["--dev"], Some(&pipe));
    let mut s = PipeSession::open(&wine, &agent.pipe);
    let mfa = |s: &mut PipeSession, id, command: Value| {
        let frame = s.call(id, json!({"type": "mfa", "command": command}));
        let response = &frame["reply"]["response"];
        assert_eq!(response["type"], "enrollment", "{frame}");
        assert!(response["view"]["error"].is_null(), "{frame}");
        response["view"].clone()
    };

    let view = mfa(&mut s, 1, json!({"type": "start_enrollment"}));
    assert_eq!(view["step"], "pairing", "{view}");
    let uri = view["pairing"]["otpauth_uri"].as_str().unwrap().to_owned();
    let view = mfa(
        &mut s,
        2,
        json!({"type": "verify_code", "code": totp_now(&uri)}),
    );
    let codes = view["recovery_codes"].as_array().expect("recovery codes");
    assert_eq!(codes.len(), 10, "{view}");
    mfa(&mut s, 3, json!({"type": "confirm_recovery_codes_saved"}));
    let view = mfa(
        &mut s,
        4,
        json!({"type": "acknowledge_offline_guide", "guide_url": "https://127.0.0.1:9/offline-access"}),
    );
    assert_eq!(view["step"], "enrolled", "{view}");

    let status = s.call(5, json!({"type": "status"}));
    assert_eq!(
        status["reply"]["response"]["status"]["mfa"]["state"], "enrolled",
        "{status}"
    );
    // The secret and the codes stay out of the log.
    let secret = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let log = agent.log();
    assert!(!log.contains(secret), "the TOTP secret was logged");
    for code in codes {
        assert!(
            !log.contains(code.as_str().unwrap()),
            "a recovery code was logged"
        );
    }
}

/// Xvfb on a display number it picks itself (`-displayfd`: no race with
/// another test run choosing the same one); killed on drop.
struct Xvfb {
    child: std::process::Child,
    display: String,
}

impl Xvfb {
    fn start() -> Self {
        use std::io::BufRead;
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x900x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        // Xvfb writes the display number once it accepts clients.
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("Xvfb stdout"))
            .read_line(&mut line)
            .expect("read Xvfb's display number");
        let number: u32 = line
            .trim()
            .parse()
            .expect("Xvfb printed its display number");
        Self {
            child,
            display: format!(":{number}"),
        }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The X window ids whose title matches `name` (a regex, as xdotool takes it).
fn windows_named(display: &str, name: &str) -> Vec<String> {
    let out = Command::new("xdotool")
        .args(["search", "--name", name])
        .env("DISPLAY", display)
        .output()
        .expect("run xdotool");
    text(&out.stdout).lines().map(str::to_owned).collect()
}

/// Saves `window` as a PNG and returns how many colours it has: a window
/// drawn with text and widgets has hundreds, a blank one one or two.
fn screenshot(display: &str, window: &str, file: &Path) -> u64 {
    let status = Command::new("import")
        .args(["-window", window])
        .arg(file)
        .env("DISPLAY", display)
        .status()
        .expect("run ImageMagick's import");
    assert!(status.success(), "import failed for window {window}");
    let out = Command::new("identify")
        .args(["-format", "%k"])
        .arg(file)
        .output()
        .expect("run ImageMagick's identify");
    text(&out.stdout).trim().parse().expect("a colour count")
}

#[test]
fn the_app_draws_its_status_window_and_the_setup_wizard_under_xvfb() {
    let Some(shared) = Wine::find() else { return };
    let x = Xvfb::start();
    // Every program of this session, the agent first, gets the display:
    // Wine's desktop process takes the first one's.
    let private = shared.private_session();
    let wine = private.wine.with_env("DISPLAY", &x.display);
    let pipe = format!(r"\\.\pipe\rampart-test-{}-app", std::process::id());
    let agent = WineAgent::start(&wine, &["--dev"], Some(&pipe));
    let app_log = std::fs::File::create(agent.dir.path().join("app.log")).unwrap();
    let mut app = wine
        .command("rampart", &[])
        .env("RAMPART_SOCKET", &agent.pipe)
        .stdout(app_log.try_clone().unwrap())
        .stderr(app_log)
        .spawn()
        .expect("start rampart.exe under Wine");

    // MFA is required and not set up: the wizard opens by itself, beside
    // the status window.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let (wizard, status) = loop {
        let wizard = windows_named(&x.display, "^Rampart: set up MFA$");
        let status = windows_named(&x.display, "^Rampart$");
        if let (Some(w), Some(s)) = (wizard.first(), status.first()) {
            break (w.clone(), s.clone());
        }
        if std::time::Instant::now() > deadline || app.try_wait().unwrap().is_some() {
            let log = std::fs::read_to_string(agent.dir.path().join("app.log")).unwrap_or_default();
            let _ = app.kill();
            panic!(
                "the app's windows did not appear (wizard {wizard:?}, status {status:?}):\n{log}"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // Give both windows time to draw what the agent answered.
    std::thread::sleep(Duration::from_secs(4));
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wine-screenshots");
    std::fs::create_dir_all(&out_dir).unwrap();
    let wizard_colours = screenshot(&x.display, &wizard, &out_dir.join("wizard.png"));
    // The wizard opened over the status window: bring that one forward.
    let _ = Command::new("xdotool")
        .args(["windowraise", &status])
        .env("DISPLAY", &x.display)
        .status();
    std::thread::sleep(Duration::from_secs(2));
    let status_colours = screenshot(&x.display, &status, &out_dir.join("status.png"));
    let _ = app.kill();
    let _ = app.wait();
    eprintln!(
        "screenshots in {}: wizard {wizard_colours} colours, status {status_colours} colours",
        out_dir.display()
    );
    assert!(wizard_colours > 16, "the wizard window is blank");
    assert!(status_colours > 16, "the status window is blank");
}
