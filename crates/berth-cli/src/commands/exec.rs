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
    /// The attempt, e.g. 3.1.
    attempt: AttemptId,
    /// Working directory in the guest.
    #[arg(short, long, default_value = "/work")]
    workdir: String,
    /// Send stdin to the command (the default when stdin is a pipe or a file).
    #[arg(short, long)]
    interactive: bool,
    /// Give the command a terminal (with -i: an interactive shell, `berth exec -it A -- bash`).
    #[arg(short, long)]
    tty: bool,
    /// The command and its arguments.
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

/// The command runs with the attempt's own environment (its proxy, `$BERTH_PROMPT`, its
/// caches and secrets' variables), as the attempt's command does.
pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    ctx.reconcile();
    let mut client = berth_core::connect_live(&ctx.store(), args.attempt)?;
    let stdin_is_tty = crate::terminal::is_tty(0);
    let mut env = vec![("BERTH_ATTEMPT".into(), args.attempt.to_string())];
    let pty = if args.tty {
        let (rows, cols) = crate::terminal::size(1)
            .or_else(|| crate::terminal::size(0))
            .unwrap_or((24, 80));
        let term = std::env::var("TERM").unwrap_or_else(|_| "xterm-256color".into());
        env.push(("TERM".into(), term));
        Some(berth_core::WinSize { rows, cols })
    } else {
        None
    };
    // Like `docker exec`: -i sends stdin; so does a pipe or a file (never a terminal unasked,
    // which would wait for the user).
    let send_stdin = args.interactive || !stdin_is_tty;
    let stdin: Option<Box<dyn std::io::Read + Send>> =
        send_stdin.then(|| Box::new(std::io::stdin()) as Box<dyn std::io::Read + Send>);
    let _raw = (args.tty && args.interactive && stdin_is_tty)
        .then(crate::terminal::RawMode::enable)
        .flatten();
    let status = client.exec_with_stdin(
        ExecRequest {
            argv: args.command,
            env,
            cwd: Some(args.workdir),
            user: None,
            pty,
        },
        stdin,
        &mut Std,
    )?;
    drop(_raw);
    Ok(ExitCode::from(status.shell_code().clamp(0, 255) as u8))
}
