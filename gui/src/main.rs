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
    // `Targets`, as the agent: log directives without a regex engine.
    let filter = std::env::var("RAMPART_LOG")
        .ok()
        .and_then(|f| f.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .init();
    iced::daemon(app::App::boot, app::App::update, app::App::view)
        .title(app::App::title)
        .theme(app::App::theme)
        .subscription(app::App::subscription)
        .default_font(Font::with_name("Fira Sans"))
        .run()?;
    Ok(())
}
