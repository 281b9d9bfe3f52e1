//! A log file a guest cannot grow without limit: it writes `NAME` until it holds `max`
//! bytes, then moves it to `NAME.1` (replacing the older one) and starts again. At most
//! `2 × max` bytes are kept, always the newest. A guest can write 64 MiB/s to its terminal
//! or console; without this the host's disk fills.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub struct RotatingLog {
    path: PathBuf,
    max: u64,
    file: File,
    len: u64,
    /// With [`RotatingLog::open_timed`]: `NAME.times`, and when a mark was last written.
    times: Option<(File, u64)>,
}

impl RotatingLog {
    /// Opens `path` for appending (mode 0600, never through a symlink).
    pub fn open(path: &Path, max: u64) -> std::io::Result<RotatingLog> {
        let file = open_append(path)?;
        let len = file.metadata()?.len();
        Ok(RotatingLog {
            path: path.to_path_buf(),
            max: max.max(1),
            file,
            len,
            times: None,
        })
    }

    /// Like [`RotatingLog::open`], and keeps `NAME.times`: a line "`<unix seconds>
    /// <offset>`" at most once a second, where a write starts, so a reader can start at a
    /// time (`berth logs --since`); it rotates with the log.
    pub fn open_timed(path: &Path, max: u64) -> std::io::Result<RotatingLog> {
        let mut log = Self::open(path, max)?;
        log.times = Some((open_append(&Self::times(path))?, 0));
        Ok(log)
    }

    /// The time marks of the log at `path` (see [`RotatingLog::open_timed`]).
    pub fn times(path: &Path) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(".times");
        PathBuf::from(name)
    }

    /// Notes that a write starts now at the current length, unless one was noted this second.
    fn mark(&mut self) -> std::io::Result<()> {
        let Some((file, last)) = &mut self.times else {
            return Ok(());
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if now != *last {
            *last = now;
            file.write_all(format!("{now} {}\n", self.len).as_bytes())?;
        }
        Ok(())
    }

    /// The older half: where the log's earlier bytes went.
    pub fn older(path: &Path) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(".1");
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        std::fs::rename(&self.path, Self::older(&self.path))?;
        self.file = open_append(&self.path)?;
        self.len = 0;
        if let Some((file, last)) = &mut self.times {
            let times = Self::times(&self.path);
            std::fs::rename(&times, Self::times(&Self::older(&self.path)))?;
            *file = open_append(&times)?;
            *last = 0;
        }
        Ok(())
    }
}

impl Write for RotatingLog {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.len >= self.max {
            self.rotate()?;
        }
        self.mark()?;
        let room = (self.max - self.len) as usize;
        let n = self.file.write(&data[..data.len().min(room)])?;
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_keeps_only_the_newest_bytes_within_twice_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output.log");
        let mut log = RotatingLog::open(&path, 1000).unwrap();
        for i in 0..10_000u32 {
            log.write_all(format!("{i:05}\n").as_bytes()).unwrap();
        }
        let now = std::fs::read_to_string(&path).unwrap();
        let older = std::fs::read_to_string(RotatingLog::older(&path)).unwrap();
        assert!(now.len() <= 1000 && older.len() == 1000);
        assert!(now.ends_with("09999\n"), "the newest bytes are kept");
        assert!(!older.contains("00000"), "the oldest are gone");
    }

    #[test]
    fn time_marks_name_where_writes_start_and_rotate_with_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output.log");
        let mut log = RotatingLog::open_timed(&path, 10).unwrap();
        log.write_all(b"abcdef").unwrap();
        log.write_all(b"gh").unwrap(); // the same second: no second mark
        let marks = std::fs::read_to_string(RotatingLog::times(&path)).unwrap();
        let lines: Vec<&str> = marks.lines().collect();
        assert!(!lines.is_empty() && lines.len() <= 2, "{marks}");
        assert!(lines[0].ends_with(" 0"), "{marks}");
        log.write_all(b"ijklmnop").unwrap(); // fills it and rotates
        let older = RotatingLog::times(&RotatingLog::older(&path));
        assert!(
            std::fs::read_to_string(older)
                .unwrap()
                .starts_with(lines[0])
        );
        let now = std::fs::read_to_string(RotatingLog::times(&path)).unwrap();
        assert!(now.lines().next().unwrap().ends_with(" 0"), "{now}");
    }

    #[test]
    fn a_symlink_planted_at_the_log_path_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("victim");
        std::fs::write(&target, "keep").unwrap();
        let path = dir.path().join("console.log");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(RotatingLog::open(&path, 100).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }
}
