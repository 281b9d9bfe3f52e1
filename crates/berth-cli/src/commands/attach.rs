//! `berth attach ATTEMPT`: the attempt's terminal; detaching leaves it running. Approval
//! questions are answered out of band (see `attach_keys.rs`).

use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use berth_core::{AttemptId, SupervisorError};
use berth_core::{Message, WinSize};

use super::attach_keys::{Action, Keys};
use crate::context::Context;
use crate::terminal;

/// Guest output kept while the answer prompt is open; beyond it, output is dropped.
const MAX_HELD: usize = 4 << 20;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Shows Berth's own text, or holds / releases the guest's output.
fn perform(action: Action, held: &Mutex<Option<Vec<u8>>>) {
    match action {
        Action::Show(text) => eprint!("{text}"),
        Action::Hold(true) => {
            lock(held).get_or_insert_with(Vec::new);
        }
        Action::Hold(false) => {
            if let Some(buf) = lock(held).take() {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&buf).and_then(|_| out.flush());
            }
        }
        _ => {}
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// The attempt, e.g. 3.1.
    attempt: AttemptId,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    ctx.reconcile();
    let store = ctx.store();
    let mut client = berth_core::connect_live(&store, args.attempt)?;
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
    // Keys and questions, shared by the input thread and the output loop; and whether the
    // guest's output is held while Berth's answer prompt is open.
    let keys: Arc<Mutex<Keys>> = Arc::default();
    let held: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
    let writer = client.writer();
    {
        let (keys, held) = (keys.clone(), held.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut stdin = std::io::stdin().lock();
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 {
                    return; // input ended: keep showing output until the attempt ends
                }
                let actions = if tty {
                    lock(&keys).input(&buf[..n])
                } else {
                    vec![Action::Guest(buf[..n].to_vec())]
                };
                for action in actions {
                    match action {
                        Action::Guest(data) => {
                            if writer.send(&Message::Stdin { id: 0, data }).is_err() {
                                return;
                            }
                        }
                        Action::Answer(id, d) => {
                            let _ = writer.send(&Message::Approve {
                                id,
                                decision: d.as_str().into(),
                            });
                        }
                        Action::Detach => {
                            // Closing our end ends the session on the supervisor's side; the
                            // terminal is given back first, whatever the guest left on it.
                            crate::terminal::restore();
                            std::process::exit(0);
                        }
                        other => perform(other, &held),
                    }
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
                let mut hold = lock(&held);
                match hold.as_mut() {
                    // Bounded: a guest that floods while the prompt is open loses the excess.
                    Some(buf) if buf.len() < MAX_HELD => buf.extend_from_slice(&data),
                    Some(_) => {}
                    None => {
                        let mut out = std::io::stdout().lock();
                        let _ = out.write_all(&data).and_then(|_| out.flush());
                    }
                }
            }
            Ok(Message::ApprovalRequest { id, host, port }) => {
                if tty {
                    let actions = lock(&keys).asked(&args.attempt.to_string(), id, &host, port);
                    actions.into_iter().for_each(|a| perform(a, &held));
                } else {
                    eprintln!(
                        "berth: attempt {} {}; answer from a terminal (`berth attach {}`), or it \
                         is denied in 60 s",
                        args.attempt,
                        berth_core::approval_text(&host, port),
                        args.attempt
                    );
                }
            }
            Ok(Message::ApprovalClosed { id, decision }) => {
                let actions = lock(&keys).closed(id);
                if !actions.is_empty() && decision == "expired" {
                    eprint!("\r\nberth: no answer in time: denied\r\n");
                }
                actions.into_iter().for_each(|a| perform(a, &held));
            }
            Ok(_) => {}
            Err(SupervisorError::Ended) => {
                drop(_raw);
                crate::terminal::restore();
                // The attempt's own exit code is attach's (as `docker attach` does).
                let rec = store.db().and_then(|db| db.attempt(args.attempt)).ok();
                let code = rec.as_ref().and_then(|r| r.exit_code);
                match code {
                    Some(c) => eprintln!("\r\nberth: attempt {} exited ({c})", args.attempt),
                    None => eprintln!("\r\nberth: attempt {} ended", args.attempt),
                }
                return Ok(ExitCode::from(code.unwrap_or(0).clamp(0, 255) as u8));
            }
            Err(e) => return Err(e.into()),
        }
    }
}
