//! `berth logs ATTEMPT [-f]`: the attempt's output from the start, then live.

use std::io::{Read, Seek, SeekFrom, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use berth_core::AttemptId;

use crate::context::Context;

#[derive(clap::Args)]
pub struct Args {
    attempt: AttemptId,
    /// Keep printing new output until the attempt ends.
    #[arg(short, long)]
    follow: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    ctx.reconcile();
    let store = ctx.store();
    let db = store.db()?;
    db.attempt(args.attempt)?; // a clear error for an unknown attempt
    let path = store.output_log(args.attempt);
    let mut pos = 0u64;
    let mut out = std::io::stdout();
    loop {
        if let Ok(mut f) = std::fs::File::open(&path) {
            f.seek(SeekFrom::Start(pos))?;
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)?;
            pos += buf.len() as u64;
            out.write_all(&buf)?;
            out.flush()?;
        }
        if !args.follow {
            return Ok(ExitCode::SUCCESS);
        }
        let live = db.attempt(args.attempt)?.state.is_live();
        if !live {
            // One more read catches what was written just before the end.
            if let Ok(mut f) = std::fs::File::open(&path) {
                f.seek(SeekFrom::Start(pos))?;
                let mut buf = Vec::new();
                f.read_to_end(&mut buf)?;
                out.write_all(&buf)?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(200));
        ctx.reconcile();
    }
}
