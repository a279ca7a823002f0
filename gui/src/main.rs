//! `rampart`: the status window and the MFA setup wizard.

mod agent;
mod app;
#[cfg(test)]
mod fixtures;
mod screen;
#[cfg(test)]
mod simulated;
mod widget;

use std::sync::LazyLock;
use std::time::Instant;

use iced::Font;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

/// When `main` began, for the time-to-first-frame figure in the log.
pub static STARTED: LazyLock<Instant> = LazyLock::new(Instant::now);

fn main() -> anyhow::Result<()> {
    LazyLock::force(&STARTED);
    if let Err(why) = display_session(
        cfg!(all(unix, not(target_os = "macos"))),
        std::env::var_os("WAYLAND_DISPLAY").is_some_and(|v| !v.is_empty()),
        std::env::var_os("DISPLAY").is_some_and(|v| !v.is_empty()),
    ) {
        // Without a display the windowing library panics (exit 101); a
        // login script or an ssh session deserves a sentence instead.
        eprintln!("rampart: {why}");
        std::process::exit(1);
    }
    // `Targets`, as the agent: log directives without a regex engine.
    let filter = std::env::var("RAMPART_LOG")
        .ok()
        .and_then(|f| f.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .init();
    exit_cleanly_without_a_window();
    warm_fonts();
    iced::daemon(app::App::boot, app::App::update, app::App::view)
        .title(app::App::title)
        .theme(app::App::theme)
        .subscription(app::App::subscription)
        .default_font(Font::with_name("Fira Sans"))
        .run()?;
    Ok(())
}

/// Builds iced's font system (every system font parsed, besides the
/// embedded Fira Sans) on its own thread while the main thread connects to
/// the display, instead of on the main thread at the first layout. The
/// first user waits for the one being built; there is never a second.
fn warm_fonts() {
    let spawned = std::thread::Builder::new()
        .name("font-warmup".into())
        .spawn(|| {
            let started = Instant::now();
            let _ = iced::advanced::graphics::text::font_system();
            tracing::debug!(
                ms = started.elapsed().as_secs_f64() * 1000.0,
                "fonts loaded"
            );
        });
    if let Err(e) = spawned {
        // Not fatal: the first layout loads them instead.
        tracing::debug!(error = %e, "could not start the font warm-up thread");
    }
}

/// A display named in the environment that does not answer (DISPLAY=:1
/// with no X server, a dead ssh -X tunnel) makes iced panic while creating
/// its event loop; that one panic becomes a sentence and exit 1, any other
/// panic stays a panic.
fn exit_cleanly_without_a_window() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if let Some(why) = no_window_words(text) {
            eprintln!("rampart: {why}");
            std::process::exit(1);
        }
        default_hook(info);
    }));
}

fn no_window_words(panic_text: &str) -> Option<String> {
    panic_text.starts_with("Create event loop").then(|| {
        format!(
            "the Rampart app cannot open a window: the display in this session does not answer. \
             Open Rampart from your desktop; without one, `rampart-agent status` shows the same status. \
             (details: {panic_text})"
        )
    })
}

/// Whether a window can be opened: on Linux and the BSDs only with a Wayland
/// or X11 display in the environment (macOS and Windows always have one).
fn display_session(needs_env: bool, wayland: bool, x11: bool) -> Result<(), String> {
    if !needs_env || wayland || x11 {
        return Ok(());
    }
    Err(
        "the Rampart app needs a desktop session, and there is none here \
         (neither WAYLAND_DISPLAY nor DISPLAY is set: a terminal, ssh or a service). \
         Open Rampart from your desktop; without one, `rampart-agent status` shows the same status."
            .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn without_a_display_the_app_says_so() {
        use super::display_session;
        assert!(
            display_session(true, false, false)
                .unwrap_err()
                .contains("rampart-agent status")
        );
        assert!(display_session(true, true, false).is_ok());
        assert!(display_session(true, false, true).is_ok());
        assert!(display_session(false, false, false).is_ok());
        let words = super::no_window_words(
            "Create event loop: Os(OsError { error: XNotSupported(XOpenDisplayFailed) })",
        )
        .unwrap();
        assert!(words.contains("does not answer") && words.contains("XOpenDisplayFailed"));
        assert_eq!(super::no_window_words("index out of bounds"), None);
    }
}
