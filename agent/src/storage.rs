//! Failed writes of the agent's state, in words a person can act on: what
//! could not be saved, where, why, and what to do (the OS error under
//! `details`). Each owner of state (MFA engine, policy store, reporter)
//! keeps its latest failure until a write of the same kind succeeds; the
//! service puts them in `status.storage`.

use std::io;
use std::path::Path;

use chrono::{DateTime, Utc};
use rampart_shared::status::StorageFailure;

use crate::fsutil::FsError;

/// The kinds of state the agent writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StateKind {
    MfaState,
    PolicyCopy,
    ReportQueue,
}

impl StateKind {
    /// The `state` field of [`StorageFailure`].
    pub fn id(self) -> &'static str {
        match self {
            Self::MfaState => "mfa_state",
            Self::PolicyCopy => "policy_copy",
            Self::ReportQueue => "report_queue",
        }
    }

    /// What is lost, as a person would put it.
    fn what(self) -> &'static str {
        match self {
            Self::MfaState => "the MFA setup (the change was not made)",
            Self::PolicyCopy => "its copy of the policy in force (a restart would not know it)",
            Self::ReportQueue => "a report to IT (it is counted and IT is told once one is saved)",
        }
    }
}

/// The words for a failed write of `kind` to `path`. Pure: the error is
/// given by its kind and its text.
pub fn describe(
    kind: StateKind,
    path: &Path,
    error_kind: Option<io::ErrorKind>,
    details: String,
    at: DateTime<Utc>,
) -> StorageFailure {
    StorageFailure {
        state: kind.id().to_owned(),
        path: path.display().to_string(),
        message: words(kind, path, error_kind),
        details,
        at,
    }
}

/// The sentence of [`describe`]: what was not saved, where, why in plain
/// words, and the next step; never the OS's own text, which goes in
/// details.
pub fn words(kind: StateKind, path: &Path, error_kind: Option<io::ErrorKind>) -> String {
    let dir = path.parent().unwrap_or(path).display();
    let (cause, step) = match error_kind {
        Some(io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded) => (
            "the disk is full".to_owned(),
            format!("Free some space on the disk that holds {dir}."),
        ),
        Some(io::ErrorKind::FileTooLarge) => (
            "the file size limit of the agent's process was reached".to_owned(),
            "Raise the service's file size limit (ulimit -f, LimitFSIZE=).".to_owned(),
        ),
        Some(io::ErrorKind::PermissionDenied) => (
            "permission was denied".to_owned(),
            format!("Make {dir} writable by the account the agent runs as."),
        ),
        Some(io::ErrorKind::ReadOnlyFilesystem) => (
            "the file system is read-only".to_owned(),
            format!("Make {dir} writable again (a remount, or the service's ReadWritePaths=)."),
        ),
        _ => (
            "the write failed".to_owned(),
            format!("Check the disk that holds {dir}; the details say what the OS reported."),
        ),
    };
    format!(
        "Rampart could not save {} to {}: {cause}. {step}",
        kind.what(),
        path.display()
    )
}

/// [`describe`] for an [`FsError`], logged at error level.
pub fn failure(kind: StateKind, error: &FsError, at: DateTime<Utc>) -> StorageFailure {
    let io = error.io_error();
    let details = io.map_or_else(|| error.to_string(), io::Error::to_string);
    let failure = describe(kind, error.path(), io.map(io::Error::kind), details, at);
    tracing::error!(
        state = failure.state,
        path = failure.path,
        details = failure.details,
        "{}",
        failure.message
    );
    failure
}

/// The latest failure of one kind of state, cleared by the next success.
#[derive(Debug, Default, Clone)]
pub struct LastFailure(Option<StorageFailure>);

impl LastFailure {
    /// Records the outcome of a write of `kind`.
    pub fn record<T>(&mut self, kind: StateKind, result: &Result<T, FsError>, at: DateTime<Utc>) {
        match result {
            Ok(_) => {
                if self.0.take().is_some() {
                    tracing::info!(state = kind.id(), "state saved again");
                }
            }
            Err(e) => self.0 = Some(failure(kind, e, at)),
        }
    }

    pub fn set(&mut self, failure: StorageFailure) {
        self.0 = Some(failure);
    }

    pub fn clear(&mut self) {
        self.0 = None;
    }

    pub fn get(&self) -> Option<&StorageFailure> {
        self.0.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000, 0).unwrap()
    }

    #[test]
    fn each_cause_has_its_words_and_next_step() {
        let path = Path::new("/var/lib/rampart/mfa/u1000.json");
        let full = describe(
            StateKind::MfaState,
            path,
            Some(io::ErrorKind::StorageFull),
            "No space left on device (os error 28)".into(),
            at(),
        );
        assert_eq!(full.state, "mfa_state");
        assert_eq!(full.path, "/var/lib/rampart/mfa/u1000.json");
        assert_eq!(
            full.message,
            "Rampart could not save the MFA setup (the change was not made) to \
             /var/lib/rampart/mfa/u1000.json: the disk is full. \
             Free some space on the disk that holds /var/lib/rampart/mfa."
        );
        assert_eq!(full.details, "No space left on device (os error 28)");

        for (kind, words) in [
            (io::ErrorKind::PermissionDenied, "permission was denied"),
            (
                io::ErrorKind::ReadOnlyFilesystem,
                "the file system is read-only",
            ),
            (io::ErrorKind::FileTooLarge, "file size limit"),
            (io::ErrorKind::Other, "the write failed"),
        ] {
            let f = describe(StateKind::PolicyCopy, path, Some(kind), String::new(), at());
            assert!(f.message.contains(words), "{kind:?}: {}", f.message);
            assert!(
                f.message.contains("a restart would not know it"),
                "{}",
                f.message
            );
        }
    }

    #[test]
    fn a_success_clears_the_failure() {
        let mut last = LastFailure::default();
        let err: Result<(), FsError> = Err(FsError::Write {
            path: "/x/queue".into(),
            source: io::Error::from(io::ErrorKind::StorageFull),
        });
        last.record(StateKind::ReportQueue, &err, at());
        assert_eq!(last.get().unwrap().state, "report_queue");
        last.record(StateKind::ReportQueue, &Ok::<(), FsError>(()), at());
        assert!(last.get().is_none());
    }
}
