//! `berth run`: a task with N attempts, each in its own VM, each result pulled back as a
//! branch `berth/<task>/<n>` of the user's repo.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Result, bail};
use berth_core::host::agent::ExecIo;
use berth_core::host::qemu::Qemu;
use berth_core::{NewTask, check_memory, prepare_task, pull_attempt, run_attempt};

use super::demo;
use crate::context::{Context, host_memory_mib, now_ms};

#[derive(clap::Args)]
pub struct Args {
    /// The git repository to work on (default: the one the current directory is in).
    #[arg(long, value_name = "PATH")]
    repo: Option<PathBuf>,
    #[command(flatten)]
    task: super::task_args::TaskArgs,
    /// Run the bundled demo: a small repo with a failing test and a scripted agent that
    /// fixes it. Needs no API key.
    #[arg(long, conflicts_with = "repo")]
    demo: bool,
    /// Machine-readable summary at the end: per attempt its exit code, branch, counts and
    /// error (the attempts' own output still streams to the terminal).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    vm: super::supervise::VmArgs,
    #[command(flatten)]
    limits: super::pull::LimitArgs,
    #[command(flatten)]
    net: super::net::NetArgs,
    /// The command each attempt runs in /work (default with --demo: the demo agent).
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    ctx.reconcile();
    // What the machine cannot give is refused before anything is made.
    args.vm.check_cpus()?;
    let store = ctx.store();
    let (repo, command, title, secrets, planned) = if args.demo {
        let repo = demo::ensure_demo_repo(&ctx.data.root().join("demo"))?;
        let command = if args.command.is_empty() {
            vec!["bash".into(), ".berth/demo-agent.sh".into()]
        } else {
            args.command.clone()
        };
        (
            repo,
            command,
            args.task
                .title
                .clone()
                .unwrap_or("Fix the failing test".into()),
            args.task.secret_uses()?,
            None,
        )
    } else {
        let repo = args.repo.clone().unwrap_or_else(|| PathBuf::from("."));
        // A folder inside a repo means that repo, as for `berth repo add` and git itself.
        let repo = berth_core::repo_root(&repo)?;
        let planned = args.task.plan(&store, &repo, &args.command)?;
        if planned.command.is_empty() {
            bail!("say what each attempt runs after `--`, e.g. berth run --repo . -- ./agent.sh");
        }
        let title = planned
            .title
            .clone()
            .unwrap_or_else(|| default_title(&planned.command));
        let (command, secrets) = (planned.command.clone(), planned.secrets.clone());
        (repo, command, title, secrets, Some(planned))
    };
    if interactive_shell(&command) {
        eprintln!(
            "berth: note: `berth run` gives its command no terminal, so an interactive shell \
             exits at once; for one, use `berth task new -- bash` and `berth attach`, or \
             `berth exec -it ATTEMPT -- bash` beside a running attempt"
        );
    }
    let mut policy = args.net.policy(&store, Some(&repo))?;
    if let Some(p) = &planned {
        policy = p.policy(policy)?;
    }
    // What the attempts may reach, from the flags and the trusted berth.toml.
    eprintln!("berth: {}", berth_core::describe_policy(&policy));
    // Questions about unlisted names are asked on this terminal; without one nobody could
    // answer them, so they are denied at once.
    let ask = std::io::IsTerminal::is_terminal(&std::io::stdin());
    if !ask && policy.mode == berth_core::Mode::Allowlist {
        eprintln!(
            "berth: note: no terminal to ask on, so names not on the allowlist are denied at \
             once (add --allow NAME, or use `berth task new` and answer in `berth attach`)"
        );
    }
    let image = ctx.image()?;
    let memory = args.task.memory(
        planned.as_ref().and_then(|p| p.agent.as_ref()),
        berth_core::env_memory(&store, &repo)?,
    );
    check_memory(
        &store,
        memory as u64 * args.task.attempts as u64,
        host_memory_mib(),
        args.vm.max_memory_share,
    )?;
    let prepared = prepare_task(
        &store,
        &NewTask {
            repo: &repo,
            base_ref: &args.task.base,
            attempts: args.task.attempts,
            title: &title,
            command: &command,
            include_uncommitted: args.task.include_uncommitted,
            memory_mib: memory,
            policy,
            with_env: true,
            secrets,
            agent: planned.and_then(|p| p.agent),
            cpus: args.vm.cpus(),
            history: args.task.history(&store)?,
            limits: args.task.limit_flags(),
        },
        now_ms,
    )?;
    let task = &prepared.task;
    eprintln!(
        "berth: task {} \"{}\": {} attempt(s) on {} at {} ({})",
        task.id,
        berth_core::table_cell(&task.title, 80),
        task.attempts,
        repo.display(),
        args.task.base,
        &task.base[..12.min(task.base.len())]
    );
    if prepared.has_submodules {
        eprintln!(
            "berth: note: the repo has submodules (.gitmodules); attempts do not get them: \
             their folders are empty in the guest"
        );
    }
    if prepared.left_out_uncommitted {
        eprintln!(
            "berth: note: the repo has uncommitted changes; the attempts start from {} without \
             them (pass --include-uncommitted to include them)",
            args.task.base
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let mut settings = ctx.vm_settings(memory, &args.vm)?;
    settings.image = image;
    let hv = Qemu::new(ctx.qemu_config()?);
    let many = prepared.attempts.len() > 1;
    let console = Arc::new(Mutex::new(()));
    // A pooled VM of the attempts' shape takes an attempt at once (no boot); the rest boot
    // here. Handed over one after another, before any boots.
    let pooled: Vec<Option<u32>> = prepared
        .attempts
        .iter()
        .map(|rec| {
            match berth_core::hand_over_foreground(&ctx.exe, &store, rec.id, args.vm.cpus(), now_ms)
            {
                Ok(Some(slot)) => {
                    eprintln!(
                        "berth: attempt {} starts on a waiting VM (the pool)",
                        rec.id
                    );
                    Some(slot)
                }
                Ok(None) => None,
                Err(e) => {
                    eprintln!(
                        "berth: attempt {}: no pooled VM ({}); booting one",
                        rec.id,
                        berth_core::escape_controls(&e.to_string())
                    );
                    None
                }
            }
        })
        .collect();
    #[allow(clippy::type_complexity)]
    let outcomes: Vec<(berth_core::AttemptRecord, Result<Option<i32>, String>)> =
        std::thread::scope(|s| {
            let handles: Vec<_> = prepared
                .attempts
                .iter()
                .cloned()
                .zip(pooled)
                .map(|(rec, pooled)| {
                    let (store, hv, settings) = (&store, &hv, &settings);
                    let mut io = PrefixIo::new(
                        many.then(|| format!("[{}] ", rec.id)),
                        stop.clone(),
                        console.clone(),
                    );
                    let request = store.stop_request(rec.id);
                    let _ = std::fs::remove_file(&request);
                    io.stop_request = Some(request);
                    if let Some(slot) = pooled {
                        // Its slot keeps its log; this process shows it.
                        let console = console.clone();
                        return s.spawn(move || {
                            let r = super::run_pooled::follow(
                                store, rec.id, slot, &mut io, ask, console,
                            );
                            io.finish();
                            (rec, r)
                        });
                    }
                    // Kept like a supervised attempt's, for `berth logs` and the app.
                    io.log = berth_core::open_output_log(&store.output_log(rec.id)).ok();
                    let approver = ask.then(|| {
                        super::run_ask::terminal_approver(store.clone(), rec.id, console.clone())
                    });
                    s.spawn(move || {
                        let r = run_attempt(store, hv, settings, rec.id, now_ms, approver, &mut io)
                            .map(|st| st.map(|s| s.shell_code()))
                            .map_err(|e| e.to_string());
                        io.finish();
                        (rec, r)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("attempt thread"))
                .collect()
        });

    if stop.load(Ordering::SeqCst) {
        eprintln!("berth: interrupted; the attempts were stopped and their workspaces kept:");
        for (rec, _) in &outcomes {
            eprintln!(
                "  berth pull {}   # bring attempt {} back as a branch anyway",
                rec.id, rec.id
            );
        }
        return Ok(ExitCode::from(130));
    }

    let limits = args.limits.limits();
    let mut rows = Vec::new();
    let mut all_ok = true;
    let mut refused = false;
    for (rec, outcome) in &outcomes {
        let exit = match outcome {
            Ok(Some(code)) => code.to_string(),
            Ok(None) => {
                // Stopped by a limit (the reason is on the attempt) or from outside.
                if let Some(why) = store
                    .db()
                    .ok()
                    .and_then(|db| db.attempt(rec.id).ok())
                    .and_then(|a| a.error)
                {
                    eprintln!(
                        "berth: attempt {} {}",
                        rec.id,
                        berth_core::escape_controls(&why)
                    );
                }
                "stopped".into()
            }
            Err(e) => {
                eprintln!("{}", failure_line(rec.id, e));
                "error".into()
            }
        };
        all_ok &= matches!(outcome, Ok(Some(0)));
        // A failed command that changed files still yields a branch: the user decides.
        let (branch, files, lines) =
            match pull_attempt(&store, rec.id, None, false, &limits, now_ms) {
                Ok(p) => {
                    for w in &p.warnings {
                        eprintln!("berth: attempt {}: {w}", rec.id);
                    }
                    match p.imported {
                        Some(i) => (
                            i.branch,
                            i.files_changed.to_string(),
                            format!("+{}/-{}", i.insertions, i.deletions),
                        ),
                        None => ("(no changes)".into(), "0".into(), "".into()),
                    }
                }
                Err(e) => {
                    // A refused result is a failure: recorded on the attempt (`ls`, the app)
                    // and in berth run's exit status.
                    all_ok = false;
                    refused = true;
                    eprintln!("berth: attempt {} was not pulled: {e}", rec.id);
                    let why = format!("its result was refused: {e}");
                    let _ = store
                        .db()
                        .and_then(|mut db| db.update_attempt(rec.id, |a| a.error = Some(why)));
                    ("(refused)".into(), "-".into(), "".into())
                }
            };
        rows.push((rec.id.to_string(), exit, branch, files, lines));
    }
    if args.json {
        // The same summary for programs: one record per attempt, as `ls --json` has it.
        let db = store.db()?;
        let list: Vec<serde_json::Value> = outcomes
            .iter()
            .map(|(rec, outcome)| {
                let a = db.attempt(rec.id).ok();
                serde_json::json!({
                    "id": rec.id,
                    "task": rec.id.task,
                    "exit_code": outcome.as_ref().ok().copied().flatten(),
                    "state": a.as_ref().map(|a| a.state),
                    "branch": a.as_ref().and_then(|a| a.branch.clone()),
                    "files_changed": a.as_ref().and_then(|a| a.files_changed),
                    "insertions": a.as_ref().and_then(|a| a.insertions),
                    "deletions": a.as_ref().and_then(|a| a.deletions),
                    "error": a.as_ref().and_then(|a| a.error.clone())
                        .or_else(|| outcome.as_ref().err().cloned()),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        println!(
            "{:<8} {:<7} {:<20} {:>5}  LINES",
            "ATTEMPT", "EXIT", "BRANCH", "FILES"
        );
        for (id, exit, branch, files, lines) in &rows {
            println!("{id:<8} {exit:<7} {branch:<20} {files:>5}  {lines}");
        }
        // How to look at and merge each result, not only the first.
        let branches: Vec<&String> = rows
            .iter()
            .map(|r| &r.2)
            .filter(|b| b.starts_with("berth/"))
            .collect();
        if let Some(first) = branches.first() {
            println!();
            let base = &task.base[..12.min(task.base.len())];
            for branch in &branches {
                println!(
                    "Look at it:  git -C {} log -p {base}..{branch}",
                    repo.display()
                );
            }
            if branches.len() > 1 {
                println!("Compare:     berth compare {}", task.id);
                println!(
                    "Keep one:    berth choose ATTEMPT --merge   (e.g. {}; or git -C {} merge {first})",
                    first.trim_start_matches("berth/").replacen('/', ".", 1),
                    repo.display()
                );
            } else {
                println!("Merge it:    git -C {} merge {first}", repo.display());
            }
        }
    }
    if !many {
        if refused {
            return Ok(ExitCode::from(crate::BERTH_FAILURE));
        }
        if let Some((_, Ok(Some(code)))) = outcomes.first() {
            return Ok(ExitCode::from((*code).clamp(0, 255) as u8));
        }
        return Ok(ExitCode::from(crate::BERTH_FAILURE));
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A shell started for people (`bash`, `bash -l`, `zsh -i`), not to run a script.
fn interactive_shell(command: &[String]) -> bool {
    let Some(first) = command.first() else {
        return false;
    };
    let name = std::path::Path::new(first)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    ["sh", "bash", "zsh", "fish", "dash", "ksh"].contains(&name.as_str())
        && command[1..]
            .iter()
            .all(|a| a.starts_with('-') && (a.starts_with("--") || !a.contains('c')))
}

/// The command as a title (whole, like an explicit one: listings shorten it for display,
/// `--json` and the app get all of it), capped at 1,000 characters.
pub fn default_title(command: &[String]) -> String {
    let joined = command.join(" ");
    let mut title: String = joined.chars().take(1000).collect();
    if title.len() < joined.len() {
        title.push('…');
    }
    title
}

/// Streams an attempt's output to the terminal, each line prefixed with the attempt id when
/// several attempts share the terminal, and into the attempt's output log.
struct PrefixIo {
    prefix: Option<String>,
    /// The attempt's `output.log`, written as a terminal would show it (CR LF line ends:
    /// `berth run` has no PTY to add the CR).
    log: Option<berth_core::host::logfile::RotatingLog>,
    stop: Arc<AtomicBool>,
    /// `berth stop` of this attempt alone (see `Store::stop_request`), and when it was last
    /// looked for.
    stop_request: Option<std::path::PathBuf>,
    checked: std::time::Instant,
    console: Arc<Mutex<()>>,
    out: Vec<u8>,
    err: Vec<u8>,
}

impl PrefixIo {
    fn new(prefix: Option<String>, stop: Arc<AtomicBool>, console: Arc<Mutex<()>>) -> Self {
        Self {
            prefix,
            log: None,
            stop,
            stop_request: None,
            checked: std::time::Instant::now(),
            console,
            out: Vec::new(),
            err: Vec::new(),
        }
    }

    fn emit(&mut self, is_err: bool, data: &[u8], flush_partial: bool) {
        let _lock = self.console.lock().unwrap_or_else(|e| e.into_inner());
        let Some(prefix) = &self.prefix else {
            if is_err {
                let _ = std::io::stderr().write_all(data);
            } else {
                let mut o = std::io::stdout().lock();
                let _ = o.write_all(data).and_then(|_| o.flush());
            }
            return;
        };
        let buf = if is_err { &mut self.err } else { &mut self.out };
        buf.extend_from_slice(data);
        let mut text = Vec::new();
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            text.extend_from_slice(prefix.as_bytes());
            text.extend(buf.drain(..=nl));
        }
        if flush_partial && !buf.is_empty() {
            text.extend_from_slice(prefix.as_bytes());
            text.append(buf);
            text.push(b'\n');
        }
        if is_err {
            let _ = std::io::stderr().write_all(&text);
        } else {
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(&text).and_then(|_| o.flush());
        }
    }

    fn log(&mut self, data: &[u8]) {
        if let Some(f) = &mut self.log {
            let mut text = Vec::with_capacity(data.len() + 16);
            for &b in data {
                if b == b'\n' {
                    text.push(b'\r');
                }
                text.push(b);
            }
            let _ = f.write_all(&text);
        }
    }

    fn finish(&mut self) {
        self.emit(false, &[], true);
        self.emit(true, &[], true);
    }
}

impl ExecIo for PrefixIo {
    fn stdout(&mut self, data: &[u8]) {
        self.log(data);
        self.emit(false, data, false);
    }
    fn stderr(&mut self, data: &[u8]) {
        self.log(data);
        self.emit(true, data, false);
    }
    fn error(&mut self, message: &str) {
        let words = berth_core::escape_controls(message);
        self.emit(true, format!("[guest agent: {words}]\n").as_bytes(), false);
    }
    fn interrupted(&mut self) -> bool {
        if self.stop.load(Ordering::SeqCst) {
            return true;
        }
        if self.checked.elapsed() >= std::time::Duration::from_millis(200) {
            self.checked = std::time::Instant::now();
            if self.stop_request.as_ref().is_some_and(|p| p.exists()) {
                return true;
            }
        }
        false
    }
}

/// How an attempt's failure is said on the terminal, cold or pooled alike: its words may
/// quote the guest (an agent's error, the recorded error of a pooled attempt), so escape
/// sequences in them are shown, never sent to the terminal.
fn failure_line(id: berth_core::AttemptId, error: &str) -> String {
    format!(
        "berth: attempt {id} failed: {}",
        berth_core::escape_controls(error)
    )
}

#[cfg(test)]
mod tests {
    use super::interactive_shell;

    #[test]
    fn a_failure_quoting_the_guest_cannot_drive_the_terminal() {
        let id = berth_core::AttemptId { task: 1, n: 2 };
        let line = super::failure_line(id, "agent: \x1b]0;pwned\x07\x1b[2Jgone\r");
        assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
        assert!(
            line.starts_with("berth: attempt 1.2 failed: agent: \\x1b]0;pwned"),
            "{line}"
        );
    }

    #[test]
    fn an_interactive_shell_is_told_apart_from_a_script() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(interactive_shell(&v(&["bash", "-l"])));
        assert!(interactive_shell(&v(&["/bin/zsh"])));
        assert!(!interactive_shell(&v(&["bash", "-lc", "make"])));
        assert!(!interactive_shell(&v(&["sh", "-c", "true"])));
        assert!(!interactive_shell(&v(&["bash", "script.sh"])));
        assert!(!interactive_shell(&v(&["make", "-j"])));
    }
}
