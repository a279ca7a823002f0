//! `rampart-agent man DIR` and `rampart-installer man DIR` (hidden): the man
//! pages the Debian packages ship, rendered from the clap definitions so
//! that they cannot drift from `--help`. One page for the command and one
//! per subcommand (`rampart-agent-status.1`, ...).

use std::path::{Path, PathBuf};

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Where to write the pages (section 1).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Writes `NAME.1` for `command` and `NAME-SUB.1` for each visible
/// subcommand; returns the files written.
pub fn write(command: clap::Command, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut command = command;
    command.build();
    let mut written = Vec::new();
    let name = command.get_name().to_owned();
    written.push(page(&command, &name, dir)?);
    // `help` is clap's own, not a command with a page.
    for sub in command
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let sub_name = format!("{name}-{}", sub.get_name());
        let sub = sub.clone().name(sub_name.clone());
        written.push(page(&sub, &sub_name, dir)?);
    }
    Ok(written)
}

fn page(command: &clap::Command, name: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    let mut roff = Vec::new();
    clap_mangen::Man::new(command.clone())
        .section("1")
        .render(&mut roff)
        .with_context(|| format!("cannot render the man page of {name}"))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, roff).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    #[derive(Debug, clap::Parser)]
    #[command(name = "demo", about = "A demo")]
    struct Demo {
        #[command(subcommand)]
        command: Sub,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Sub {
        /// Shows things.
        Show {
            /// As JSON.
            #[arg(long)]
            json: bool,
        },
        #[command(hide = true)]
        Secret,
    }

    #[test]
    fn one_page_per_visible_command() {
        use clap::CommandFactory;
        let dir = tempfile::tempdir().unwrap();
        let written = super::write(Demo::command(), dir.path()).unwrap();
        let names: Vec<_> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["demo.1", "demo-show.1"]);
        let show = std::fs::read_to_string(&written[1]).unwrap();
        assert!(show.starts_with(".ie \\n(.g .ds Aq"), "{show}");
        assert!(show.contains(".TH demo-show 1"), "{show}");
        assert!(show.contains("As JSON"), "{show}");
    }
}
