//! `berth audit ATTEMPT [--json] [--verify]`: the attempt's timeline, written by the host only.

use std::process::ExitCode;

use anyhow::{Result, bail};
use berth_core::AttemptId;

use crate::context::Context;

#[derive(clap::Args)]
pub struct Args {
    /// The attempt, e.g. 3.1.
    attempt: AttemptId,
    /// Machine-readable output (JSON).
    #[arg(long)]
    json: bool,
    /// Check the hash chain: fails if any event was edited, removed or reordered.
    #[arg(long)]
    verify: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    ctx.reconcile();
    let db = ctx.store().db()?;
    // An unknown id is an error, not "0 events, chain intact".
    db.attempt(args.attempt)?;
    if args.verify {
        return match db.verify_audit(args.attempt)? {
            Ok(n) => {
                println!(
                    "audit of {} verifies: {n} events, chain intact",
                    args.attempt
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(b) => bail!(
                "audit of {} does NOT verify: event {} {}",
                args.attempt,
                b.seq,
                b.why
            ),
        };
    }
    let events = db.audit_events(args.attempt)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&events)?);
        return Ok(ExitCode::SUCCESS);
    }
    for e in events {
        let secs = e.ts_ms / 1000;
        let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
        println!(
            "{h:02}:{m:02}:{s:02}.{:03}  {:<10} {}",
            e.ts_ms % 1000,
            e.kind,
            e.data
        );
    }
    Ok(ExitCode::SUCCESS)
}
