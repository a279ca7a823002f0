//! Carrying out a plan, for real or staged under a root directory.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::plan::{Owner, Plan, Step, shell_words};

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("`{command}` failed: {detail}")]
    Command {
        command: String,
        detail: CommandFailure,
    },
}

/// Why one command of a plan failed. The words follow `ExecError::Command`'s
/// "`…` failed: " and a `may_fail` step's note, so they carry no command line.
#[derive(Debug, thiserror::Error)]
pub enum CommandFailure {
    #[error("empty command")]
    Empty,
    // The OS error's words are the message, not a `source`: an error chain
    // would say them twice.
    /// It could not be started at all.
    #[error("{0}")]
    Spawn(io::Error),
    /// It ran and exited unsuccessfully; `stderr` trimmed.
    #[error("{status}: {stderr}")]
    Exited {
        status: std::process::ExitStatus,
        stderr: String,
    },
}

/// Where and how a plan runs.
#[derive(Debug, Clone)]
pub struct Target {
    /// Stage every path under this directory and run no command.
    pub root: Option<PathBuf>,
}

impl Target {
    fn path(&self, path: &Path) -> PathBuf {
        crate::target_path(self, path)
    }
}

/// Runs every step in order, reporting each through `note`. Stops at the
/// first failure (a command marked `may_fail` is reported and passed over).
pub fn execute(
    plan: &Plan,
    target: &Target,
    note: &mut dyn FnMut(String),
) -> Result<(), ExecError> {
    for step in &plan.steps {
        match step {
            Step::Dir { path, mode, owner } => {
                let p = target.path(path);
                fs::create_dir_all(&p).map_err(io_err("cannot create", &p))?;
                set_mode(&p, *mode).map_err(io_err("cannot set the mode of", &p))?;
                chown(target, &p, owner)?;
            }
            Step::File {
                path,
                mode,
                owner,
                contents,
            } => {
                let p = target.path(path);
                write_atomic(&p, *mode, |tmp| fs::write(tmp, contents))?;
                chown(target, &p, owner)?;
            }
            Step::Copy { from, to, mode } => {
                let p = target.path(to);
                write_atomic(&p, *mode, |tmp| fs::copy(from, tmp).map(drop)).map_err(
                    |e| match e {
                        ExecError::Io { source, .. } => ExecError::Io {
                            action: "cannot copy",
                            path: from.clone(),
                            source,
                        },
                        other => other,
                    },
                )?;
            }
            Step::Command { argv, may_fail, .. } => {
                let line = shell_words(argv);
                if target.root.is_some() {
                    note(format!("staged: not running `{line}`"));
                    continue;
                }
                let result = run(argv);
                match (result, may_fail) {
                    (Ok(()), _) => note(format!("ran `{line}`")),
                    (Err(detail), true) => note(format!("`{line}` failed ({detail}); carrying on")),
                    (Err(detail), false) => {
                        return Err(ExecError::Command {
                            command: line,
                            detail,
                        });
                    }
                }
            }
            Step::Remove { path } => {
                let p = target.path(path);
                match fs::symlink_metadata(&p) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("cannot inspect", &p)(e)),
                    Ok(meta) if meta.is_dir() => match fs::remove_dir(&p) {
                        Ok(()) => {}
                        Err(_) if fs::read_dir(&p).is_ok_and(|mut d| d.next().is_some()) => {
                            note(format!(
                                "kept {}: it holds files the installer did not put there",
                                p.display()
                            ));
                        }
                        Err(e) => return Err(io_err("cannot remove", &p)(e)),
                    },
                    Ok(_) => fs::remove_file(&p).map_err(io_err("cannot remove", &p))?,
                }
            }
            Step::RemoveTree { path } => {
                let p = target.path(path);
                match fs::remove_dir_all(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("cannot remove", &p)(e)),
                }
            }
            Step::Acl { path, sddl } => {
                if target.root.is_some() {
                    // A staged tree belongs to whoever staged it; SYSTEM and
                    // Administrators only would lock them out of it.
                    note(format!("staged: not setting the ACL of {}", path.display()));
                    continue;
                }
                set_acl(path, sddl)?;
                note(format!("set the ACL of {}", path.display()));
            }
        }
    }
    Ok(())
}

fn io_err(action: &'static str, path: &Path) -> impl Fn(io::Error) -> ExecError {
    let path = path.to_owned();
    move |source| ExecError::Io {
        action,
        path: path.clone(),
        source,
    }
}

/// Writes beside the target and renames over it: a running binary or a
/// config being read is never seen half-written.
fn write_atomic(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&Path) -> io::Result<()>,
) -> Result<(), ExecError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(".rampart-installer-tmp");
    let tmp = dir.join(name);
    let result = (|| {
        fill(&tmp)?;
        set_mode(&tmp, mode)?;
        // Opened for writing: Windows refuses to flush (FlushFileBuffers) a
        // handle opened read-only.
        fs::OpenOptions::new().write(true).open(&tmp)?.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err("cannot write", path))
}

fn run(argv: &[String]) -> Result<(), CommandFailure> {
    let (program, args) = argv.split_first().ok_or(CommandFailure::Empty)?;
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(CommandFailure::Spawn)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(CommandFailure::Exited {
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

#[cfg(windows)]
fn set_acl(path: &Path, sddl: &str) -> Result<(), ExecError> {
    rampart_agent::winsec::ffi::set_dacl(path, sddl)
        .map_err(|e| io_err("cannot set the ACL of", path)(e.source))
}

#[cfg(not(windows))]
fn set_acl(path: &Path, _sddl: &str) -> Result<(), ExecError> {
    Err(io_err("cannot set the ACL of", path)(io::Error::other(
        "Windows ACLs are set only on Windows",
    )))
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

/// Only root-owned files are planned, so only uid/gid 0 are ever needed; a
/// staged install (under `--root`, usually as a normal user) keeps the
/// caller's ownership.
#[cfg(unix)]
fn chown(target: &Target, path: &Path, owner: &Owner) -> Result<(), ExecError> {
    if target.root.is_some() || owner.user != "root" {
        return Ok(());
    }
    std::os::unix::fs::chown(path, Some(0), Some(0)).map_err(io_err("cannot chown", path))
}

#[cfg(not(unix))]
fn chown(_target: &Target, _path: &Path, _owner: &Owner) -> Result<(), ExecError> {
    Ok(())
}
