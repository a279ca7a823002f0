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
use tracing_subscriber::EnvFilter;

/// When `main` began, for the time-to-first-frame figure in the log.
pub static STARTED: LazyLock<Instant> = LazyLock::new(Instant::now);

fn main() -> anyhow::Result<()> {
    LazyLock::force(&STARTED);
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("RAMPART_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    iced::daemon(app::App::boot, app::App::update, app::App::view)
        .title(app::App::title)
        .theme(app::App::theme)
        .subscription(app::App::subscription)
        .default_font(Font::with_name("Fira Sans"))
        .run()?;
    Ok(())
}
