//! The install plan as data: what the installer will create, copy, run and
//! remove, in order. Computing it does no I/O beyond reading the inputs it is
//! given, so every plan can be printed (`--dry-run`) and tested.

use std::fmt;
use std::path::PathBuf;

/// Who owns a created file or directory. Applied only when installing for
/// real (not under `--root`) and only on Unix; on Windows `Program Files`'s
/// ACL is inherited and the data directory gets explicit ACLs
/// ([`Step::Acl`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub user: &'static str,
    pub group: &'static str,
}

impl Owner {
    pub const ROOT: Self = Self {
        user: "root",
        group: "root",
    };
    /// macOS: group `wheel` (gid 0).
    pub const ROOT_WHEEL: Self = Self {
        user: "root",
        group: "wheel",
    };
    pub const SYSTEM: Self = Self {
        user: "SYSTEM",
        group: "Administrators",
    };
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.user, self.group)
    }
}

/// Which operation a command belongs to (shown in the printed plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Install,
    Uninstall,
}

/// `Debug` by hand: a file's contents may be the Duo secret key or the
/// deployment secret, so only their size is shown.
#[derive(Clone, PartialEq, Eq)]
pub enum Step {
    /// Create a directory (and parents) with this mode; an existing one keeps
    /// its contents and gets the mode.
    Dir {
        path: PathBuf,
        mode: u32,
        owner: Owner,
    },
    /// Write a file whole (atomically: temporary file, then rename).
    File {
        path: PathBuf,
        mode: u32,
        owner: Owner,
        contents: Vec<u8>,
    },
    /// Copy a binary into place (atomically).
    Copy {
        from: PathBuf,
        to: PathBuf,
        mode: u32,
    },
    /// Run a command. Not run under `--root`: printed instead.
    Command {
        argv: Vec<String>,
        when: When,
        /// A failure is expected in some states (stopping a service that is
        /// not installed yet) and does not stop the plan.
        may_fail: bool,
    },
    /// Remove a file, or a directory if it is empty (a directory that still
    /// holds files we did not put there is left alone, with a note).
    Remove { path: PathBuf },
    /// Remove a directory and everything in it (`--purge` only).
    RemoveTree { path: PathBuf },
    /// Windows: replace the DACL of a file or directory with this SDDL,
    /// protected from inheritance. Not done under `--root`.
    Acl { path: PathBuf, sddl: &'static str },
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Dir { path, mode, owner } => f
                .debug_struct("Dir")
                .field("path", path)
                .field("mode", &format_args!("{mode:o}"))
                .field("owner", owner)
                .finish(),
            Step::File {
                path,
                mode,
                owner,
                contents,
            } => f
                .debug_struct("File")
                .field("path", path)
                .field("mode", &format_args!("{mode:o}"))
                .field("owner", owner)
                .field("contents", &format_args!("<{} bytes>", contents.len()))
                .finish(),
            Step::Copy { from, to, mode } => f
                .debug_struct("Copy")
                .field("from", from)
                .field("to", to)
                .field("mode", &format_args!("{mode:o}"))
                .finish(),
            Step::Command {
                argv,
                when,
                may_fail,
            } => f
                .debug_struct("Command")
                .field("argv", argv)
                .field("when", when)
                .field("may_fail", may_fail)
                .finish(),
            Step::Remove { path } => f.debug_struct("Remove").field("path", path).finish(),
            Step::RemoveTree { path } => f.debug_struct("RemoveTree").field("path", path).finish(),
            Step::Acl { path, sddl } => f
                .debug_struct("Acl")
                .field("path", path)
                .field("sddl", sddl)
                .finish(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn commands(&self) -> impl Iterator<Item = &[String]> {
        self.steps.iter().filter_map(|s| match s {
            Step::Command { argv, .. } => Some(argv.as_slice()),
            _ => None,
        })
    }

    /// The file written at `path`, if the plan writes one.
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        self.steps.iter().find_map(|s| match s {
            Step::File {
                path: p, contents, ..
            } if p.as_os_str() == path => Some(contents.as_slice()),
            _ => None,
        })
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dir { path, mode, owner } => {
                write!(f, "mkdir  {mode:04o} {owner} {}", path.display())
            }
            Self::File {
                path,
                mode,
                owner,
                contents,
            } => write!(
                f,
                "write  {mode:04o} {owner} {} ({} bytes)",
                path.display(),
                contents.len()
            ),
            Self::Copy { from, to, mode } => write!(
                f,
                "copy   {mode:04o} {} <- {}",
                to.display(),
                from.display()
            ),
            Self::Command {
                argv,
                when,
                may_fail,
            } => {
                let phase = match when {
                    When::Install => "install",
                    When::Uninstall => "uninstall",
                };
                let tail = if *may_fail { " (may fail)" } else { "" };
                write!(f, "run    [{phase}] {}{tail}", shell_words(argv))
            }
            Self::Remove { path } => write!(f, "remove {}", path.display()),
            Self::RemoveTree { path } => {
                write!(f, "purge  {} (and everything in it)", path.display())
            }
            Self::Acl { path, sddl } => write!(f, "acl    {} {sddl}", path.display()),
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.steps {
            writeln!(f, "{step}")?;
        }
        Ok(())
    }
}

/// A command line as a POSIX shell would read it back (for printing only).
pub fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
