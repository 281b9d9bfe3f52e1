//! Starting one command and streaming it back to the host.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Sender as ChanSender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_proto::{ExecRequest, ExitStatus, MAX_CHUNK, Message};

use crate::reaper::Reaper;
use crate::session::{Sender, Table};
use crate::{pty, users};

const DEFAULT_USER: &str = "agent";
const DEFAULT_CWD: &str = "/work";
const GUEST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How long output may trail the process's exit (e.g. a background child holding a pipe).
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// A command the host can still talk to.
pub struct Running {
    pid: i32,
    stdin: Mutex<ChanSender<Option<Vec<u8>>>>,
    pub pty_master: Option<File>,
}

impl Running {
    pub fn write_stdin(&self, data: Option<Vec<u8>>) {
        let tx = self.stdin.lock().unwrap_or_else(|e| e.into_inner());
        let _ = tx.send(data);
    }

    /// Signals the command's whole process group (it is a session leader).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill takes plain integers; a stale pid only yields ESRCH.
        unsafe {
            libc::kill(-self.pid, signal);
        }
    }
}

pub fn start(id: u32, req: ExecRequest, sender: &Sender, reaper: &Reaper, table: &Table) {
    if let Err(message) = try_start(id, req, sender, reaper, table) {
        sender.send(&Message::Error { id, message });
        sender.send(&Message::Exited {
            id,
            status: ExitStatus {
                code: Some(127),
                signal: None,
            },
        });
    }
}

fn try_start(
    id: u32,
    req: ExecRequest,
    sender: &Sender,
    reaper: &Reaper,
    table: &Table,
) -> Result<(), String> {
    let Some(program) = req.argv.first() else {
        return Err("empty command".into());
    };
    let account = users::lookup(req.user.as_deref().unwrap_or(DEFAULT_USER))?;
    let cwd = req.cwd.clone().unwrap_or_else(|| DEFAULT_CWD.into());
    let mut cmd = Command::new(program);
    cmd.args(&req.argv[1..])
        .env_clear()
        .env("PATH", GUEST_PATH)
        .env("HOME", &account.home)
        .env("USER", &account.name)
        .env("LOGNAME", &account.name)
        .env("SHELL", &account.shell)
        .env("LANG", "C.UTF-8")
        .env(
            "TERM",
            if req.pty.is_some() {
                "xterm-256color"
            } else {
                "dumb"
            },
        )
        .envs(req.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&cwd)
        .uid(account.uid)
        .gid(account.gid);

    let pty = match req.pty {
        Some(size) => Some(pty::open(size).map_err(|e| format!("cannot open a pty: {e}"))?),
        None => None,
    };
    if let Some(p) = &pty {
        let clone = |f: &File| f.try_clone().map_err(|e| format!("pty: {e}"));
        cmd.stdin(clone(&p.slave)?)
            .stdout(clone(&p.slave)?)
            .stderr(clone(&p.slave)?);
        // SAFETY: only async-signal-safe calls (setsid, ioctl) between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                libc::ioctl(0, libc::TIOCSCTTY, 0);
                Ok(())
            });
        }
    } else {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
    }

    let guard = reaper.spawning();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {program:?} in {cwd}: {e}"))?;
    let pid = child.id() as i32;
    let exit_rx = guard.register(pid);
    drop(cmd); // closes our copies of the pty slave
    sender.send(&Message::Started {
        id,
        pid: pid as u32,
    });

    let finished = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = channel::<()>();
    let (stdin_tx, stdin_rx) = channel::<Option<Vec<u8>>>();
    let mut outputs = 0;
    let pty_master;
    let stdin_sink: Box<dyn Write + Send> = if let Some(p) = pty {
        let master = p.master;
        let reader = master.try_clone().map_err(|e| format!("pty: {e}"))?;
        spawn_output(reader, id, false, sender, &finished, &done_tx);
        outputs += 1;
        pty_master = Some(master.try_clone().map_err(|e| format!("pty: {e}"))?);
        Box::new(master)
    } else {
        pty_master = None;
        if let Some(out) = child.stdout.take() {
            spawn_output(out, id, false, sender, &finished, &done_tx);
            outputs += 1;
        }
        if let Some(err) = child.stderr.take() {
            spawn_output(err, id, true, sender, &finished, &done_tx);
            outputs += 1;
        }
        match child.stdin.take() {
            Some(s) => Box::new(s),
            None => Box::new(std::io::sink()),
        }
    };
    drop(done_tx);
    std::thread::spawn(move || pump_stdin(stdin_rx, stdin_sink));

    table.lock().unwrap_or_else(|e| e.into_inner()).insert(
        id,
        Running {
            pid,
            stdin: Mutex::new(stdin_tx),
            pty_master,
        },
    );

    let sender = sender.clone();
    let table = table.clone();
    std::thread::spawn(move || {
        let status = exit_rx.recv().unwrap_or(ExitStatus {
            code: None,
            signal: None,
        });
        // Let the output catch up, but do not wait forever for a pipe a daemon holds open.
        let deadline = std::time::Instant::now() + OUTPUT_GRACE;
        for _ in 0..outputs {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if done_rx.recv_timeout(left).is_err() {
                break;
            }
        }
        finished.store(true, Ordering::SeqCst);
        table.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        sender.send(&Message::Exited { id, status });
    });
    Ok(())
}

fn spawn_output(
    mut src: impl Read + Send + 'static,
    id: u32,
    is_stderr: bool,
    sender: &Sender,
    finished: &Arc<AtomicBool>,
    done: &ChanSender<()>,
) {
    let sender = sender.clone();
    let finished = finished.clone();
    let done = done.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; MAX_CHUNK];
        loop {
            // A pty master returns EIO once the last slave closes: that is its EOF.
            let n = match src.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if finished.load(Ordering::SeqCst) {
                break;
            }
            let data = buf[..n].to_vec();
            sender.send(&if is_stderr {
                Message::Stderr { id, data }
            } else {
                Message::Stdout { id, data }
            });
        }
        let _ = done.send(());
    });
}

fn pump_stdin(rx: std::sync::mpsc::Receiver<Option<Vec<u8>>>, mut sink: Box<dyn Write + Send>) {
    while let Ok(Some(data)) = rx.recv() {
        if sink.write_all(&data).and_then(|_| sink.flush()).is_err() {
            break;
        }
    }
}
