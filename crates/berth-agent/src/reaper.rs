//! Child reaping for an agent that is PID 1.
//!
//! Every orphan in the guest is re-parented to the agent, so one thread waits for any child.
//! It peeks with `WNOWAIT` first and takes the registry lock before reaping, and a spawn
//! holds that lock until its pid is registered: so the reaper never takes a status that
//! `std::process::Command::spawn` is still entitled to, and never loses one of ours.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use berth_proto::ExitStatus;

type Registry = HashMap<i32, Sender<ExitStatus>>;

#[derive(Clone)]
pub struct Reaper {
    registry: Arc<Mutex<Registry>>,
}

/// Held while spawning; register the new pid before dropping it.
pub struct SpawnGuard<'a> {
    registry: MutexGuard<'a, Registry>,
}

impl SpawnGuard<'_> {
    pub fn register(mut self, pid: i32) -> Receiver<ExitStatus> {
        let (tx, rx) = channel();
        self.registry.insert(pid, tx);
        rx
    }
}

impl Reaper {
    pub fn start() -> Self {
        let reaper = Reaper {
            registry: Arc::new(Mutex::new(HashMap::new())),
        };
        let r = reaper.clone();
        std::thread::spawn(move || r.run());
        reaper
    }

    /// Locks out reaping of unknown children while a process is being spawned.
    pub fn spawning(&self) -> SpawnGuard<'_> {
        SpawnGuard {
            registry: self.registry.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    fn run(&self) {
        loop {
            let Some(pid) = peek_exited_child() else {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
            let mut raw = 0;
            // SAFETY: `raw` is a valid out-pointer; WNOHANG never blocks while holding the lock.
            let reaped = unsafe { libc::waitpid(pid, &mut raw, libc::WNOHANG) };
            if reaped != pid {
                continue; // already reaped by std after a failed exec
            }
            if let Some(tx) = registry.remove(&pid) {
                let _ = tx.send(decode_status(raw));
            }
        }
    }
}

/// Blocks until some child has exited and returns its pid without reaping it.
fn peek_exited_child() -> Option<i32> {
    // SAFETY: siginfo_t is plain data; zeroed is a valid initial value for waitid to fill.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid out-pointer for the duration of the call.
    let rc = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOWAIT) };
    if rc != 0 {
        return None;
    }
    // SAFETY: waitid succeeded with WEXITED, so si_pid is the field it filled.
    let pid = unsafe { info.si_pid() };
    (pid > 0).then_some(pid)
}

fn decode_status(raw: i32) -> ExitStatus {
    if libc::WIFEXITED(raw) {
        ExitStatus {
            code: Some(libc::WEXITSTATUS(raw)),
            signal: None,
        }
    } else if libc::WIFSIGNALED(raw) {
        ExitStatus {
            code: None,
            signal: Some(libc::WTERMSIG(raw)),
        }
    } else {
        ExitStatus {
            code: None,
            signal: None,
        }
    }
}
