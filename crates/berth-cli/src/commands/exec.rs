//! `berth exec ATTEMPT -- CMD`: another command in a running attempt.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use berth_core::AttemptId;
use berth_core::ExecRequest;
use berth_core::host::agent::ExecIo;

use crate::context::Context;

#[derive(clap::Args)]
pub struct Args {
    attempt: AttemptId,
    /// Working directory in the guest.
    #[arg(short, long, default_value = "/work")]
    workdir: String,
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

struct Std;

impl ExecIo for Std {
    fn stdout(&mut self, d: &[u8]) {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(d).and_then(|_| o.flush());
    }
    fn stderr(&mut self, d: &[u8]) {
        let _ = std::io::stderr().write_all(d);
    }
    fn error(&mut self, m: &str) {
        eprintln!("[guest agent: {}]", berth_core::escape_controls(m));
    }
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    ctx.reconcile();
    let mut client = berth_core::connect_live(&ctx.store(), args.attempt)?;
    let status = client.exec(
        ExecRequest {
            argv: args.command,
            env: vec![("BERTH_ATTEMPT".into(), args.attempt.to_string())],
            cwd: Some(args.workdir),
            user: None,
            pty: None,
        },
        &mut Std,
    )?;
    Ok(ExitCode::from(status.shell_code().clamp(0, 255) as u8))
}
