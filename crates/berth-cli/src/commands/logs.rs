//! `berth logs ATTEMPT [-f]`: the attempt's output from the start, then live.

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
    // The older half of a rotated log first, streamed.
    if let Ok(mut older) = std::fs::File::open(RotatingLog::older(&path)) {
        std::io::copy(&mut older, &mut out)?;
    }
    let mut pos = 0u64;
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
