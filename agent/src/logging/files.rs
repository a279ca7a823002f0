//! The agent's log files: `agent.YYYY-MM-DD.log`, then `agent.YYYY-MM-DD.1.log`,
//! `.2.log`… when a day's file reaches [`MAX_FILE_BYTES`]; the oldest files
//! are deleted to keep at most [`MAX_TOTAL_BYTES`] and [`MAX_DAYS`] days.
//! Files are created 0600 (on Windows the log directory's DACL keeps them
//! private). Dates are UTC, as the log lines' timestamps.
//!
//! tracing-appender's roller rotates by time only and creates files with
//! the umask's mode, so this replaces it; tracing-appender's non-blocking
//! writer still carries lines to it off the async threads.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, Utc};

pub const PREFIX: &str = "agent";
pub const SUFFIX: &str = "log";
/// A file is closed and the next one started past this size.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// All log files together, the one being written included.
pub const MAX_TOTAL_BYTES: u64 = 50 * 1024 * 1024;
/// Days of logs kept (today's included).
pub const MAX_DAYS: usize = 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogName {
    pub date: NaiveDate,
    /// 0 for the day's first file.
    pub seq: u32,
}

impl LogName {
    pub fn file_name(&self) -> String {
        match self.seq {
            0 => format!("{PREFIX}.{}.{SUFFIX}", self.date.format("%Y-%m-%d")),
            n => format!("{PREFIX}.{}.{n}.{SUFFIX}", self.date.format("%Y-%m-%d")),
        }
    }

    /// The name's parts, for names this module writes; `None` for others.
    pub fn parse(name: &str) -> Option<Self> {
        let rest = name
            .strip_prefix(PREFIX)?
            .strip_prefix('.')?
            .strip_suffix(SUFFIX)?
            .strip_suffix('.')?;
        let (date, seq) = match rest.split_once('.') {
            Some((date, text)) => {
                let seq: u32 = text.parse().ok()?;
                if seq == 0 || seq.to_string() != text {
                    return None;
                }
                (date, seq)
            }
            None => (rest, 0),
        };
        let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
        Some(Self { date, seq })
    }
}

/// Whether a line of `incoming` bytes goes to a new file rather than to
/// `current`, which holds `written` bytes.
pub fn needs_new_file(
    current: Option<&LogName>,
    written: u64,
    incoming: usize,
    today: NaiveDate,
    max_file_bytes: u64,
) -> bool {
    match current {
        None => true,
        Some(name) if name.date != today => true,
        // A line longer than the cap still goes whole into a fresh file.
        Some(_) => written > 0 && written + incoming as u64 > max_file_bytes,
    }
}

/// The name that follows `current` on `today`.
pub fn next_name(current: Option<&LogName>, today: NaiveDate) -> LogName {
    match current {
        Some(name) if name.date == today => LogName {
            date: today,
            seq: name.seq + 1,
        },
        _ => LogName {
            date: today,
            seq: 0,
        },
    }
}

/// The files to delete so that what is left, `keep` included, stays within
/// `max_total` bytes and `max_days` dates; the newest go last.
pub fn to_prune(
    files: &[(LogName, u64)],
    keep: &LogName,
    max_total: u64,
    max_days: usize,
) -> Vec<LogName> {
    let mut newest_first: Vec<&(LogName, u64)> = files.iter().collect();
    newest_first.sort_by_key(|f| std::cmp::Reverse(f.0));
    let mut total = files
        .iter()
        .find(|(n, _)| n == keep)
        .map_or(0, |(_, size)| *size);
    let mut dates = vec![keep.date];
    let mut prune = Vec::new();
    for (name, size) in newest_first {
        if name == keep {
            continue;
        }
        if !dates.contains(&name.date) {
            dates.push(name.date);
        }
        total += size;
        if total > max_total || dates.len() > max_days {
            prune.push(*name);
        }
    }
    prune
}

/// A `Write` that appends to the current log file and rolls over.
#[derive(Debug)]
pub struct LogFiles {
    dir: PathBuf,
    current: Option<(LogName, File)>,
    written: u64,
}

impl LogFiles {
    /// Opens today's latest file in `dir` (appending, as after a restart),
    /// or starts one.
    pub fn open(dir: &Path) -> io::Result<Self> {
        let mut files = Self {
            dir: dir.to_owned(),
            current: None,
            written: 0,
        };
        let today = Utc::now().date_naive();
        let latest_today = files
            .existing()?
            .into_iter()
            .filter(|(n, _)| n.date == today)
            .max_by_key(|(n, _)| *n);
        match latest_today {
            Some((name, size)) if size < MAX_FILE_BYTES => files.start(name, size)?,
            Some((name, _)) => files.start(next_name(Some(&name), today), 0)?,
            None => files.start(next_name(None, today), 0)?,
        }
        Ok(files)
    }

    fn existing(&self) -> io::Result<Vec<(LogName, u64)>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().and_then(LogName::parse) else {
                continue;
            };
            if let Ok(meta) = entry.metadata()
                && meta.is_file()
            {
                out.push((name, meta.len()));
            }
        }
        Ok(out)
    }

    fn start(&mut self, name: LogName, size: u64) -> io::Result<()> {
        let path = self.dir.join(name.file_name());
        let file = open_private_append(&path)?;
        let size = if size == 0 {
            file.metadata()?.len()
        } else {
            size
        };
        self.current = Some((name, file));
        self.written = size;
        // Pruning is best effort: a file that cannot be deleted must not stop
        // logging.
        if let Ok(existing) = self.existing() {
            // Room for this file to grow to its cap.
            let others = MAX_TOTAL_BYTES.saturating_sub(MAX_FILE_BYTES);
            for old in to_prune(&existing, &name, others, MAX_DAYS) {
                let _ = fs::remove_file(self.dir.join(old.file_name()));
            }
        }
        Ok(())
    }
}

#[cfg(unix)]
fn open_private_append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    // A file an older agent created 0644 is narrowed too.
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

#[cfg(not(unix))]
fn open_private_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().append(true).create(true).open(path)
}

impl Write for LogFiles {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let today = Utc::now().date_naive();
        let current = self.current.as_ref().map(|(n, _)| n);
        if needs_new_file(current, self.written, buf.len(), today, MAX_FILE_BYTES) {
            let next = next_name(current, today);
            self.start(next, 0)?;
        }
        let Some((_, file)) = self.current.as_mut() else {
            return Err(io::Error::other("no log file is open"));
        };
        file.write_all(buf)?;
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.current.as_mut() {
            Some((_, file)) => file.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
    }

    fn name(d: u32, seq: u32) -> LogName {
        LogName { date: day(d), seq }
    }

    #[test]
    fn names_round_trip_and_others_are_ignored() {
        assert_eq!(name(5, 0).file_name(), "agent.2026-03-05.log");
        assert_eq!(name(5, 3).file_name(), "agent.2026-03-05.3.log");
        for n in [name(5, 0), name(5, 3), name(31, 12)] {
            assert_eq!(LogName::parse(&n.file_name()), Some(n));
        }
        for other in [
            "agent.log",
            "agent.2026-03-05.0.log",
            "agent.2026-03-05.x.log",
            "agent.2026-13-05.log",
            "other.2026-03-05.log",
            "agent.2026-03-05.log.gz",
            "agent.2026-03-05.+1.log",
        ] {
            assert_eq!(LogName::parse(other), None, "{other}");
        }
    }

    #[test]
    fn a_new_file_by_day_and_by_size() {
        let today = day(5);
        assert!(needs_new_file(None, 0, 10, today, 100));
        assert!(needs_new_file(Some(&name(4, 2)), 0, 10, today, 100));
        assert!(!needs_new_file(Some(&name(5, 0)), 90, 10, today, 100));
        assert!(needs_new_file(Some(&name(5, 0)), 91, 10, today, 100));
        // An oversized line into an empty file: no endless rollover.
        assert!(!needs_new_file(Some(&name(5, 1)), 0, 500, today, 100));
        assert_eq!(next_name(Some(&name(5, 1)), today), name(5, 2));
        assert_eq!(next_name(Some(&name(4, 7)), today), name(5, 0));
        assert_eq!(next_name(None, today), name(5, 0));
    }

    #[test]
    fn pruning_keeps_the_newest_within_bytes_and_days() {
        let files = [
            (name(1, 0), 10),
            (name(2, 0), 10),
            (name(3, 0), 10),
            (name(3, 1), 10),
            (name(4, 0), 5),
        ];
        assert!(to_prune(&files, &name(4, 0), 100, 7).is_empty());
        // 45 bytes, 40 allowed: the oldest goes.
        assert_eq!(to_prune(&files, &name(4, 0), 40, 7), [name(1, 0)]);
        // Two days: today and the 3rd.
        assert_eq!(
            to_prune(&files, &name(4, 0), 100, 2),
            [name(2, 0), name(1, 0)]
        );
        // The file being written is never deleted, even alone over the cap.
        assert_eq!(to_prune(&files, &name(4, 0), 1, 7).len(), 4);
    }

    #[test]
    fn a_flood_rolls_over_by_size_and_stays_within_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = LogFiles::open(dir.path()).unwrap();
        let mut line = vec![b'x'; 1023];
        line.push(b'\n');
        // 80 MiB of lines.
        for _ in 0..(80 * 1024) {
            files.write_all(&line).unwrap();
        }
        files.flush().unwrap();
        let existing = files.existing().unwrap();
        let total: u64 = existing.iter().map(|(_, s)| s).sum();
        eprintln!(
            "{} files, {total} bytes after 80 MiB written",
            existing.len()
        );
        assert!(total <= MAX_TOTAL_BYTES, "{total}");
        assert!(existing.iter().all(|(_, s)| *s <= MAX_FILE_BYTES));
        assert!(existing.len() >= 4, "rolled over by size: {existing:?}");
        #[cfg(unix)]
        for (name, _) in existing {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(name.file_name()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{}", name.file_name());
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_file_an_older_agent_left_0644_is_narrowed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let today = LogName {
            date: Utc::now().date_naive(),
            seq: 0,
        };
        let path = dir.path().join(today.file_name());
        fs::write(&path, b"old line\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let mut files = LogFiles::open(dir.path()).unwrap();
        files.write_all(b"new line\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "old line\nnew line\n");
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
