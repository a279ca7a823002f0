//! What keeps the agent's log useful under abuse: lines a local user can
//! cause at will are summarised per user per minute (`summary`), and the
//! files roll over by day and by size within a total cap (`files`).

pub mod files;
pub mod summary;

use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rampart_shared::user::UserId;

use summary::{MAX_KEYS, Summarizer, Verdict, WINDOW};

/// A kind of line that outsiders can make the agent write.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Noisy {
    /// A request or connection refused to this user (`None`: the OS could
    /// not say who).
    Refused(Option<UserId>),
    /// Accepting a connection failed (out of file descriptors, typically).
    AcceptFailed,
}

static NOISY: LazyLock<Mutex<Summarizer<Noisy>>> =
    LazyLock::new(|| Mutex::new(Summarizer::new(WINDOW, MAX_KEYS)));

/// Wakes [`summarize`] when something is counted again: with nothing
/// counted it waits without a timer, so an idle agent does not wake for it.
static COUNTING: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Whether to log this occurrence in full: the first of its kind in its
/// minute. The rest are counted for [`log_summaries`].
pub fn first_in_minute(kind: Noisy) -> bool {
    let mut noisy = NOISY.lock().unwrap_or_else(PoisonError::into_inner);
    if noisy.is_idle() {
        // A permit is kept when nobody waits yet: no wake-up is lost.
        COUNTING.notify_one();
    }
    noisy.record(&kind, Instant::now()) == Verdict::Log
}

/// Calls [`log_summaries`] every `tick` while anything is counted; the
/// IPC server runs it for as long as it serves.
pub async fn summarize(tick: Duration) {
    loop {
        let idle = NOISY
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_idle();
        if idle {
            COUNTING.notified().await;
        }
        tokio::time::sleep(tick).await;
        log_summaries();
    }
}

/// A refusal of `user`: whether to log it in full.
pub fn first_refusal(user: Option<&UserId>) -> bool {
    first_in_minute(Noisy::Refused(user.cloned()))
}

/// Logs one line per kind whose minute is over and that happened more often
/// than the one line logged ([`summarize`] calls it every few seconds).
pub fn log_summaries() {
    let due = NOISY
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .due(Instant::now());
    for s in due {
        match s.key {
            Some(Noisy::Refused(user)) => tracing::warn!(
                count = s.count,
                "{} refused requests from {} in the last minute",
                s.count,
                user.map_or_else(|| "an unidentified user".to_owned(), |u| u.to_string())
            ),
            Some(Noisy::AcceptFailed) => tracing::warn!(
                count = s.count,
                "accepting an IPC connection failed {} times in the last minute",
                s.count
            ),
            None => tracing::warn!(
                count = s.count,
                "{} refusals or failures from other users in the last minute (too many users to name each)",
                s.count
            ),
        }
    }
}
