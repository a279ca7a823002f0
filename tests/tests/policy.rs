//! Signed policy end to end: the agent's PolicyStore against a real HTTP
//! server on 127.0.0.1, keys and signatures made by the real
//! `rampart-agent policy ...` binary, and interop with the stock `minisign`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rampart_agent::config::InstallConfig;
use rampart_agent::paths::AgentPaths;
use rampart_agent::policy::{FetchError, FetchOutcome, FetchTimeouts, PolicyStore};
use rampart_shared::status::PolicySource;
use rampart_tests::agent::{AgentProcess, loopback_policy};
use rampart_tests::http::{HttpServer, Reply, Stall};
use rampart_tests::ipc::RawClient;
use rampart_tests::{real_peer, short_tempdir, workspace_bin};

const POLICY: &str = "/rampart/policy.json";
const SIG: &str = "/rampart/policy.json.minisig";

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn agent(args: &[&str], dir: &Path) -> Output {
    Command::new(workspace_bin("rampart-agent"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run rampart-agent")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn policy_doc(serial: u64, organization: &str) -> String {
    format!(
        r#"{{"schema": 1, "serial": {serial}, "organization": "{organization}", "mfa": {{"required": true}}, "poll_interval_secs": 600}}"#
    )
}

/// A key pair made with `rampart-agent policy keygen`.
struct Key {
    dir: tempfile::TempDir,
}

impl Key {
    fn new() -> Self {
        let dir = short_tempdir();
        let out = agent(&["policy", "keygen", "--out", "k"], dir.path());
        assert!(out.status.success(), "{}", text(&out));
        Self { dir }
    }

    fn public(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("k.pub")).unwrap()
    }

    /// Signs `document` with `rampart-agent policy sign`: (document, signature).
    fn sign(&self, document: &str) -> (String, String) {
        let file = self.dir.path().join("policy.json");
        std::fs::write(&file, document).unwrap();
        let out = agent(
            &["policy", "sign", file.to_str().unwrap(), "--key", "k.key"],
            self.dir.path(),
        );
        assert!(out.status.success(), "{}", text(&out));
        let sig = std::fs::read_to_string(self.dir.path().join("policy.json.minisig")).unwrap();
        (document.to_owned(), sig)
    }
}

struct Fixture {
    server: HttpServer,
    key: Key,
    _dir: tempfile::TempDir,
    paths: AgentPaths,
    config: InstallConfig,
}

impl Fixture {
    fn new() -> Self {
        Self::with_server(HttpServer::start())
    }

    /// The policy server over HTTPS, its CA the install config's
    /// `extra_ca_file`.
    fn https(keep_alive: bool) -> Self {
        Self::with_server(HttpServer::start_https(keep_alive))
    }

    fn with_server(server: HttpServer) -> Self {
        let extra_ca = server
            .url("/")
            .starts_with("https")
            .then(|| server.ca_file().to_owned());
        let key = Key::new();
        let dir = short_tempdir();
        let paths = AgentPaths {
            config_dir: dir.path().join("etc"),
            state_dir: dir.path().join("state"),
            log_dir: dir.path().join("log"),
            socket: dir.path().join("sock"),
        };
        let config = InstallConfig::parse(
            serde_json::json!({
                "device_id": "test-device",
                "policy_url": server.url(POLICY),
                "public_keys": [key.public()],
                "extra_ca_file": extra_ca,
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        Self {
            server,
            key,
            _dir: dir,
            paths,
            config,
        }
    }

    fn publish(&self, (document, signature): (String, String)) {
        self.server.serve(POLICY, document, "application/json");
        self.server.serve(SIG, signature, "text/plain");
    }

    fn store(&self) -> PolicyStore {
        let timeouts = FetchTimeouts {
            connect: Duration::from_secs(5),
            request: Duration::from_millis(800),
        };
        let mut store =
            PolicyStore::load_with_timeouts(&self.paths, Some(&self.config), now(), timeouts);
        store.seed_jitter(7);
        store
    }

    /// A store with serial 1 accepted from the server.
    fn accepted(&self) -> PolicyStore {
        self.publish(self.key.sign(&policy_doc(1, "First")));
        let mut store = self.store();
        let outcome = store.fetch().await_blocking();
        let applied = store.apply(outcome, now());
        assert!(applied.changed && applied.rejected.is_none(), "{applied:?}");
        assert_eq!(store.in_force().1, PolicySource::Remote);
        assert_eq!(store.in_force().0.organization, "First");
        self.server.clear_requests();
        store
    }
}

/// The store's fetch is async (reqwest on tokio); each test drives it on a
/// current-thread runtime.
trait Blocking: std::future::Future + Sized {
    fn await_blocking(self) -> Self::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(self)
    }
}

impl<F: std::future::Future> Blocking for F {}

fn poll(store: &mut PolicyStore) -> rampart_agent::policy::Applied {
    let outcome = store.fetch().await_blocking();
    store.apply(outcome, now())
}

#[test]
fn a_signed_policy_is_accepted_then_a_second_poll_gets_304_without_a_download() {
    let f = Fixture::new();
    let mut store = f.accepted();
    let section = store.section();
    assert_eq!(
        (section.source, section.serial, section.error),
        (PolicySource::Remote, 1, None)
    );
    let saved = store.persisted().last.clone().unwrap();
    assert_eq!(saved.etag, f.server.etag(POLICY));

    let outcome = store.fetch().await_blocking();
    assert!(matches!(outcome, FetchOutcome::NotModified), "{outcome:?}");
    let applied = store.apply(outcome, now());
    assert!(!applied.changed);
    let next = applied.next_poll.unwrap().as_secs_f64();
    assert!((540.0..660.0).contains(&next), "{next}");

    let requests = f.server.requests();
    assert_eq!(
        requests.len(),
        1,
        "only policy.json, not its signature: {requests:?}"
    );
    assert_eq!(requests[0].path, POLICY);
    assert_eq!(
        requests[0].header("if-none-match"),
        f.server.etag(POLICY).as_deref()
    );
    assert_eq!(
        requests[0].header("if-modified-since"),
        Some("Mon, 23 Nov 2026 10:00:00 GMT")
    );
    assert_eq!((requests[0].status, requests[0].body_len), (304, 0));
}

/// Two polls on one runtime, as the service makes them, the first one's
/// document accepted before the second: (first, second).
fn two_polls(store: &mut PolicyStore) -> (FetchOutcome, FetchOutcome) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let first = runtime.block_on(store.fetch());
    let applied = store.apply(first.clone(), now());
    assert!(applied.changed && applied.rejected.is_none(), "{applied:?}");
    (first, runtime.block_on(store.fetch()))
}

#[test]
fn polls_over_https_trust_the_extra_ca_and_keep_their_connection() {
    let f = Fixture::https(true);
    f.publish(f.key.sign(&policy_doc(1, "Kept alive")));
    let mut store = f.store();
    let (first, second) = two_polls(&mut store);
    assert!(matches!(first, FetchOutcome::Fetched(_)), "{first:?}");
    assert!(matches!(second, FetchOutcome::NotModified), "{second:?}");

    let requests = f.server.requests();
    let seen: Vec<_> = requests
        .iter()
        .map(|r| (r.path.as_str(), r.status, r.connection))
        .collect();
    // The document, its signature, then the next poll's 304: one TLS
    // connection, one handshake.
    assert_eq!(seen, [(POLICY, 200, 1), (SIG, 200, 1), (POLICY, 304, 1)]);
    assert!(requests.iter().all(|r| r.tls_resumed == Some(false)));
}

#[test]
fn a_new_connection_resumes_the_tls_session() {
    // A server that closes after every answer, as one behind a load
    // balancer may: each request is a new connection, and all but the
    // first resume the session instead of a full handshake.
    let f = Fixture::https(false);
    f.publish(f.key.sign(&policy_doc(1, "Resumed")));
    let mut store = f.store();
    let (first, second) = two_polls(&mut store);
    assert!(matches!(first, FetchOutcome::Fetched(_)), "{first:?}");
    assert!(matches!(second, FetchOutcome::NotModified), "{second:?}");
    let seen: Vec<_> = f
        .server
        .requests()
        .iter()
        .map(|r| (r.path.clone(), r.connection, r.tls_resumed))
        .collect();
    assert_eq!(
        seen,
        [
            (POLICY.to_owned(), 1, Some(false)),
            (SIG.to_owned(), 2, Some(true)),
            (POLICY.to_owned(), 3, Some(true)),
        ]
    );
}

#[test]
fn a_newer_serial_replaces_the_policy_and_survives_a_restart() {
    let f = Fixture::new();
    let mut store = f.accepted();
    f.publish(f.key.sign(&policy_doc(2, "Second")));
    let applied = poll(&mut store);
    assert!(applied.changed, "{applied:?}");
    assert_eq!(store.in_force().0.organization, "Second");
    let requests = f.server.requests();
    assert_eq!(
        requests
            .iter()
            .map(|r| (r.path.as_str(), r.status))
            .collect::<Vec<_>>(),
        [(POLICY, 200), (SIG, 200)]
    );

    let restarted = f.store();
    assert_eq!(restarted.in_force().1, PolicySource::LastKnownGood);
    assert_eq!(restarted.in_force().0.organization, "Second");
}

#[test]
fn one_tampered_byte_is_rejected_and_the_previous_policy_stays() {
    let f = Fixture::new();
    let mut store = f.accepted();
    let (document, signature) = f.key.sign(&policy_doc(2, "Second"));
    f.publish((document.replace("Second", "Secone"), signature));
    let applied = poll(&mut store);
    assert!(!applied.changed);
    let why = applied.rejected.unwrap();
    assert!(why.contains("does not match the document"), "{why}");
    assert_eq!(store.section().error.as_deref(), Some(why.as_str()));
    assert_eq!(
        (
            store.section().serial,
            store.in_force().0.organization.as_str()
        ),
        (1, "First")
    );
}

#[test]
fn a_policy_signed_with_another_key_is_rejected() {
    let f = Fixture::new();
    let mut store = f.accepted();
    f.publish(Key::new().sign(&policy_doc(2, "Intruder")));
    let why = poll(&mut store).rejected.unwrap();
    assert!(why.contains("which is not a pinned key"), "{why}");
    assert_eq!(store.in_force().0.organization, "First");
}

#[test]
fn a_lower_serial_is_rejected_even_after_a_restart() {
    let f = Fixture::new();
    let mut store = f.accepted();
    f.publish(f.key.sign(&policy_doc(5, "Five")));
    assert!(poll(&mut store).changed);
    drop(store);

    let mut restarted = f.store();
    f.publish(f.key.sign(&policy_doc(4, "Four")));
    let why = poll(&mut restarted).rejected.unwrap();
    assert!(
        why.contains("serial 4 is lower than serial 5 already accepted"),
        "{why}"
    );
    assert_eq!(restarted.in_force().0.organization, "Five");
    assert_eq!(restarted.in_force().1, PolicySource::LastKnownGood);
}

#[test]
fn server_down_at_start_uses_the_last_known_good_copy() {
    let mut f = Fixture::new();
    drop(f.accepted());
    // Replace the server by nothing: the port now refuses connections.
    let url = f.server.url(POLICY);
    f.server = HttpServer::start();

    let mut store = f.store();
    assert_eq!(store.in_force().1, PolicySource::LastKnownGood);
    assert_eq!(store.in_force().0.organization, "First");
    let outcome = store.fetch().await_blocking();
    let FetchOutcome::Failed(FetchError::Connect { url: failed, .. }) = &outcome else {
        panic!("expected a connection error, got {outcome:?}");
    };
    assert_eq!(failed, &url);
    let applied = store.apply(outcome, now());
    let next = applied.next_poll.unwrap().as_secs_f64();
    assert!(
        (27.0..33.0).contains(&next),
        "first retry after 30 s ±10 %: {next}"
    );
    assert_eq!(store.in_force().1, PolicySource::LastKnownGood);
    assert_eq!(
        store.section().error,
        None,
        "a fetch error is not a rejected document"
    );
}

#[test]
fn errors_back_off_and_keep_the_previous_policy() {
    let f = Fixture::new();
    let mut store = f.accepted();
    let (document, signature) = f.key.sign(&policy_doc(2, "Second"));
    f.publish((document.clone(), signature.clone()));
    let big = vec![b' '; 3 * 1024 * 1024];
    f.server.script(
        POLICY,
        [
            Reply::new(500, "boom"),
            Reply::new(200, document.clone()).stall(Stall::BeforeHeaders),
            Reply::new(200, "<html>garbage</html>"),
            Reply::new(200, big.clone()),
            Reply::new(200, big)
                .undeclared_length()
                .stall(Stall::AfterBody),
        ],
    );

    let mut delays = Vec::new();
    let mut check = |store: &mut PolicyStore, want: &str| {
        let outcome = store.fetch().await_blocking();
        let what = match &outcome {
            FetchOutcome::Failed(e) => e.to_string(),
            other => format!("{other:?}"),
        };
        let applied = store.apply(outcome, now());
        let problem = applied.rejected.clone().unwrap_or(what);
        assert!(problem.contains(want), "want {want:?}, got {problem}");
        assert!(!applied.changed);
        assert_eq!(store.in_force().0.organization, "First");
        delays.push(applied.next_poll.unwrap().as_secs_f64());
    };
    check(&mut store, "the server answered HTTP 500");
    check(&mut store, "no answer within");
    check(&mut store, "not valid JSON");
    check(&mut store, "the body is larger than 1048576 bytes");
    // No Content-Length, 3 MB, then the server holds the connection: only a
    // client that stops at the cap while streaming sees "larger than" here;
    // one that reads to the end would time out instead.
    check(&mut store, "the body is larger than 1048576 bytes");
    assert_eq!(store.consecutive_errors(), 5);
    for (delay, base) in delays.iter().zip([30.0, 60.0, 120.0, 240.0, 480.0]) {
        assert!((base * 0.9..base * 1.1).contains(delay), "{delays:?}");
    }

    // The script is used up: the real file is served, accepted, backoff over.
    let applied = poll(&mut store);
    assert!(applied.changed, "{applied:?}");
    assert_eq!(store.in_force().0.organization, "Second");
    assert_eq!(store.consecutive_errors(), 0);
}

#[test]
fn redirects_are_followed_up_to_three() {
    let f = Fixture::new();
    f.publish(f.key.sign(&policy_doc(1, "First")));
    let hop = |n: u32| Reply::redirect(302, &f.server.url(&format!("/hop{n}")));
    f.server.script(POLICY, [hop(1)]);
    f.server.script("/hop1", [hop(2)]);
    f.server
        .script("/hop2", [Reply::redirect(302, &f.server.url(POLICY))]);
    let mut store = f.store();
    let applied = poll(&mut store);
    assert!(
        applied.changed,
        "three redirects are allowed: {applied:?} {:?}",
        store.fetch_error()
    );

    f.server.script(POLICY, [hop(1)]);
    f.server.script("/hop1", [hop(2)]);
    f.server.script("/hop2", [hop(3)]);
    f.server
        .script("/hop3", [Reply::redirect(302, &f.server.url(POLICY))]);
    let outcome = store.fetch().await_blocking();
    let FetchOutcome::Failed(FetchError::Redirect { detail, .. }) = &outcome else {
        panic!("expected a redirect error, got {outcome:?}");
    };
    assert!(detail.contains("more than 3 redirects"), "{detail}");

    f.server.script(
        POLICY,
        [Reply::redirect(302, "http://example.com/policy.json")],
    );
    let outcome = store.fetch().await_blocking();
    let FetchOutcome::Failed(FetchError::Redirect { detail, .. }) = &outcome else {
        panic!("expected a redirect error, got {outcome:?}");
    };
    assert!(detail.contains("only allowed to loopback"), "{detail}");
}

// ---- the IT command line, through the real binary ----

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn keygen_sign_verify_and_lint_through_the_binary() {
    let key = Key::new();
    let dir = key.dir.path();
    #[cfg(unix)]
    assert_eq!(
        (mode(&dir.join("k.key")), mode(&dir.join("k.pub"))),
        (0o600, 0o644)
    );
    let again = agent(&["policy", "keygen", "--out", "k"], dir);
    assert!(
        !again.status.success() && text(&again).contains("exists; pass --force"),
        "{}",
        text(&again)
    );

    write(dir, "p.json", &policy_doc(3, "Acme"));
    let signed = agent(&["policy", "sign", "p.json", "--key", "k.key"], dir);
    assert!(signed.status.success(), "{}", text(&signed));
    let good = agent(&["policy", "verify", "p.json", "--pubkey", "k.pub"], dir);
    assert_eq!(good.status.code(), Some(0), "{}", text(&good));
    assert!(String::from_utf8_lossy(&good.stdout).contains("signature good"));

    write(dir, "p.json", &policy_doc(3, "Acmf"));
    let bad = agent(&["policy", "verify", "p.json", "--pubkey", "k.pub"], dir);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(
        text(&bad).contains("does not match the document"),
        "{}",
        text(&bad)
    );
    std::fs::remove_file(dir.join("p.json.minisig")).unwrap();
    let missing = agent(&["policy", "verify", "p.json", "--pubkey", "k.pub"], dir);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    assert!(
        text(&missing).contains("p.json.minisig does not exist"),
        "{}",
        text(&missing)
    );

    let ok = agent(&["policy", "lint", "p.json"], dir);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    write(
        dir,
        "bad.json",
        r#"{"schema": 1, "serial": -1, "mfa": {"requried": true}}"#,
    );
    let lint = agent(&["policy", "lint", "bad.json"], dir);
    assert_eq!(lint.status.code(), Some(1), "{}", text(&lint));
    let stdout = String::from_utf8_lossy(&lint.stdout);
    for want in [
        "bad.json: serial: expected a whole number",
        "bad.json: mfa.requried: unknown field",
        "bad.json: mfa.required: missing required field",
    ] {
        assert!(stdout.contains(want), "{want}\n{stdout}");
    }
    let unsigned = agent(&["policy", "sign", "bad.json", "--key", "k.key"], dir);
    assert_eq!(unsigned.status.code(), Some(1), "{}", text(&unsigned));
    assert!(!dir.join("bad.json.minisig").exists());

    // A key given twice: serde_json alone would read the last one and say ok.
    write(
        dir,
        "twice.json",
        r#"{"schema": 1, "serial": 17, "mfa": {"required": true, "provider": {"kind": "totp", "x": 1, "x": 2}}, "serial": 50}"#,
    );
    let lint = agent(&["policy", "lint", "twice.json"], dir);
    assert_eq!(lint.status.code(), Some(1), "{}", text(&lint));
    let stdout = String::from_utf8_lossy(&lint.stdout);
    for want in [
        "twice.json: serial: appears more than once in the same object",
        "twice.json: mfa.provider.x: appears more than once in the same object",
    ] {
        assert!(stdout.contains(want), "{want}\n{stdout}");
    }
    let refused = agent(&["policy", "sign", "twice.json", "--key", "k.key"], dir);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(!dir.join("twice.json.minisig").exists());
}

#[test]
fn interop_with_the_stock_minisign_tool() {
    let Some(minisign) = real_peer("minisign", "minisign") else {
        return;
    };
    let dir = short_tempdir();
    let dir = dir.path();
    write(dir, "p.json", &policy_doc(9, "Acme"));

    // minisign -G / -S  ->  rampart-agent policy verify
    let generated = Command::new(&minisign)
        .args(["-G", "-W", "-p", "m.pub", "-s", "m.key"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(generated.status.success(), "{}", text(&generated));
    let sign = Command::new(&minisign)
        .args(["-S", "-s", "m.key", "-m", "p.json"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(sign.status.success(), "{}", text(&sign));
    let ours = agent(&["policy", "verify", "p.json", "--pubkey", "m.pub"], dir);
    assert_eq!(ours.status.code(), Some(0), "{}", text(&ours));
    // Legacy (non-prehashed) signatures from minisign -l verify too.
    let legacy = Command::new(&minisign)
        .args([
            "-S",
            "-l",
            "-s",
            "m.key",
            "-m",
            "p.json",
            "-x",
            "legacy.minisig",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(legacy.status.success(), "{}", text(&legacy));
    let ours = agent(
        &[
            "policy",
            "verify",
            "p.json",
            "--pubkey",
            "m.pub",
            "--sig",
            "legacy.minisig",
        ],
        dir,
    );
    assert_eq!(ours.status.code(), Some(0), "{}", text(&ours));

    // rampart-agent policy keygen / sign  ->  minisign -V
    let keygen = agent(&["policy", "keygen", "--out", "r"], dir);
    assert!(keygen.status.success(), "{}", text(&keygen));
    let signed = agent(&["policy", "sign", "p.json", "--key", "r.key"], dir);
    assert!(signed.status.success(), "{}", text(&signed));
    let theirs = Command::new(&minisign)
        .args(["-V", "-p", "r.pub", "-m", "p.json"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(theirs.status.success(), "{}", text(&theirs));
    assert!(
        String::from_utf8_lossy(&theirs.stdout).contains("file:p.json"),
        "{}",
        text(&theirs)
    );
    // ... and minisign refuses it once the document changes.
    write(dir, "p.json", &policy_doc(9, "Acmf"));
    let tampered = Command::new(&minisign)
        .args(["-V", "-p", "r.pub", "-m", "p.json"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(!tampered.status.success(), "{}", text(&tampered));
}

/// Issue 17: every key kind the stock tool makes (`-G -W` unencrypted,
/// `-G` with a password), both directions, with no terminal: stdin is
/// /dev/null for the agent, the stock tool reads its password from a pipe.
#[test]
fn minisign_keys_of_every_kind_sign_and_verify_without_a_terminal() {
    let Some(minisign) = real_peer("minisign", "minisign") else {
        return;
    };
    let dir = short_tempdir();
    let dir = dir.path();
    write(dir, "p.json", &policy_doc(4, "Acme"));
    let stock = |args: &[&str], stdin: &str| {
        use std::io::Write as _;
        let mut child = Command::new(&minisign)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let ours = |args: &[&str], env: Option<&str>| {
        let mut command = Command::new(workspace_bin("rampart-agent"));
        command
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .env_remove("RAMPART_SIGNING_PASSWORD");
        if let Some(password) = env {
            command.env("RAMPART_SIGNING_PASSWORD", password);
        }
        command.output().unwrap()
    };
    let made = stock(&["-G", "-W", "-p", "u.pub", "-s", "u.key"], "");
    assert!(made.status.success(), "{}", text(&made));
    let made = stock(
        &["-G", "-p", "e.pub", "-s", "e.key"],
        "pass phrase\npass phrase\n",
    );
    assert!(made.status.success(), "{}", text(&made));
    write(dir, "pw.txt", "pass phrase\n");
    write(dir, "wrong.txt", "not it\n");

    // The agent signs with the stock keys -> the stock tool verifies.
    for (key, pubkey, extra, env) in [
        ("u.key", "u.pub", &[][..], None),
        ("e.key", "e.pub", &["--password-file", "pw.txt"][..], None),
        ("e.key", "e.pub", &[][..], Some("pass phrase")),
    ] {
        let _ = std::fs::remove_file(dir.join("p.json.minisig"));
        let mut args = vec!["policy", "sign", "p.json", "--key", key];
        args.extend_from_slice(extra);
        let signed = ours(&args, env);
        assert_eq!(signed.status.code(), Some(0), "{args:?}\n{}", text(&signed));
        let checked = stock(&["-V", "-p", pubkey, "-m", "p.json"], "");
        assert!(checked.status.success(), "{args:?}\n{}", text(&checked));
        assert!(
            String::from_utf8_lossy(&checked.stdout).contains("file:p.json"),
            "{}",
            text(&checked)
        );
    }

    // A protected key without a password or with a wrong one: a sentence
    // naming the way out, no signature written, never the password.
    let _ = std::fs::remove_file(dir.join("p.json.minisig"));
    let refused = ours(&["policy", "sign", "p.json", "--key", "e.key"], None);
    assert_ne!(refused.status.code(), Some(0), "{}", text(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("no terminal") && stderr.contains("--password-file"),
        "{stderr}"
    );
    let wrong = ours(
        &[
            "policy",
            "sign",
            "p.json",
            "--key",
            "e.key",
            "--password-file",
            "wrong.txt",
        ],
        None,
    );
    assert_ne!(wrong.status.code(), Some(0), "{}", text(&wrong));
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("wrong password"), "{stderr}");
    assert!(!stderr.contains("not it"), "{stderr}");
    assert!(!dir.join("p.json.minisig").exists());

    // The stock tool signs with both keys -> the agent verifies.
    for (key, pubkey, password) in [("u.key", "u.pub", ""), ("e.key", "e.pub", "pass phrase\n")] {
        let signed = stock(&["-S", "-s", key, "-m", "p.json"], password);
        assert!(signed.status.success(), "{key}\n{}", text(&signed));
        let checked = ours(&["policy", "verify", "p.json", "--pubkey", pubkey], None);
        assert_eq!(checked.status.code(), Some(0), "{key}\n{}", text(&checked));
    }
}

/// `rampart-agent policy lint FILE | head -1`, with the reader already gone
/// before the first write: the command must end quietly (exit 0, nothing on
/// stderr), not panic with exit 101.
#[test]
fn commands_end_quietly_when_the_reader_closed_the_pipe() {
    let dir = short_tempdir();
    let d = dir.path();
    write(d, "ok.json", &policy_doc(3, "Acme"));
    write(
        d,
        "bad.json",
        r#"{"schema": 1, "serial": -1, "mfa": {"requried": true}}"#,
    );
    let closed_port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let closed = closed_port.local_addr().unwrap().to_string();
    drop(closed_port);
    for args in [
        &["policy", "lint", "ok.json"][..],
        &["policy", "lint", "bad.json"][..],
        &["check-clock", "--server", &closed, "--timeout", "300"][..],
        &[
            "check-clock",
            "--json",
            "--server",
            &closed,
            "--timeout",
            "300",
        ][..],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(workspace_bin("rampart-agent"))
            .args(args)
            .current_dir(d)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            (out.status.code(), stderr.as_ref()),
            (Some(0), ""),
            "rampart-agent {args:?}"
        );
    }

    // The same commands with a reader still report their findings by exit code.
    let lint = agent(&["policy", "lint", "bad.json"], d);
    assert_eq!(lint.status.code(), Some(1), "{}", text(&lint));
}

// ---- continuity across restarts, with the real agent process ----

/// Issue 15, finding 3: a managed policy file deleted or tampered with put
/// the built-in default (serial 0, public NTP servers) back after a restart.
/// Signed with the stock `minisign`; the agent accepts serial 5, the file is
/// deleted, then tampered with, the agent restarted each time: serial 5 stays
/// in force, the status says why, and only `policy reset` goes back.
#[test]
fn a_deleted_or_tampered_managed_file_never_lowers_the_serial_across_a_restart() {
    let Some(minisign) = real_peer("minisign", "minisign") else {
        return;
    };
    let keys = short_tempdir();
    let k = keys.path();
    let generated = Command::new(&minisign)
        .args(["-G", "-W", "-p", "m.pub", "-s", "m.key"])
        .current_dir(k)
        .output()
        .unwrap();
    assert!(generated.status.success(), "{}", text(&generated));
    let public = std::fs::read_to_string(k.join("m.pub")).unwrap();

    // Only signed managed files: the first, unsigned one is refused.
    let five = loopback_policy(5);
    let mut agent = AgentProcess::start_dev_with_install(
        &five,
        &serde_json::json!({"allow_unsigned_local_policy": false, "public_keys": [public]}),
        &[],
    );
    let s = agent.wait_for_status("the unsigned file's rejection", |s| {
        !s["policy"]["error"].is_null()
    });
    assert_eq!(s["policy"]["serial"], 0, "{s:#}");

    // Signed by minisign in another directory, then put in place signature
    // first, so that the agent never sees the document without it.
    let document = five.to_string();
    write(k, "policy.json", &document);
    let signed = Command::new(&minisign)
        .args(["-S", "-s", "m.key", "-m", "policy.json"])
        .current_dir(k)
        .output()
        .unwrap();
    assert!(signed.status.success(), "{}", text(&signed));
    let managed = agent.managed_policy_path();
    let mut sig_path = managed.clone().into_os_string();
    sig_path.push(".minisig");
    std::fs::copy(k.join("policy.json.minisig"), &sig_path).unwrap();
    std::fs::write(&managed, &document).unwrap();
    RawClient::greeted(&agent.socket)
        .call(1, serde_json::json!({"type": "refresh", "check": "policy"}));
    let s = agent.wait_for_status("serial 5 from the managed file", |s| {
        s["policy"]["serial"] == 5
    });
    assert_eq!(s["policy"]["source"], "managed_file", "{s:#}");
    assert!(s["policy"]["kept"].is_null(), "{s:#}");

    // 1. Deleted, restarted.
    std::fs::remove_file(&managed).unwrap();
    agent.restart();
    let s = agent.wait_for_status("the first clock check", |s| {
        !s["clock"]["checked_at"].is_null()
    });
    assert_eq!(s["policy"]["serial"], 5, "{s:#}");
    assert_eq!(s["policy"]["source"], "last_known_good", "{s:#}");
    assert_eq!(s["policy"]["kept"]["serial"], 5, "{s:#}");
    let kept = s["policy"]["kept"]["message"].as_str().unwrap();
    assert!(
        kept.starts_with("managed file missing: keeping serial 5"),
        "{kept}"
    );
    assert!(s["policy"]["error"].is_null(), "{s:#}");
    // The kept policy's time servers, not the built-in public ones.
    let clock = s["clock"]["detail"].as_str().unwrap();
    assert!(clock.contains("127.0.0.1:9"), "{clock}");
    assert!(!clock.contains("pool.ntp.org"), "{clock}");
    let words = agent.cli(&["status"]);
    assert!(
        String::from_utf8_lossy(&words.stdout).contains("managed file missing: keeping serial 5"),
        "{}",
        text(&words)
    );

    // 2. Tampered with (the old signature beside a changed document), restarted.
    let mut tampered = five.clone();
    tampered["mfa"]["required"] = serde_json::json!(false);
    std::fs::write(&managed, tampered.to_string()).unwrap();
    agent.restart();
    let s = agent.status();
    assert_eq!(s["policy"]["serial"], 5, "{s:#}");
    assert_eq!(s["policy"]["mfa_required"], true, "{s:#}");
    let kept = s["policy"]["kept"]["message"].as_str().unwrap();
    assert!(
        kept.starts_with("managed file rejected: keeping serial 5"),
        "{kept}"
    );
    let error = s["policy"]["error"].as_str().unwrap();
    assert!(error.contains("does not match the document"), "{error}");
    let words = agent.cli(&["status"]);
    assert!(
        String::from_utf8_lossy(&words.stdout).contains("managed file rejected: keeping serial 5"),
        "{}",
        text(&words)
    );

    // 3. Going back to the default is an explicit act.
    std::fs::remove_file(&managed).unwrap();
    let state_dir = agent.state_dir();
    let reset = agent.cli(&[
        "policy",
        "reset",
        "--dev",
        "--state-dir",
        state_dir.to_str().unwrap(),
    ]);
    assert!(reset.status.success(), "{}", text(&reset));
    assert!(
        String::from_utf8_lossy(&reset.stdout)
            .contains("Policy in force: built-in default, serial 0"),
        "{}",
        text(&reset)
    );
    agent.restart();
    let s = agent.status();
    assert_eq!(
        (&s["policy"]["source"], &s["policy"]["serial"]),
        (&serde_json::json!("builtin"), &serde_json::json!(0)),
        "{s:#}"
    );
    assert!(s["policy"]["kept"].is_null(), "{s:#}");
}
