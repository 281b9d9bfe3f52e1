//! `berth run`'s questions: a name not on the allowlist (or a secret bound with `approve=`)
//! is asked about on `berth run`'s own terminal, like `berth attach` asks for a `task new`
//! attempt. Without a terminal (a pipe, CI) nobody can answer, so it is denied at once.

use std::io::{BufRead as _, Write as _};
use std::sync::{Arc, Mutex};

use berth_core::{
    Approver, AttemptId, Store, approval_subject, approval_text, approver_from, record_approval,
};

/// One question at a time on the terminal, whichever attempt asks.
static TURN: Mutex<()> = Mutex::new(());

/// The approver for attempt `id`: asks on this process's terminal (stdin), one line per
/// answer; `console` keeps the question from cutting into an attempt's output line.
pub fn terminal_approver(store: Store, id: AttemptId, console: Arc<Mutex<()>>) -> Approver {
    approver_from(move |host: &str, port: u16, tx| {
        let (store, console, host) = (store.clone(), console.clone(), host.to_string());
        // A thread of its own: the answer may take the user a while, and the proxy only
        // waits on the channel (and gives up after its timeout).
        std::thread::spawn(move || {
            let marker = store.waiting_marker(id);
            let _ = std::fs::write(&marker, format!("{host}:{port}"));
            let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
            if tx.is_closed() {
                let _ = std::fs::remove_file(&marker);
                return; // the proxy stopped waiting while another question was open
            }
            let answer = ask_line(id, &host, port, &console);
            let _ = std::fs::remove_file(&marker);
            let subject = approval_subject(&host, port);
            if tx.is_closed() {
                eprintln!(
                    "[berth] too late: {subject} was already denied (nobody answered in time)"
                );
                return;
            }
            let (approval, decision) =
                record_approval(&store, crate::context::now_ms, id, &host, port, answer);
            eprintln!("[berth] attempt {id}: {subject}: {decision}");
            tx.send(approval);
        });
    })
}

/// Asks about `host:port` for attempt `id` on this terminal and reads the answer (`once`,
/// `always` or `deny`); the caller holds [`TURN`] (one question at a time).
fn ask_line(id: AttemptId, host: &str, port: u16, console: &Mutex<()>) -> &'static str {
    {
        let _line = console.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\n[berth] attempt {id} {}.\r\n[berth] Allow it? once / always (for the \
             whole task) / deny, then Enter [deny]: ",
            approval_text(host, port)
        );
        let _ = err.flush();
    }
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => "deny",
        Ok(_) => parse_answer(&line),
    }
}

/// Answers the questions of attempt `id`, which a pooled VM's supervisor runs (see
/// `run_pooled.rs`): attached to that supervisor, each question is asked on this terminal,
/// or denied at once without one (`ask` false), as for `berth run`'s own attempts. Returns
/// when the supervisor closes the connection.
pub fn answer_supervised(
    client: &mut berth_core::SupervisorClient,
    id: AttemptId,
    ask: bool,
    console: Arc<Mutex<()>>,
) {
    use std::collections::HashSet;
    let closed: Arc<Mutex<HashSet<u32>>> = Arc::default();
    let writer = client.writer();
    while let Ok(msg) = client.recv() {
        match msg {
            berth_core::Message::ApprovalRequest { id: q, host, port } => {
                let (writer, console, closed) = (writer.clone(), console.clone(), closed.clone());
                std::thread::spawn(move || {
                    let decision = if ask {
                        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
                        if closed
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .contains(&q)
                        {
                            return; // answered elsewhere while another question was open
                        }
                        ask_line(id, &host, port, &console)
                    } else {
                        "deny"
                    };
                    let subject = approval_subject(&host, port);
                    if closed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .contains(&q)
                    {
                        eprintln!("[berth] too late: {subject} was already answered or denied");
                        return;
                    }
                    let _ = writer.send(&berth_core::Message::Approve {
                        id: q,
                        decision: decision.to_string(),
                    });
                    if ask {
                        eprintln!("[berth] attempt {id}: {subject}: {decision}");
                    } else {
                        eprintln!(
                            "[berth] attempt {id}: {subject}: denied (no terminal to ask on)"
                        );
                    }
                });
            }
            berth_core::Message::ApprovalClosed { id: q, .. } => {
                closed.lock().unwrap_or_else(|e| e.into_inner()).insert(q);
            }
            _ => {}
        }
    }
}

/// "o"/"once", "a"/"always"; anything else (an empty line included) denies.
fn parse_answer(line: &str) -> &'static str {
    match line.trim().to_ascii_lowercase().as_str() {
        "o" | "once" | "y" | "yes" => "once",
        "a" | "always" => "always",
        _ => "deny",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_clear_yes_allows() {
        assert_eq!(super::parse_answer("once\n"), "once");
        assert_eq!(super::parse_answer(" A \n"), "always");
        assert_eq!(super::parse_answer("\n"), "deny");
        assert_eq!(super::parse_answer("alwayss\n"), "deny");
        assert_eq!(super::parse_answer("\x1b[Aonce\n"), "deny");
    }
}
