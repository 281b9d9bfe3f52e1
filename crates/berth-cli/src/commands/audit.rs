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
        println!("{}  {:<10} {}", timestamp(e.ts_ms), e.kind, e.data);
    }
    Ok(ExitCode::SUCCESS)
}

/// `2026-11-30 08:41:14.123Z` for milliseconds since the epoch (UTC; the date too, since a
/// timeline can span days).
fn timestamp(ts_ms: u64) -> String {
    let secs = ts_ms / 1000;
    let days = (secs / 86_400) as i64;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02}.{:03}Z",
        ts_ms % 1000
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_carry_the_date() {
        assert_eq!(super::timestamp(0), "1970-01-01 00:00:00.000Z");
        assert_eq!(
            super::timestamp(1_796_028_074_123),
            "2026-11-30 08:41:14.123Z"
        );
        assert_eq!(
            super::timestamp(951_782_400_000),
            "2000-02-29 00:00:00.000Z"
        );
    }
}
