//! `berth attach ATTEMPT`: the attempt's terminal; detaching leaves it running.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use berth_core::{AttemptId, SupervisorClient, SupervisorError};
use berth_proto::{Message, WinSize};

use crate::context::Context;
use crate::terminal;

/// Ctrl-] detaches (as in telnet and virsh console).
const DETACH_KEY: u8 = 0x1d;

#[derive(clap::Args)]
pub struct Args {
    attempt: AttemptId,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    ctx.reconcile();
    let store = ctx.store();
    let mut client = SupervisorClient::connect(&store.socket(args.attempt))?;
    let size = terminal::size(1).map(|(rows, cols)| WinSize { rows, cols });
    client.attach(size)?;
    let tty = terminal::is_tty(0);
    if tty {
        eprintln!(
            "berth: attached to {}; Ctrl-] detaches, the attempt keeps running\r",
            args.attempt
        );
    }
    let _raw = tty.then(terminal::RawMode::enable).flatten();
    let detached = Arc::new(AtomicBool::new(false));
    // An approval request waiting for this terminal's answer (o/a/d).
    let asking: Arc<std::sync::Mutex<Option<u32>>> = Arc::default();
    let writer = client.writer();
    {
        let detached = detached.clone();
        let asking = asking.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut stdin = std::io::stdin().lock();
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 {
                    return; // input ended: keep showing output until the attempt ends
                }
                let data = &buf[..n];
                let question = *asking.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(id) = question {
                    let decision = match data[0].to_ascii_lowercase() {
                        b'o' | b'y' => "once",
                        b'a' => "always",
                        b'd' | b'n' => "deny",
                        _ => continue,
                    };
                    *asking.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    let _ = writer.send(&Message::Approve {
                        id,
                        decision: decision.into(),
                    });
                    eprint!("{decision}\r\n");
                    continue;
                }
                if tty && let Some(pos) = data.iter().position(|&b| b == DETACH_KEY) {
                    let _ = writer.send(&Message::Stdin {
                        id: 0,
                        data: data[..pos].to_vec(),
                    });
                    detached.store(true, Ordering::SeqCst);
                    // Closing our end ends the session on the supervisor's side.
                    std::process::exit(0);
                }
                if writer
                    .send(&Message::Stdin {
                        id: 0,
                        data: data.to_vec(),
                    })
                    .is_err()
                {
                    return;
                }
            }
        });
    }
    let winch = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGWINCH, winch.clone())?;
    let writer = client.writer();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(std::time::Duration::from_millis(100));
            if winch.swap(false, Ordering::SeqCst)
                && let Some((rows, cols)) = terminal::size(1)
            {
                let _ = writer.send(&Message::Resize {
                    id: 0,
                    size: WinSize { rows, cols },
                });
            }
        }
    });
    loop {
        match client.recv() {
            Ok(Message::Stdout { id: 0, data }) => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&data).and_then(|_| out.flush());
            }
            Ok(Message::ApprovalRequest { id, host, port }) => {
                if tty {
                    eprint!(
                        "\r\nberth: attempt {} wants to reach {host}:{port}, which is not on its \
                         allowlist. Allow [o]nce, [a]lways for this task, or [d]eny? ",
                        args.attempt
                    );
                    *asking.lock().unwrap_or_else(|e| e.into_inner()) = Some(id);
                } else {
                    eprintln!(
                        "berth: attempt {} wants to reach {host}:{port}; answer from a terminal \
                         (`berth attach {}`), or it is denied in 60 s",
                        args.attempt, args.attempt
                    );
                }
            }
            Ok(Message::ApprovalClosed { id, decision }) => {
                let mut q = asking.lock().unwrap_or_else(|e| e.into_inner());
                if *q == Some(id) {
                    *q = None;
                    let how = match decision.as_str() {
                        "expired" => "no answer in time: denied".to_string(),
                        d => format!("answered elsewhere: {d}"),
                    };
                    eprint!("{how}\r\n");
                }
            }
            Ok(_) => {}
            Err(SupervisorError::Ended) => {
                drop(_raw);
                eprintln!("\r\nberth: attempt {} ended", args.attempt);
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) => return Err(e.into()),
        }
    }
}
