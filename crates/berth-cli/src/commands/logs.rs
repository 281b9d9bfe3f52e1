//! `berth logs ATTEMPT [-f] [-n N | --since WHEN]`: the attempt's output from the start (or
//! its last N lines, or what it printed since a time), then live.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use berth_core::host::logfile::RotatingLog;
use berth_core::{AttemptId, read_log_from};

use crate::context::Context;

#[derive(clap::Args)]
pub struct Args {
    /// The attempt, e.g. 3.1.
    attempt: AttemptId,
    /// Keep printing new output until the attempt ends.
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines of what is there now (then, with -f, what comes).
    #[arg(short = 'n', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    tail: Option<u32>,
    /// Only what it printed since WHEN: a time back from now (90s, 10m, 2h, 1d) or a UTC
    /// time (2026-11-30T10:00:00), to the second.
    #[arg(long, value_name = "WHEN", conflicts_with = "tail")]
    since: Option<String>,
}

/// Where in the log at `path` output written at `since` (Unix seconds) or later starts,
/// from its time marks: `None` when nothing there is that recent, or it has no marks.
fn since_offset(path: &std::path::Path, since: u64) -> Option<u64> {
    let marks = std::fs::read_to_string(RotatingLog::times(path)).ok()?;
    marks.lines().find_map(|line| {
        let (t, at) = line.split_once(' ')?;
        (t.parse::<u64>().ok()? >= since).then(|| at.parse().ok())?
    })
}

/// The offset in `path` from which its last `n` lines start, and how many of those lines it
/// holds (fewer when the file is shorter). Reads backwards a block at a time.
fn tail_offset(path: &std::path::Path, n: usize) -> std::io::Result<(u64, usize)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut end = len;
    let mut newlines = 0usize;
    // A last line without its newline counts as a line.
    let mut skip_last = true;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let block = &mut buf[..(end - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(block)?;
        for (i, b) in block.iter().enumerate().rev() {
            if *b != b'\n' {
                skip_last = false;
                continue;
            }
            if skip_last && start + i as u64 == len - 1 {
                skip_last = false;
                continue;
            }
            newlines += 1;
            if newlines == n {
                return Ok((start + i as u64 + 1, n));
            }
        }
        end = start;
    }
    Ok((0, newlines + usize::from(len > 0)))
}

/// Read at most this much at a time: the log is streamed, never loaded whole.
const CHUNK: u64 = 1 << 20;

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    ctx.reconcile();
    let store = ctx.store();
    let db = store.db()?;
    db.attempt(args.attempt)?; // a clear error for an unknown attempt
    let path = store.output_log(args.attempt);
    let mut out = std::io::stdout().lock();
    let mut pos = 0u64;
    let older_path = RotatingLog::older(&path);
    let since = match &args.since {
        Some(w) => Some(
            super::since::parse_since(w, crate::context::now_ms() / 1000)
                .map_err(anyhow::Error::msg)?,
        ),
        None => None,
    };
    let marked = RotatingLog::times(&path).exists();
    if since.is_some() && !marked && path.exists() {
        eprintln!("berth: this log has no time marks (an older berth wrote it); all of it:");
    }
    let since = since.filter(|_| marked);
    if let Some(since) = since {
        match since_offset(&older_path, since) {
            // From there in the older half, then all of the current one.
            Some(at) => {
                if let Ok(mut older) = std::fs::File::open(&older_path) {
                    use std::io::{Seek, SeekFrom};
                    older.seek(SeekFrom::Start(at))?;
                    std::io::copy(&mut older, &mut out)?;
                }
            }
            None => {
                let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                pos = since_offset(&path, since).unwrap_or(len);
            }
        }
    }
    match args.tail {
        _ if since.is_some() => {}
        Some(n) => {
            let n = n as usize;
            // The last n lines: from the current half, and the older one if it falls short.
            let (at, have) = tail_offset(&path, n).unwrap_or((0, 0));
            if have < n
                && let Ok((older_at, _)) = tail_offset(&older_path, n - have)
                && let Ok(mut older) = std::fs::File::open(&older_path)
            {
                use std::io::{Seek, SeekFrom};
                older.seek(SeekFrom::Start(older_at))?;
                std::io::copy(&mut older, &mut out)?;
            }
            pos = at;
        }
        None => {
            // The older half of a rotated log first, streamed.
            if let Ok(mut older) = std::fs::File::open(&older_path) {
                std::io::copy(&mut older, &mut out)?;
            }
        }
    }
    // Everything there is now, a chunk at a time (a rotation restarts at 0).
    let mut drain = |out: &mut std::io::StdoutLock| -> Result<()> {
        loop {
            let chunk = read_log_from(&path, pos, CHUNK)?;
            out.write_all(&chunk.data)?;
            pos = chunk.start + chunk.data.len() as u64;
            if (chunk.data.len() as u64) < CHUNK {
                return Ok(out.flush()?);
            }
        }
    };
    loop {
        drain(&mut out)?;
        if !args.follow {
            return Ok(ExitCode::SUCCESS);
        }
        if !db.attempt(args.attempt)?.state.is_live() {
            // One more read catches what was written just before the end.
            drain(&mut out)?;
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(200));
        ctx.reconcile();
    }
}

#[cfg(test)]
mod tests {
    use super::tail_offset;

    #[test]
    fn the_tail_starts_at_the_nth_last_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log");
        std::fs::write(&p, "a\r\nb\r\nc\r\n").unwrap();
        let text = std::fs::read(&p).unwrap();
        let from = |n| {
            let (at, _) = tail_offset(&p, n).unwrap();
            String::from_utf8_lossy(&text[at as usize..]).into_owned()
        };
        assert_eq!(from(1), "c\r\n");
        assert_eq!(from(2), "b\r\nc\r\n");
        assert_eq!(from(9), "a\r\nb\r\nc\r\n");
        assert_eq!(tail_offset(&p, 9).unwrap().1, 3);
        std::fs::write(&p, "a\nno newline").unwrap();
        let (at, _) = tail_offset(&p, 1).unwrap();
        assert_eq!(at, 2);
    }
}
