//! `berth run`'s attempts that a pooled VM took (see berth-core's pool.rs): the VM's slot
//! process supervises the attempt, and `berth run` follows it as if it ran it: the output
//! from the attempt's log on this terminal, its questions asked here (denied at once without
//! a terminal), Ctrl-C or `berth stop` stopping it, its exit code and state at the end.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_core::host::agent::ExecIo;
use berth_core::{AttemptId, AttemptState, Store, SupervisorClient};

use crate::context::now_ms;

/// Follows attempt `id`, supervised by the slot process `slot` (pid): returns as an attempt
/// `berth run` runs itself would (`Ok(Some(code))` exited, `Ok(None)` stopped, `Err` failed).
pub fn follow(
    store: &Store,
    id: AttemptId,
    slot: u32,
    io: &mut dyn ExecIo,
    ask: bool,
    console: Arc<Mutex<()>>,
) -> Result<Option<i32>, String> {
    let slot_start = berth_core::host::rundir::start_time(slot);
    let slot_alive =
        || slot_start.is_some() && berth_core::host::rundir::start_time(slot) == slot_start;
    let log = store.output_log(id);
    let mut reader = LogFollower::default();
    let mut answering: Option<std::thread::JoinHandle<()>> = None;
    let mut stopping: Option<std::thread::JoinHandle<()>> = None;
    loop {
        reader.drain(&log, io);
        if stopping.is_none() && io.interrupted() {
            // In a thread: `stop` waits for the supervisor to finish, and the output keeps
            // coming meanwhile.
            let store = store.clone();
            stopping = Some(std::thread::spawn(move || {
                let _ = berth_core::stop_attempt(&store, id, now_ms);
            }));
        }
        if answering.as_ref().is_none_or(|h| h.is_finished())
            && let Ok(mut client) = SupervisorClient::connect(&store.socket(id))
            && client.attach(None).is_ok()
        {
            let console = console.clone();
            answering = Some(std::thread::spawn(move || {
                super::run_ask::answer_supervised(&mut client, id, ask, console)
            }));
        }
        let rec = store
            .db()
            .and_then(|db| db.attempt(id))
            .map_err(|e| e.to_string())?;
        // Ended, and its supervisor gone (it reads the workspace's changes after the end).
        if !rec.state.is_live() && !slot_alive() {
            reader.drain(&log, io);
            reader.finish(io);
            return match rec.state {
                AttemptState::Exited => Ok(rec.exit_code),
                AttemptState::Stopped => Ok(None),
                // Shown escaped where every failure is (`run.rs`'s `failure_line`).
                _ => Err(rec
                    .error
                    .unwrap_or_else(|| format!("the attempt ended {}", rec.state))),
            };
        }
        if !slot_alive() && rec.state.is_live() {
            // The supervisor died without saying how the attempt ended: the next
            // reconcile marks it stopped; say so now rather than wait forever.
            let _ = berth_core::reconcile(store, now_ms);
            if store
                .db()
                .and_then(|db| db.attempt(id))
                .is_ok_and(|r| r.state.is_live())
            {
                return Err("its VM's supervisor died".into());
            }
            continue;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads an attempt's `output.log` by offset (starting again at 0 when it rotates) and
/// gives what is new to `io` as the command printed it: the log's CR LF line ends (a
/// terminal's, or added by the supervisor when there was none) back to LF.
#[derive(Default)]
struct LogFollower {
    pos: u64,
    /// A CR ended the last chunk: whether it belongs to a CR LF is known with the next.
    held_cr: bool,
}

impl LogFollower {
    fn drain(&mut self, log: &std::path::Path, io: &mut dyn ExecIo) {
        loop {
            let Ok(chunk) = berth_core::read_log_from(log, self.pos, 64 * 1024) else {
                return;
            };
            self.pos = chunk.start + chunk.data.len() as u64;
            if chunk.data.is_empty() {
                return;
            }
            let text = lf_line_ends(&chunk.data, &mut self.held_cr);
            if !text.is_empty() {
                io.stdout(&text);
            }
        }
    }

    fn finish(&mut self, io: &mut dyn ExecIo) {
        if std::mem::take(&mut self.held_cr) {
            io.stdout(b"\r");
        }
    }
}

/// `data` with each CR LF made LF; a CR at its very end is held back in `held_cr` (and one
/// held from before is put back unless an LF follows it).
fn lf_line_ends(data: &[u8], held_cr: &mut bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    if std::mem::take(held_cr) && data.first() != Some(&b'\n') {
        out.push(b'\r');
    }
    for (i, &b) in data.iter().enumerate() {
        if b == b'\r' {
            match data.get(i + 1) {
                Some(b'\n') => continue,
                None => {
                    *held_cr = true;
                    continue;
                }
                Some(_) => {}
            }
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::lf_line_ends;

    #[test]
    fn cr_lf_becomes_lf_across_chunk_boundaries_and_a_lone_cr_stays() {
        let mut held = false;
        assert_eq!(lf_line_ends(b"a\r\nb\r", &mut held), b"a\nb");
        assert!(held);
        assert_eq!(lf_line_ends(b"\nc\rd", &mut held), b"\nc\rd");
        assert!(!held);
        assert_eq!(lf_line_ends(b"50%\r", &mut held), b"50%");
        assert_eq!(lf_line_ends(b"60%\r\n", &mut held), b"\r60%\n");
    }
}
