//! The wizard driven end to end in iced's headless simulator against a real
//! in-process agent: clicks, typing and Enter go through the real widgets;
//! the actions the wizard hands back are carried out as the app would (IPC
//! to the agent), and the view is rebuilt after every round, because the
//! simulator never re-runs `view` by itself.
//!
//! The agent gets a loopback-only policy: its clock and network checks only
//! ever reach 127.0.0.1, where nothing answers. The "Before you begin"
//! checks are therefore fed a passing status, as the agent would publish on
//! a machine that is online and in sync.

use std::path::{Path, PathBuf};

use iced::event::Status;
use iced::keyboard::key;
use iced_test::simulator;
use rampart_agent::paths::AgentPaths;
use rampart_agent::{AgentConfig, RunningAgent};
use rampart_shared::mfa::MfaCommand;
use rampart_shared::status::AgentMode;
use rampart_shared::totp::{self, Params, Secret};

use crate::agent;
use crate::fixtures::passing;
use crate::screen::wizard::{self, Action, Message, Step, verify};
use crate::widget::scope;
use crate::widget::scope::shift_tab;

const GUIDE: &str = "https://127.0.0.1:9/offline-access";

/// A key the keyboard-only test presses.
#[derive(Debug)]
enum Press<'a> {
    Tab,
    ShiftTab,
    Space,
    Enter,
    Type(&'a str),
}

struct Harness {
    rt: tokio::runtime::Runtime,
    socket: PathBuf,
    agent: Option<RunningAgent>,
    /// Links the wizard asked the app to open.
    opened: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn start() -> Self {
        Self::start_with(&loopback_policy(), "")
    }

    /// An agent with `policy` as its managed policy; `install_extra` is
    /// added to the install config's fields (`"extra_ca_file": …`).
    fn start_with(policy: &str, install_extra: &str) -> Self {
        let rt = tokio::runtime::Runtime::new().unwrap();
        // A short path: Unix socket paths are limited to about 100 bytes.
        let dir = tempfile::Builder::new()
            .prefix("rg")
            .tempdir_in("/tmp")
            .unwrap();
        let etc = dir.path().join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        let extra = if install_extra.is_empty() {
            String::new()
        } else {
            format!(", {install_extra}")
        };
        std::fs::write(
            etc.join("agent.json"),
            format!(r#"{{"device_id": "sim-test", "allow_unsigned_local_policy": true{extra}}}"#),
        )
        .unwrap();
        std::fs::write(etc.join("policy.json"), policy).unwrap();
        let paths = AgentPaths {
            config_dir: etc,
            state_dir: dir.path().join("state"),
            log_dir: dir.path().join("log"),
            socket: agent_socket(dir.path()),
        };
        let agent = rt
            .block_on(rampart_agent::start(AgentConfig::new(
                AgentMode::Dev,
                paths,
            )))
            .unwrap();
        Self {
            socket: agent.socket().to_owned(),
            rt,
            agent: Some(agent),
            opened: Vec::new(),
            _dir: dir,
        }
    }

    /// Does what the app does for each action and feeds the answers back.
    fn perform(&mut self, state: &mut wizard::State, actions: Vec<Action>) {
        for action in actions {
            let socket = self.socket.clone();
            let reply = match action {
                Action::Mfa(command) => Some(Message::Enrollment(
                    self.rt.block_on(agent::mfa(socket, command)),
                )),
                Action::FetchLinks => Some(Message::Links(self.rt.block_on(agent::links(socket)))),
                Action::Refresh(check) => Some(Message::Refreshed(
                    self.rt.block_on(agent::refresh(socket, check)),
                )),
                Action::OpenLink(url) => {
                    self.opened.push(url);
                    None
                }
                Action::Copy(_)
                | Action::SaveCodes(_)
                | Action::FocusCode
                | Action::FocusPrimary
                | Action::Close => None,
            };
            if let Some(reply) = reply {
                let more = wizard::update(state, reply);
                self.perform(state, more);
            }
        }
    }

    /// One round of user input: build the view, let `input` act on it, then
    /// feed every message it produced to `update`.
    fn round(
        &mut self,
        state: &mut wizard::State,
        input: impl FnOnce(&mut iced_test::Simulator<'_, Message>),
    ) {
        let messages: Vec<Message> = {
            let mut ui = simulator(scope(wizard::view(state)));
            input(&mut ui);
            ui.into_messages().collect()
        };
        self.update(state, messages);
    }

    fn update(&mut self, state: &mut wizard::State, messages: Vec<Message>) {
        for message in messages {
            let actions = wizard::update(state, message);
            self.perform(state, actions);
        }
    }

    /// One round of key presses, in the window's focus scope as in the app.
    /// Enter that no widget took becomes the wizard's `Enter`, as
    /// `app::keys` makes it. Each round starts with nothing focused: the
    /// simulator builds its widget tree afresh, where the app keeps the
    /// focus from one `view` to the next.
    fn keys(&mut self, state: &mut wizard::State, presses: &[Press<'_>]) {
        let messages: Vec<Message> = {
            let mut ui = simulator(scope(wizard::view(state)));
            let mut window = Vec::new();
            for press in presses {
                let status = match press {
                    Press::Tab => ui.tap_key(key::Named::Tab),
                    Press::ShiftTab => ui.simulate(shift_tab())[0],
                    Press::Space => ui.tap_key(key::Named::Space),
                    Press::Enter => ui.tap_key(key::Named::Enter),
                    Press::Type(text) => ui.typewrite(text),
                };
                match (press, status) {
                    (Press::Enter, Status::Ignored) => window.push(Message::Enter),
                    (_, Status::Ignored) => panic!("{press:?} did nothing on {:?}", state.step),
                    (_, Status::Captured) => {}
                }
            }
            ui.into_messages().chain(window).collect()
        };
        self.update(state, messages);
    }

    /// Types `code` into the code field and presses Enter. One round per
    /// key, as in the running app, where `view` is rebuilt after every
    /// message: the field sends its whole new value, computed from the value
    /// `view` gave it.
    fn enter_code(&mut self, state: &mut wizard::State, code: &str) {
        for c in code.chars() {
            self.round(state, |ui| {
                ui.click(iced::widget::Id::new(verify::CODE_INPUT)).unwrap();
                ui.typewrite(&c.to_string());
            });
        }
        self.round(state, |ui| {
            ui.click(iced::widget::Id::new(verify::CODE_INPUT)).unwrap();
            ui.tap_key(key::Named::Enter);
        });
    }

    /// Whether the step has an enabled widget for `Action::FocusPrimary` to
    /// focus, and its label. The simulator cannot run that operation (its
    /// selectors only read the focus), so the test checks where it would
    /// land.
    fn primary(&self, state: &wizard::State) -> Option<String> {
        use iced_test::selector::Candidate;
        let mut ui = simulator(wizard::view(state));
        let primary = iced::widget::Id::new(wizard::PRIMARY);
        let bounds = ui
            .find(move |c: Candidate<'_>| match c {
                Candidate::Focusable {
                    id: Some(id),
                    bounds,
                    ..
                } if *id == primary => Some(bounds),
                _ => None,
            })
            .ok()?;
        // The label drawn inside it.
        ui.find(move |c: Candidate<'_>| match c {
            Candidate::Text {
                bounds: at,
                content,
                ..
            } if bounds.contains(at.center()) => Some(content.to_owned()),
            _ => None,
        })
        .ok()
    }

    fn sees(&self, state: &wizard::State, label: &str) -> bool {
        let mut ui = simulator(wizard::view(state));
        ui.find(label).is_ok()
    }

    /// The current code for the secret the agent issued. Asking again with
    /// `StartEnrollment` resumes the pairing and returns the same secret, as
    /// any client of the enrollment's owner could.
    fn current_code(&self) -> String {
        let view = self
            .rt
            .block_on(agent::mfa(self.socket.clone(), MfaCommand::StartEnrollment))
            .unwrap();
        let pairing = view.pairing.unwrap();
        let secret = Secret::from_base32(&pairing.secret_grouped.replace(' ', "")).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        totp::totp(&secret, now, Params::PRODUCT)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(agent) = self.agent.take() {
            let _ = self.rt.block_on(agent.stop());
        }
    }
}

pub(crate) fn loopback_policy() -> String {
    format!(
        r#"{{"schema": 1, "serial": 1, "mfa": {{"required": true}},
            "clock": {{"ntp_servers": ["127.0.0.1:9"]}},
            "links": {{"offline_guide_url": "{GUIDE}", "support_url": "https://127.0.0.1:9/support"}}}}"#
    )
}

pub(crate) fn use_tiny_skia() {
    // The simulator reads this when it creates its renderer; tiny-skia needs
    // no GPU. Every test here sets the same value, so races are harmless.
    if std::env::var("ICED_TEST_BACKEND").as_deref() != Ok("tiny-skia") {
        set_backend();
    }
}

#[allow(unsafe_code)]
fn set_backend() {
    // SAFETY: only ever set to the same constant, before any simulator of
    // this test binary reads it; no other thread writes the environment.
    unsafe { std::env::set_var("ICED_TEST_BACKEND", "tiny-skia") };
}

/// Every QR code in a PNG, decoded.
fn decode_qr(path: &Path) -> Vec<String> {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let (w, h) = (info.width as usize, info.height as usize);
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
        let i = (y * w + x) * channels;
        let (r, g, b) = (buf[i] as u32, buf[i + 1] as u32, buf[i + 2] as u32);
        ((r * 30 + g * 59 + b * 11) / 100) as u8
    });
    image
        .detect_grids()
        .iter()
        .map(|grid| grid.decode().unwrap().1)
        .collect()
}

/// Where the test's agent listens: a socket in its directory, or on Windows
/// (these tests also run under Wine) a named pipe of its own.
#[cfg(unix)]
pub(crate) fn agent_socket(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("a.sock")
}

#[cfg(windows)]
pub(crate) fn agent_socket(_dir: &std::path::Path) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(r"\\.\pipe\rampart-sim-{}-{n}", std::process::id()).into()
}

/// Draws the wizard as it is now and decodes the QR codes on screen (the
/// Duo test's; that test is Unix-only).
#[cfg(unix)]
fn qr_on_screen(state: &wizard::State) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut ui = simulator(wizard::view(state));
    assert!(
        ui.snapshot(&iced::Theme::Light)
            .unwrap()
            .matches_image(dir.path().join("screen"))
            .unwrap()
    );
    let path = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "png"))
        .unwrap();
    decode_qr(&path)
}

fn socket_gone(path: &Path) -> bool {
    !path.exists()
}

#[test]
#[cfg_attr(
    windows,
    ignore = "under Wine 8 this agent stops answering in about one run in three (ARCHITECTURE.md, Platforms)"
)]
fn wizard_end_to_end_in_the_simulator() {
    use_tiny_skia();
    let mut h = Harness::start();
    let (mut state, actions) = wizard::State::new(Some(passing()));
    h.perform(&mut state, actions);
    assert!(h.sees(&state, "Before you begin"));
    assert!(h.sees(&state, "Have your smartphone nearby."));

    h.round(&mut state, |ui| {
        ui.click("Get started").unwrap();
    });
    assert!(matches!(state.step, Step::Pair(_)), "{:?}", state.step);
    assert!(h.sees(&state, "Can't scan? Enter this key"));

    h.round(&mut state, |ui| {
        ui.click("Next").unwrap();
    });
    assert!(h.sees(&state, "Enter the code"));

    // A wrong code first: the agent's words appear, and the step stays.
    let code = h.current_code();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    h.enter_code(&mut state, wrong);
    let Step::Verify(v) = &state.step else {
        panic!("left the code step: {:?}", state.step)
    };
    let message = v.error.as_ref().map(|e| e.message.clone()).unwrap();
    assert!(
        h.sees(&state, &message),
        "agent's message not shown: {message}"
    );

    h.round(&mut state, |ui| {
        ui.click("Try again").unwrap();
    });
    let code = h.current_code();
    h.enter_code(&mut state, &code);
    assert!(
        h.sees(&state, "Save your recovery codes"),
        "{:?}",
        state.step
    );
    // Continue is gated by the checkbox.
    h.round(&mut state, |ui| {
        ui.click("Continue").unwrap();
    });
    assert!(h.sees(&state, "Save your recovery codes"));
    h.round(&mut state, |ui| {
        ui.click("I have saved my recovery codes").unwrap();
    });
    h.round(&mut state, |ui| {
        ui.click("Continue").unwrap();
    });
    assert!(h.sees(&state, "Set up offline access"));
    assert_eq!(
        h.opened,
        vec![GUIDE.to_owned()],
        "the guide opens by itself"
    );

    h.round(&mut state, |ui| {
        ui.click("Finish").unwrap();
    });
    assert!(
        h.sees(&state, "Set up offline access"),
        "Finish needs the box"
    );
    h.round(&mut state, |ui| {
        ui.click("I have read and understand the setup instructions")
            .unwrap();
    });
    h.round(&mut state, |ui| {
        ui.click("Finish").unwrap();
    });
    assert!(h.sees(&state, "Setup complete. You may close this window."));

    // The agent agrees: a new wizard resumes at the end.
    let status =
        h.rt.block_on(agent::request(
            h.socket.clone(),
            rampart_shared::ipc::Request::Status,
        ))
        .unwrap();
    match status {
        rampart_shared::ipc::Response::Status { status } => {
            assert_eq!(status.mfa.state, rampart_shared::status::MfaState::Enrolled)
        }
        other => panic!("unexpected {other:?}"),
    }
    let socket = h.socket.clone();
    drop(h);
    assert!(socket_gone(&socket));
}

#[test]
#[cfg_attr(
    windows,
    ignore = "under Wine 8 this agent stops answering in about one run in three (ARCHITECTURE.md, Platforms)"
)]
fn reopened_wizard_resumes_and_offers_new_recovery_codes() {
    use_tiny_skia();
    let mut h = Harness::start();
    let (mut state, actions) = wizard::State::new(Some(passing()));
    h.perform(&mut state, actions);
    h.round(&mut state, |ui| {
        ui.click("Get started").unwrap();
    });
    h.round(&mut state, |ui| {
        ui.click("Next").unwrap();
    });
    let code = h.current_code();
    h.enter_code(&mut state, &code);
    assert!(h.sees(&state, "Save your recovery codes"));

    // The window is closed and opened again: the codes are gone.
    let mut status = passing();
    status.mfa.state = rampart_shared::status::MfaState::InProgress;
    let (mut state, actions) = wizard::State::new(Some(status));
    h.perform(&mut state, actions);
    assert!(h.sees(&state, "Show new recovery codes"));
    h.round(&mut state, |ui| {
        ui.click("Show new recovery codes").unwrap();
    });
    let Step::Recovery(r) = &state.step else {
        panic!("expected recovery codes: {:?}", state.step)
    };
    let first = r.codes.as_ref().and_then(|c| c.first().cloned()).unwrap();
    assert!(h.sees(&state, &first));
}

/// The whole enrollment with the keyboard alone: Tab, Shift-Tab, Space,
/// Enter and typing the code reach every step's action.
#[test]
#[cfg_attr(
    windows,
    ignore = "under Wine 8 this agent stops answering in about one run in three (ARCHITECTURE.md, Platforms)"
)]
fn wizard_end_to_end_by_keyboard_alone() {
    use Press::{Enter, ShiftTab, Space, Tab, Type};
    use_tiny_skia();
    let mut h = Harness::start();
    let (mut state, actions) = wizard::State::new(Some(passing()));
    h.perform(&mut state, actions);

    // Where the app's focus lands as each step opens.
    assert_eq!(h.primary(&state).as_deref(), Some("Get started"));
    // Tab reaches "Get started" first; Space presses it.
    h.keys(&mut state, &[Tab, Space]);
    assert!(matches!(state.step, Step::Pair(_)), "{:?}", state.step);
    assert_eq!(h.primary(&state).as_deref(), Some("Next"));

    // Nothing focused: Enter is the step's primary action, "Next".
    h.keys(&mut state, &[Enter]);
    assert!(h.sees(&state, "Enter the code"), "{:?}", state.step);

    // The code field is the first stop; Enter in it submits.
    let code = h.current_code();
    for c in code.chars() {
        h.keys(&mut state, &[Tab, Type(&c.to_string())]);
    }
    h.keys(&mut state, &[Tab, Enter]);
    assert!(
        h.sees(&state, "Save your recovery codes"),
        "{:?}",
        state.step
    );

    assert_eq!(
        h.primary(&state).as_deref(),
        Some("I have saved my recovery codes"),
        "the checkbox, while Continue is disabled"
    );
    // Backwards from the end: the help link, then the checkbox (Continue
    // is disabled, so skipped). Enter then continues.
    h.keys(&mut state, &[ShiftTab, ShiftTab, Space]);
    let Step::Recovery(r) = &state.step else {
        panic!("{:?}", state.step)
    };
    assert!(r.confirmed);
    assert_eq!(h.primary(&state).as_deref(), Some("Continue"));
    h.keys(&mut state, &[Enter]);
    assert!(h.sees(&state, "Set up offline access"), "{:?}", state.step);

    assert_eq!(
        h.primary(&state).as_deref(),
        Some("I have read and understand the setup instructions")
    );
    h.keys(&mut state, &[ShiftTab, ShiftTab, Space]);
    // Finish is enabled now, just before the help link: Enter presses it.
    h.keys(&mut state, &[ShiftTab, ShiftTab, Enter]);
    assert!(h.sees(&state, "Setup complete. You may close this window."));
    assert_eq!(h.primary(&state).as_deref(), Some("Close"));
    assert_eq!(
        wizard::update(&mut state, Message::Enter),
        vec![Action::Close]
    );

    let status =
        h.rt.block_on(agent::request(
            h.socket.clone(),
            rampart_shared::ipc::Request::Status,
        ))
        .unwrap();
    match status {
        rampart_shared::ipc::Response::Status { status } => {
            assert_eq!(status.mfa.state, rampart_shared::status::MfaState::Enrolled)
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// The QR code as drawn decodes to the otpauth URI, in the dark theme too:
/// it is drawn black on white whatever the theme.
#[test]
fn qr_code_as_drawn_decodes_to_the_otpauth_uri_in_any_theme() {
    use crate::screen::wizard::pair;
    use_tiny_skia();
    let uri = "otpauth://totp/ACME%20Corp:jane?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=ACME%20Corp&algorithm=SHA1&digits=6&period=30";
    let state = pair::State::new(&crate::fixtures::pairing(
        uri,
        "JBSW Y3DP EHPK 3PXP JBSW Y3DP EHPK 3PXP",
    ));
    let dir = tempfile::tempdir().unwrap();
    for (i, theme) in [iced::Theme::Light, iced::Theme::Dark].iter().enumerate() {
        let mut ui = simulator(pair::view(&state));
        // With no such file yet, this writes the snapshot, named
        // `theme{i}-{renderer}.png`.
        let stem = format!("theme{i}");
        assert!(
            ui.snapshot(theme)
                .unwrap()
                .matches_image(dir.path().join(&stem))
                .unwrap()
        );
        let path = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{stem}-")))
            })
            .unwrap();
        let contents = decode_qr(&path);
        assert_eq!(contents.len(), 1, "one QR code on screen ({theme})");
        assert_eq!(contents[0], uri, "{theme}");
    }
}

/// The Duo path, clicked through the real widgets, against a real agent
/// that talks HTTPS to the Duo-protocol test server: activation QR, the
/// 3-second polls, the push, then the shared steps to the end.
#[cfg(unix)]
#[test]
fn duo_wizard_end_to_end_in_the_simulator() {
    use rampart_tests::duo::{DuoServer, Preauth, UserScript};
    use_tiny_skia();
    let server = DuoServer::start();
    let keys = tempfile::tempdir().unwrap();
    let key = server.write_secret_key_file(keys.path());
    let ca = server.ca_file();
    let mut h = Harness::start_with(
        &server.policy(&key).to_string(),
        &format!(r#""extra_ca_file": "{}""#, ca.display()),
    );
    let login = rampart_agent::ipc::user_name(&rampart_agent::ipc::current_user().unwrap());
    let mut script = UserScript::new(Preauth::Enroll { exists: false });
    script.enroll_statuses = vec!["waiting", "success"];
    script.push_results = vec![("waiting", "pushed"), ("allow", "allow")];
    server.add_user(&login, script);

    let (mut state, actions) = wizard::State::new(Some(passing()));
    h.perform(&mut state, actions);
    h.round(&mut state, |ui| {
        ui.click("Get started").unwrap();
    });
    assert!(h.sees(&state, "Activate Duo Mobile"), "{:?}", state.step);
    assert!(h.sees(&state, "Step 2 of 5"));
    // The QR code on screen is Duo's activation, readable by a scanner.
    let activation = server
        .requests()
        .iter()
        .any(|r| r.path == "/auth/v2/enroll");
    assert!(activation);
    let codes = qr_on_screen(&state);
    assert_eq!(codes.len(), 1);
    assert!(codes[0].starts_with("duo://"), "{codes:?}");

    // What the app's 3-second timer does: poll until the phone is active.
    assert!(state.polling());
    let poll = |h: &mut Harness, state: &mut wizard::State| {
        let actions = wizard::update(state, Message::Poll);
        h.perform(state, actions);
    };
    poll(&mut h, &mut state);
    assert!(h.sees(&state, "Activate Duo Mobile"), "still waiting");
    poll(&mut h, &mut state);
    assert!(h.sees(&state, "Confirm your phone"), "{:?}", state.step);
    assert!(h.sees(
        &state,
        "Never approve a Duo request you did not start yourself."
    ));
    assert!(!state.polling());

    h.round(&mut state, |ui| {
        ui.click("Send a Duo Push").unwrap();
    });
    assert!(h.sees(&state, "Approve the request in Duo Mobile on your phone."));
    assert!(state.polling());
    poll(&mut h, &mut state);
    poll(&mut h, &mut state);
    assert!(
        h.sees(&state, "Save your recovery codes"),
        "{:?}",
        state.step
    );
    h.round(&mut state, |ui| {
        ui.click("I have saved my recovery codes").unwrap();
    });
    h.round(&mut state, |ui| {
        ui.click("Continue").unwrap();
    });
    assert_eq!(
        h.opened,
        vec![GUIDE.to_owned()],
        "the guide opens by itself"
    );
    h.round(&mut state, |ui| {
        ui.click("I have read and understand the setup instructions")
            .unwrap();
    });
    h.round(&mut state, |ui| {
        ui.click("Finish").unwrap();
    });
    assert!(h.sees(&state, "Setup complete. You may close this window."));

    let paths = server.paths();
    for path in [
        "/auth/v2/ping",
        "/auth/v2/check",
        "/auth/v2/preauth",
        "/auth/v2/enroll",
        "/auth/v2/enroll_status",
        "/auth/v2/auth",
        "/auth/v2/auth_status",
    ] {
        assert!(
            paths.iter().any(|p| p == path),
            "{path} never asked: {paths:?}"
        );
    }
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.signature_ok != Some(false))
    );
}
