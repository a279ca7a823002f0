//! The app: two windows (status and wizard) over one agent connection. It
//! routes messages to screens and turns what they hand back into tasks; all
//! I/O (IPC, browser, clipboard, files, processes) happens here or in tasks.

use std::path::PathBuf;

use iced::futures::channel::mpsc;
use iced::keyboard::{self, key};
use iced::widget::operation;
use iced::{Element, Event as IcedEvent, Size, Subscription, Task, Theme, event, window};
use rampart_shared::links::check_https_link;
use rampart_shared::status::AgentStatus;
use tracing::{info, warn};

use crate::agent;
use crate::screen::{starting, status, unreachable, wizard};

pub struct App {
    /// The agent's socket once connected.
    socket: Option<PathBuf>,
    /// `None` while connecting; the error once the agent cannot be reached.
    unreachable: Option<String>,
    /// While the installed service does not answer yet.
    starting: Option<starting::State>,
    retry: Option<mpsc::Sender<()>>,
    status: Option<Box<AgentStatus>>,
    status_window: Option<window::Id>,
    status_screen: status::State,
    wizard_window: Option<window::Id>,
    wizard: Option<wizard::State>,
    /// The wizard opens by itself once per run; after the user closes it,
    /// "Set up MFA" brings it back.
    wizard_opened_by_itself: bool,
    /// The first frame is drawn, or [`FRAME_GRACE`] passed without one: for
    /// the startup figure in the log, and the wizard that opens by itself
    /// waits for it.
    first_frame_done: bool,
}

#[derive(Debug, Clone)]
pub enum Message {
    Agent(agent::Event),
    Status(status::Message),
    Wizard(wizard::Message),
    Unreachable(unreachable::Message),
    Starting(starting::Message),
    WindowClosed(window::Id),
    Escape(window::Id),
    /// Enter that no widget used: the waiting screens' "Try again", or the
    /// wizard step's primary action in the wizard's window.
    Enter(window::Id),
    FirstFrame,
    /// A status came and no frame followed within [`FRAME_GRACE`].
    FrameOverdue,
}

/// How long the wizard that opens by itself waits for the status window's
/// first frame: a window the system does not draw (minimised, occluded,
/// on a screen that is off) must not keep setup from opening.
pub const FRAME_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The status window's smallest size: its sections scroll below it.
pub const STATUS_MIN_SIZE: Size = Size::new(480.0, 420.0);

/// How often a waiting Duo screen asks the agent, which asks Duo.
pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3);

impl App {
    pub fn boot() -> (Self, Task<Message>) {
        let (id, open) = window::open(window::Settings {
            size: Size::new(640.0, 560.0),
            min_size: Some(STATUS_MIN_SIZE),
            ..window::Settings::default()
        });
        let app = Self {
            socket: None,
            unreachable: None,
            starting: None,
            retry: None,
            status: None,
            status_window: Some(id),
            status_screen: status::State::default(),
            wizard_window: None,
            wizard: None,
            wizard_opened_by_itself: false,
            first_frame_done: false,
        };
        (app, open.discard())
    }

    pub fn title(&self, id: window::Id) -> String {
        if Some(id) == self.wizard_window {
            "Rampart: set up MFA".into()
        } else {
            "Rampart".into()
        }
    }

    pub fn update(&mut self, message: Message) -> Task<Message> {
        match message {
            Message::Agent(event) => self.on_agent(event),
            Message::Status(m) => match status::update(&mut self.status_screen, m) {
                Some(status::Event::Refresh(check)) => self.with_socket(|socket| {
                    Task::perform(agent::refresh(socket, check), |r| {
                        Message::Status(status::Message::Refreshed(r))
                    })
                }),
                Some(status::Event::OpenWizard) => self.open_wizard(),
                Some(status::Event::Restart) => restart(),
                Some(status::Event::Copy(text)) => iced::clipboard::write(text),
                None => Task::none(),
            },
            Message::Wizard(m) => {
                let Some(wizard) = &mut self.wizard else {
                    return Task::none();
                };
                let actions = wizard::update(wizard, m);
                self.perform(actions)
            }
            Message::Unreachable(m) => match unreachable::update(m) {
                unreachable::Event::TryAgain => {
                    self.retry_now();
                    self.unreachable = None;
                    Task::none()
                }
            },
            Message::Starting(m) => {
                let Some(state) = &mut self.starting else {
                    return Task::none();
                };
                match starting::update(state, m) {
                    Some(starting::Action::Retry) => {
                        self.retry_now();
                        Task::none()
                    }
                    Some(starting::Action::OpenLink(url)) => open_link(url, |_, result| {
                        Message::Starting(starting::Message::LinkOpened(result))
                    }),
                    None => Task::none(),
                }
            }
            Message::Enter(id) => {
                if self.starting.is_some() {
                    self.update(Message::Starting(starting::Message::TryAgain))
                } else if self.unreachable.is_some() {
                    self.update(Message::Unreachable(unreachable::Message::TryAgain))
                } else if Some(id) == self.wizard_window && self.wizard.is_some() {
                    self.update(Message::Wizard(wizard::Message::Enter))
                } else {
                    Task::none()
                }
            }
            Message::WindowClosed(id) => {
                if Some(id) == self.wizard_window {
                    self.wizard_window = None;
                    self.wizard = None;
                    Task::none()
                } else if Some(id) == self.status_window {
                    // The status window is the app; closing it quits. A
                    // system agent keeps running; an embedded one stops
                    // with us and its state is on disk.
                    iced::exit()
                } else {
                    Task::none()
                }
            }
            Message::Escape(id) if Some(id) == self.wizard_window => window::close(id),
            Message::Escape(_) => Task::none(),
            Message::FirstFrame | Message::FrameOverdue if self.first_frame_done => Task::none(),
            Message::FirstFrame => {
                self.first_frame_done = true;
                info!(
                    ms = crate::STARTED.elapsed().as_secs_f64() * 1000.0,
                    "first frame"
                );
                self.open_wizard_if_due()
            }
            Message::FrameOverdue => {
                self.first_frame_done = true;
                info!("no frame drawn a while after the status: setup waits for one no longer");
                self.open_wizard_if_due()
            }
        }
    }

    fn on_agent(&mut self, event: agent::Event) -> Task<Message> {
        match event {
            agent::Event::Ready(retry) => {
                self.retry = Some(retry);
                Task::none()
            }
            agent::Event::Connected { socket, status } => {
                info!(socket = %socket.display(), "connected to the agent");
                self.socket = Some(socket);
                self.unreachable = None;
                self.starting = None;
                self.set_status(status)
            }
            agent::Event::StatusChanged(status) => self.set_status(status),
            agent::Event::Unreachable(why) => {
                self.socket = None;
                self.starting = None;
                self.unreachable = Some(why);
                Task::none()
            }
            agent::Event::ServiceStarting { why, at } => {
                self.socket = None;
                self.unreachable = None;
                match &mut self.starting {
                    Some(state) => {
                        let _ =
                            starting::update(state, starting::Message::StillWaiting { why, at });
                    }
                    None => self.starting = Some(starting::State::new(why, at)),
                }
                Task::none()
            }
        }
    }

    /// Wakes the worker for an attempt now.
    fn retry_now(&mut self) {
        if let Some(retry) = &mut self.retry {
            let _ = retry.try_send(());
        }
    }

    fn set_status(&mut self, status: Box<AgentStatus>) -> Task<Message> {
        let mut wizard_actions = Vec::new();
        if let Some(w) = &mut self.wizard {
            wizard_actions = wizard::update(w, wizard::Message::Status(status.clone()));
        }
        let wizard_tasks = self.perform(wizard_actions);
        let _ = status::update(
            &mut self.status_screen,
            status::Message::StatusArrived(iced::time::Instant::now()),
        );
        self.status = Some(status);
        Task::batch([wizard_tasks, self.open_wizard_if_due()])
    }

    /// The wizard opens by itself once, when the status says MFA needs
    /// setting up, but only after the status window's first frame: drawing
    /// both windows before anything is on screen made the first frame wait
    /// for the wizard's text too (its glyphs are rasterized, hinted, on
    /// first use).
    fn open_wizard_if_due(&mut self) -> Task<Message> {
        let due = self
            .status
            .as_ref()
            .is_some_and(|status| status.policy.mfa_required && status::mfa_needs_setup(status));
        if due
            && self.first_frame_done
            && !self.wizard_opened_by_itself
            && self.wizard_window.is_none()
        {
            self.wizard_opened_by_itself = true;
            return self.open_wizard();
        }
        Task::none()
    }

    fn open_wizard(&mut self) -> Task<Message> {
        if let Some(id) = self.wizard_window {
            return window::gain_focus(id);
        }
        let (wizard, actions) = wizard::State::new(self.status.clone());
        self.wizard = Some(wizard);
        let (id, open) = window::open(window::Settings {
            size: Size::new(660.0, 680.0),
            min_size: Some(Size::new(520.0, 520.0)),
            ..window::Settings::default()
        });
        self.wizard_window = Some(id);
        // The focus can only land once the window's widgets exist: after
        // the open (iced builds them before it reports the window open).
        let (focus, actions): (Vec<_>, Vec<_>) = actions
            .into_iter()
            .partition(|a| *a == wizard::Action::FocusPrimary);
        let opened = open.then(move |_| {
            if focus.is_empty() {
                Task::none()
            } else {
                operation::focus(wizard::PRIMARY)
            }
        });
        Task::batch([opened, self.perform(actions)])
    }

    /// Runs `f` with the agent's socket, or does nothing while disconnected
    /// (the screens show the agent-not-running page then).
    fn with_socket(&self, f: impl FnOnce(PathBuf) -> Task<Message>) -> Task<Message> {
        match &self.socket {
            Some(socket) => f(socket.clone()),
            None => Task::none(),
        }
    }

    /// Turns the wizard's actions into tasks.
    fn perform(&mut self, actions: Vec<wizard::Action>) -> Task<Message> {
        use wizard::Action;
        let tasks: Vec<Task<Message>> = actions
            .into_iter()
            .map(|action| match action {
                Action::Mfa(command) => {
                    let disconnected = self.socket.is_none();
                    let task = self.with_socket(|socket| {
                        Task::perform(agent::mfa(socket, command), |r| {
                            Message::Wizard(wizard::Message::Enrollment(r))
                        })
                    });
                    if disconnected {
                        Task::done(Message::Wizard(wizard::Message::Enrollment(Err(
                            "the agent is not connected".into(),
                        ))))
                    } else {
                        task
                    }
                }
                Action::Refresh(check) => self.with_socket(|socket| {
                    Task::perform(agent::refresh(socket, check), |r| {
                        Message::Wizard(wizard::Message::Refreshed(r))
                    })
                }),
                Action::FetchLinks => self.with_socket(|socket| {
                    Task::perform(agent::links(socket), |r| {
                        Message::Wizard(wizard::Message::Links(r))
                    })
                }),
                Action::OpenLink(url) => open_link(url, |url, result| {
                    Message::Wizard(wizard::Message::LinkOpened(url, result))
                }),
                Action::Copy(text) => iced::clipboard::write(text),
                Action::SaveCodes(codes) => Task::perform(async move { save_codes(&codes) }, |r| {
                    Message::Wizard(wizard::Message::Saved(r))
                }),
                Action::FocusCode => operation::focus(wizard::verify::CODE_INPUT),
                Action::FocusPrimary => operation::focus(wizard::PRIMARY),
                Action::Close => match self.wizard_window {
                    Some(id) => window::close(id),
                    None => Task::none(),
                },
            })
            .collect();
        Task::batch(tasks)
    }

    /// Each window's view inside its own focus scope: Tab and Shift-Tab
    /// move the focus among that window's widgets only.
    pub fn view(&self, id: window::Id) -> Element<'_, Message> {
        crate::widget::scope(self.window(id)).into()
    }

    fn window(&self, id: window::Id) -> Element<'_, Message> {
        if let Some(state) = &self.starting {
            return starting::view(state).map(Message::Starting);
        }
        let Some(status) = &self.status else {
            return unreachable::view(self.unreachable.as_deref()).map(Message::Unreachable);
        };
        if self.unreachable.is_some() {
            return unreachable::view(self.unreachable.as_deref()).map(Message::Unreachable);
        }
        if Some(id) == self.wizard_window
            && let Some(wizard) = &self.wizard
        {
            return wizard::view(wizard).map(Message::Wizard);
        }
        status::view(&self.status_screen, status).map(Message::Status)
    }

    pub fn theme(&self, _id: window::Id) -> Theme {
        Theme::Light
    }

    pub fn subscription(&self) -> Subscription<Message> {
        let mut subs = vec![
            Subscription::run(agent::worker).map(Message::Agent),
            window::close_events().map(Message::WindowClosed),
            event::listen_with(keys),
        ];
        if !self.first_frame_done {
            // Dropped after the first frame: listening to redraws for longer
            // would cost idle CPU for nothing.
            subs.push(window::frames().map(|_| Message::FirstFrame));
            if self.status.is_some() {
                subs.push(iced::time::every(FRAME_GRACE).map(|_| Message::FrameOverdue));
            }
        }
        if self
            .wizard
            .as_ref()
            .is_some_and(wizard::State::counting_down)
        {
            subs.push(
                iced::time::every(std::time::Duration::from_secs(1))
                    .map(|at| Message::Wizard(wizard::Message::Tick(at))),
            );
        }
        // The waiting screen's clock, only while it is shown.
        if self.starting.is_some() {
            subs.push(
                iced::time::every(std::time::Duration::from_secs(1))
                    .map(|at| Message::Starting(starting::Message::Tick(at))),
            );
        }
        // The status window's uptime is live while there is one to show.
        if self.status.is_some() && self.status_window.is_some() {
            subs.push(
                iced::time::every(std::time::Duration::from_secs(1))
                    .map(|at| Message::Status(status::Message::Tick(at))),
            );
        }
        // Only while a screen waits on the phone: idle windows cost nothing.
        if self.wizard.as_ref().is_some_and(wizard::State::polling) {
            subs.push(
                iced::time::every(POLL_INTERVAL).map(|_| Message::Wizard(wizard::Message::Poll)),
            );
        }
        Subscription::batch(subs)
    }
}

/// Escape closes the wizard; Enter is the screen's primary action. Only
/// keys no widget used: a text field keeps its own keys, a focused button
/// its Enter and Space, and the window's focus scope takes Tab.
fn keys(event: IcedEvent, status: event::Status, id: window::Id) -> Option<Message> {
    if status == event::Status::Captured {
        return None;
    }
    let IcedEvent::Keyboard(keyboard::Event::KeyPressed { key, modifiers, .. }) = event else {
        return None;
    };
    if modifiers.command() || modifiers.alt() {
        return None;
    }
    match key {
        keyboard::Key::Named(key::Named::Escape) => Some(Message::Escape(id)),
        keyboard::Key::Named(key::Named::Enter) => Some(Message::Enter(id)),
        _ => None,
    }
}

/// Hands a link to the default browser: only ever one that passes the https
/// check (the screens check too; this is the last gate). The outcome goes
/// back to the screen that asked (`reply`), which tells the user if no
/// browser opened.
fn open_link(
    url: String,
    reply: impl FnOnce(String, Result<(), String>) -> Message + Send + 'static,
) -> Task<Message> {
    if let Err(e) = check_https_link(&url) {
        warn!(%url, error = %e, "refused to open a link");
        return Task::none();
    }
    Task::perform(
        async move {
            let target = url.clone();
            let result = tokio::task::spawn_blocking(move || open::that(&target))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
            if let Err(e) = &result {
                warn!(error = %e, "could not open the browser");
            }
            (url, result)
        },
        move |(url, result)| reply(url, result),
    )
}

/// Re-executes this program with the same arguments and quits. The agent's
/// state is on disk, so the new process resumes where this one was. A task:
/// starting a process is I/O, done when iced runs it, not in `update`.
fn restart() -> Task<Message> {
    Task::future(async { spawn_again() }).then(|spawned| match spawned {
        Ok(pid) => {
            info!(pid, "restarted the app");
            iced::exit()
        }
        Err(e) => {
            warn!(error = %e, "could not restart the app");
            Task::none()
        }
    })
}

/// Starts this program again with the same arguments; its process id.
fn spawn_again() -> std::io::Result<u32> {
    let exe = std::env::current_exe()?;
    let child = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .spawn()?;
    Ok(child.id())
}

pub const CODES_FILE: &str = "Rampart recovery codes.txt";

/// Where "Save to file…" writes: the Documents folder, else home.
pub fn codes_path() -> Option<PathBuf> {
    let dirs = directories::UserDirs::new()?;
    // Without an XDG user-dirs file `document_dir` is unknown, though
    // ~/Documents usually exists all the same.
    let home_documents = dirs.home_dir().join("Documents");
    let dir = match dirs.document_dir() {
        Some(d) if d.is_dir() => d.to_owned(),
        _ if home_documents.is_dir() => home_documents,
        _ => dirs.home_dir().to_owned(),
    };
    Some(dir.join(CODES_FILE))
}

/// The codes in a file only its owner can read, written the way the agent
/// writes state (`fsutil::write_atomic`: a 0600 temporary file, fsynced,
/// renamed over any older copy, whose mode therefore does not survive).
fn save_codes(codes: &[String]) -> Result<PathBuf, String> {
    let path = codes_path().ok_or("no home folder")?;
    rampart_agent::fsutil::write_atomic(&path, wizard::recovery::as_text(codes).as_bytes())
        .map_err(|e| e.to_string())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::passing;
    use rampart_shared::status::MfaState;

    /// Booted, with the status window's first frame drawn.
    fn drawn() -> App {
        let (mut app, _) = App::boot();
        let _ = app.update(Message::FirstFrame);
        app
    }

    fn connected(app: &mut App, status: Box<AgentStatus>) {
        let _ = app.update(Message::Agent(agent::Event::Connected {
            socket: "/tmp/none.sock".into(),
            status,
        }));
    }

    #[test]
    fn wizard_opens_by_itself_once_when_mfa_is_required_and_not_done() {
        let mut app = drawn();
        assert!(app.wizard_window.is_none());
        connected(&mut app, passing());
        let first = app.wizard_window.expect("the wizard opens by itself");
        assert!(app.wizard.is_some());
        let _ = app.update(Message::Agent(agent::Event::StatusChanged(passing())));
        assert_eq!(app.wizard_window, Some(first), "no second window");

        // Closed by the user: it stays closed until they ask for it.
        let _ = app.update(Message::WindowClosed(first));
        assert!(app.wizard.is_none());
        let _ = app.update(Message::Agent(agent::Event::StatusChanged(passing())));
        assert!(app.wizard_window.is_none());
        let _ = app.update(Message::Status(status::Message::SetUpMfa));
        assert!(app.wizard_window.is_some());
    }

    #[test]
    fn no_wizard_when_enrolled_or_not_required() {
        for state in [MfaState::Enrolled, MfaState::NotRequired] {
            let mut app = drawn();
            let mut status = passing();
            status.mfa.state = state;
            connected(&mut app, status);
            assert!(app.wizard_window.is_none(), "{state:?}");
        }
    }

    #[test]
    fn a_status_before_the_first_frame_opens_the_wizard_after_it() {
        let (mut app, _) = App::boot();
        connected(&mut app, passing());
        assert!(
            app.wizard_window.is_none(),
            "the status window draws alone first"
        );
        let _ = app.update(Message::FirstFrame);
        let first = app.wizard_window.expect("the wizard opens after the frame");
        // A late overdue tick opens nothing more either.
        let _ = app.update(Message::FrameOverdue);
        // Later frames (the subscription may deliver a few) open nothing more.
        let _ = app.update(Message::FirstFrame);
        assert_eq!(app.wizard_window, Some(first));

        // Nothing to set up: the first frame opens nothing.
        let (mut app, _) = App::boot();
        let mut status = passing();
        status.mfa.state = MfaState::Enrolled;
        connected(&mut app, status);
        let _ = app.update(Message::FirstFrame);
        assert!(app.wizard_window.is_none());
    }

    #[test]
    fn a_window_never_drawn_does_not_keep_the_wizard_shut() {
        let (mut app, _) = App::boot();
        connected(&mut app, passing());
        assert!(app.wizard_window.is_none());
        let _ = app.update(Message::FrameOverdue);
        assert!(app.wizard_window.is_some(), "opened after the grace");
    }

    #[test]
    fn lost_agent_shows_the_not_running_page_and_keeps_the_wizard() {
        let mut app = drawn();
        connected(&mut app, passing());
        let _ = app.update(Message::Agent(agent::Event::Unreachable("gone".into())));
        assert_eq!(app.unreachable.as_deref(), Some("gone"));
        assert!(app.socket.is_none());
        assert!(app.wizard.is_some());
        let _ = app.update(Message::Unreachable(unreachable::Message::TryAgain));
        assert_eq!(app.unreachable, None);
    }

    fn service_starting(app: &mut App, why: &str, at: iced::time::Instant) {
        let _ = app.update(Message::Agent(agent::Event::ServiceStarting {
            why: why.into(),
            at,
        }));
    }

    #[test]
    fn installed_service_starting_shows_the_waiting_screen_until_it_answers() {
        let (mut app, _) = App::boot();
        let (retry, mut retries) = mpsc::channel(1);
        let _ = app.update(Message::Agent(agent::Event::Ready(retry)));
        let t0 = iced::time::Instant::now();
        service_starting(&mut app, "connection refused", t0);
        let waiting = app.starting.as_ref().expect("the starting screen");
        assert!(!waiting.gave_up());
        assert!(app.unreachable.is_none() && app.socket.is_none());

        // Past the bound: the screen says the service is not running.
        let later = t0 + starting::GIVE_UP_AFTER;
        service_starting(&mut app, "connection refused", later);
        assert!(app.starting.as_ref().unwrap().gave_up());

        // Enter is "Try again": the worker is woken, the wait starts afresh.
        let _ = app.update(Message::Enter(app.status_window.unwrap()));
        assert!(retries.try_recv().is_ok(), "the worker was woken");
        assert!(!app.starting.as_ref().unwrap().gave_up());

        // The service answers: the normal window.
        connected(&mut app, passing());
        assert!(app.starting.is_none());
        assert!(app.socket.is_some());
    }

    #[test]
    fn starting_screen_clock_runs_on_ticks() {
        let (mut app, _) = App::boot();
        let t0 = iced::time::Instant::now();
        service_starting(&mut app, "connection refused", t0);
        let _ = app.update(Message::Starting(starting::Message::Tick(
            t0 + starting::GIVE_UP_AFTER,
        )));
        assert!(app.starting.as_ref().unwrap().gave_up());
        let _ = app.update(Message::Starting(starting::Message::TryAgain));
        assert!(!app.starting.as_ref().unwrap().gave_up());
    }

    #[test]
    fn enter_does_nothing_once_connected() {
        let (mut app, _) = App::boot();
        let (retry, mut retries) = mpsc::channel(1);
        let _ = app.update(Message::Agent(agent::Event::Ready(retry)));
        connected(&mut app, passing());
        let _ = app.update(Message::Enter(app.status_window.unwrap()));
        assert!(retries.try_recv().is_err(), "no retry while connected");
    }

    #[test]
    fn keyboard_tab_shift_tab_and_escape() {
        use iced::keyboard::{Key, Location, Modifiers};
        let id = window::Id::unique();
        let press = |key: key::Named, modifiers: Modifiers| {
            IcedEvent::Keyboard(keyboard::Event::KeyPressed {
                key: Key::Named(key),
                modified_key: Key::Named(key),
                physical_key: key::Physical::Unidentified(key::NativeCode::Unidentified),
                location: Location::Standard,
                modifiers,
                text: None,
                repeat: false,
            })
        };
        let ignored = event::Status::Ignored;
        // Tab is the window's focus scope's (crate::widget::scope).
        assert!(keys(press(key::Named::Tab, Modifiers::empty()), ignored, id).is_none());
        assert!(matches!(
            keys(press(key::Named::Escape, Modifiers::empty()), ignored, id),
            Some(Message::Escape(got)) if got == id
        ));
        assert!(matches!(
            keys(press(key::Named::Enter, Modifiers::empty()), ignored, id),
            Some(Message::Enter(got)) if got == id
        ));
        // A key a widget used (Escape leaving the code field) is not ours.
        assert!(
            keys(
                press(key::Named::Escape, Modifiers::empty()),
                event::Status::Captured,
                id
            )
            .is_none()
        );
    }

    #[test]
    #[cfg(unix)]
    fn recovery_codes_file_is_private_even_when_it_existed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("codes.txt");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        rampart_agent::fsutil::write_atomic(&path, b"AAAA-BBBB\n").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "AAAA-BBBB\n");
    }
}
