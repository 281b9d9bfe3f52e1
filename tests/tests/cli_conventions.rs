//! The CLI the way people who live in git, Docker and Lima expect it: a closed output pipe
//! ends it quietly, unknown ids are errors everywhere, a command on an attempt that is not
//! running says what it is (never a socket path), `attach` returns the attempt's exit code,
//! and a terminal editor runs in the foreground on the user's terminal.

use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Output, Stdio};

use berth_tests::{TestEnv, simple_repo};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_closed_output_pipe_ends_a_listing_quietly() {
    let env = TestEnv::new();
    for args in [
        &["ls"][..],
        &["agent", "ls"],
        &["secret", "ls"],
        &["env", "ls"],
    ] {
        // A pipe whose reading end is closed before berth writes: its first write is EPIPE.
        let mut fds = [0; 2];
        // SAFETY: pipe() fills two new descriptors we own from here on.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: each descriptor is owned once.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        drop(read);
        let out = env
            .berth()
            .args(args)
            .stdout(Stdio::from(write))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
    }
}

/// What can never work is refused before anything is made, saying what does: an address
/// the proxy never reaches, a repo with no commits; a folder inside a repo means that repo.
#[test]
fn mistakes_are_refused_before_anything_is_made_with_what_works_instead() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    for allow in ["127.0.0.1", "127.1:8080", "[::1]", "192.168.1.10:22"] {
        let out = env
            .berth()
            .args(["run", "--repo"])
            .arg(&repo)
            .args(["--allow", allow, "--", "true"])
            .output()
            .unwrap();
        let shown = text(&out);
        assert!(!out.status.success(), "{allow}: {shown}");
        assert!(shown.contains("--resolve NAME="), "{allow}: {shown}");
    }
    let empty = env.home.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    berth_tests::git(&empty, &["init", "-q"]);
    let out = env
        .berth()
        .args(["run", "--repo"])
        .arg(&empty)
        .args(["--", "true"])
        .output()
        .unwrap();
    let shown = text(&out);
    assert!(shown.contains("has no commits yet"), "{shown}");
    assert!(!shown.contains("--base"), "{shown}");
    let out = env
        .berth()
        .args(["run", "--repo"])
        .arg(env.home.path())
        .args(["--", "true"])
        .output()
        .unwrap();
    let shown = text(&out);
    assert!(shown.contains("is not a git repository"), "{shown}");
    assert!(
        !shown.contains("class=") && !shown.contains("code="),
        "{shown}"
    );
    assert_eq!(shown.matches("not a git repository").count(), 1, "{shown}");
    // Nothing of the failed runs stays: no task, no attempt directory, no added repo.
    let ls = env.berth().args(["ls", "--json"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&ls.stdout).trim(), "[]");
    let repos = env.berth().args(["repo", "ls"]).output().unwrap();
    assert!(String::from_utf8_lossy(&repos.stdout).contains("no repos yet"));
    assert!(
        std::fs::read_dir(env.data_dir().join("attempts"))
            .map(|d| d.count() == 0)
            .unwrap_or(true),
        "attempt directories were left"
    );
}

/// Values a machine cannot honour are refused at once, naming the flag.
#[test]
fn impossible_values_are_refused_naming_the_flag() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    let cpus = std::thread::available_parallelism().unwrap().get() + 1;
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--boot-timeout".into(), "0".into()], "--boot-timeout"),
        (
            vec!["--max-memory-share".into(), "5".into()],
            "--max-memory-share",
        ),
        (vec!["--cpus".into(), cpus.to_string()], "--cpus"),
    ];
    for (flags, named) in cases {
        for verb in [&["run", "--repo"][..], &["task", "new", "--repo"]] {
            let out = env
                .berth()
                .args(verb)
                .arg(&repo)
                .args(&flags)
                .args(["--", "true"])
                .output()
                .unwrap();
            let shown = text(&out);
            assert!(!out.status.success(), "{flags:?}: {shown}");
            assert!(shown.contains(named), "{flags:?}: {shown}");
        }
    }
    let out = env
        .berth()
        .args(["vm", "run", "--memory", "65536", "--", "true"])
        .output()
        .unwrap();
    assert!(
        !out.status.success() && text(&out).contains("MiB"),
        "{}",
        text(&out)
    );
    let ls = env.berth().args(["ls", "--json"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&ls.stdout).trim(), "[]");
}

/// `--accel kvm` where Berth would not pick KVM (this CI host: nested, no vmx/svm) warns
/// before anything boots.
#[test]
fn forcing_a_slow_kvm_warns_first() {
    let env = TestEnv::new();
    let doctor = env.berth().args(["doctor", "--json"]).output().unwrap();
    let doctor: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let accel = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "accelerator")
        .map(|c| c["detail"].to_string())
        .unwrap_or_default();
    let out = env
        .berth()
        .args(["agent", "install", "no-such-agent", "--accel", "kvm"])
        .output()
        .unwrap();
    let shown = text(&out);
    if accel.starts_with("\"tcg") {
        assert!(shown.contains("warning: --accel kvm"), "{accel}: {shown}");
    } else {
        assert!(!shown.contains("warning: --accel kvm"), "{accel}: {shown}");
    }
    assert!(shown.contains("no agent preset 'no-such-agent'"), "{shown}");
}

#[test]
fn unknown_ids_are_errors_everywhere() {
    let env = TestEnv::new();
    for args in [
        &["audit", "999.1", "--verify"][..],
        &["audit", "999.1"],
        &["attach", "999.1"],
        &["exec", "999.1", "--", "true"],
        &["open", "999.1"],
        &["logs", "999.1"],
        &["diff", "999.1"],
        &["pull", "999.1"],
        &["stop", "999.1"],
        &["start", "999.1"],
        &["rm", "999.1"],
    ] {
        let out = env
            .berth()
            .args(args)
            .env("VISUAL", "vim")
            .output()
            .unwrap();
        let shown = text(&out);
        assert!(!out.status.success(), "{args:?}: {shown}");
        assert!(shown.contains("no attempt 999.1"), "{args:?}: {shown}");
        assert!(
            !shown.contains("os error") && !shown.contains(".sock"),
            "{args:?}: {shown}"
        );
    }
}

/// One real attempt that changes a file and exits 3, then: attach and exec say what it is;
/// attach of a running one returns its exit code; a terminal editor runs on the terminal.
#[test]
fn commands_on_an_ended_attempt_say_what_it_is_and_terminal_editors_get_the_terminal() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    let run = env
        .berth()
        .current_dir(&repo)
        .args([
            "run",
            "--repo",
            ".",
            "--",
            "sh",
            "-c",
            "echo x > f.txt; exit 3",
        ])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(3), "{}", text(&run));
    for args in [&["attach", "1.1"][..], &["exec", "1.1", "--", "true"]] {
        let out = env.berth().args(args).output().unwrap();
        let shown = text(&out);
        assert!(!out.status.success(), "{args:?}: {shown}");
        assert!(
            shown.contains("1.1 exited (3); see `berth logs 1.1`"),
            "{args:?}: {shown}"
        );
        assert!(
            !shown.contains("os error") && !shown.contains(".sock"),
            "{shown}"
        );
    }

    // exec in a running attempt gets the attempt's environment (its proxy, its prompt) and
    // the user's stdin; attach returns the attempt's exit code when it ends.
    let task = env
        .berth()
        .current_dir(&repo)
        .args(["task", "new", "--repo", ".", "--network", "allowlist"])
        .args(["--allow", "example.test", "--title", "the prompt", "--"])
        .args(["sh", "-c", "sleep 25; exit 5"])
        .output()
        .unwrap();
    assert!(task.status.success(), "{}", text(&task));
    let mut seen = String::new();
    for _ in 0..240 {
        let out = env
            .berth()
            .args([
                "exec",
                "2.1",
                "--",
                "sh",
                "-c",
                "echo \"env:$http_proxy|$BERTH_PROMPT\"",
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        seen = text(&out);
        if out.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert!(
        seen.contains("env:http://") && seen.contains("|the prompt"),
        "{seen}"
    );
    let mut cat = env
        .berth()
        .args(["exec", "2.1", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    cat.stdin.take().unwrap().write_all(b"piped-in\n").unwrap();
    let out = cat.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped-in\n");
    let mut attached = None;
    for _ in 0..240 {
        let out = env
            .berth()
            .args(["attach", "2.1"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if !text(&out).contains("booting") {
            attached = Some(out);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let attached = attached.expect("attach never got through");
    assert_eq!(attached.status.code(), Some(5), "{}", text(&attached));

    // A terminal editor with no terminal is refused, saying why; on a terminal (`script`
    // gives it one) it runs in the foreground and Berth waits for it.
    let bin = env.home.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = env.home.path().join("vim.log");
    let vim = bin.join("vim");
    std::fs::write(
        &vim,
        format!(
            "#!/bin/sh\nif [ -t 0 ] && [ -t 1 ]; then t=tty; else t=notty; fi\necho \"$t $1\" > {}\n",
            log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&vim, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = env
        .berth()
        .args(["open", "1.1"])
        .env("VISUAL", "vim")
        .env("PATH", &path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("runs in a terminal"), "{}", text(&out));
    assert!(!log.exists(), "vim ran with no terminal");
    let berth = env.berth();
    let mut line: Vec<String> = vec![berth.get_program().to_string_lossy().into_owned()];
    line.extend(berth.get_args().map(|a| a.to_string_lossy().into_owned()));
    line.extend(["open".into(), "1.1".into()]);
    let out = std::process::Command::new("script")
        .args(["-qec", &line.join(" "), "/dev/null"])
        .envs(berth.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .env("VISUAL", "vim")
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let ran = std::fs::read_to_string(&log).expect("vim ran");
    assert!(ran.starts_with("tty "), "vim got no terminal: {ran}");
    assert!(ran.contains("berth-1-1"), "{ran}");
    assert!(text(&out).contains("edited"), "{}", text(&out));
    assert!(berth_tests::git(&repo, &["worktree", "list"]).contains("berth-1-1"));

    // Removing the attempt removes its clean checkout too: the branch can be deleted.
    let rm = env.berth().args(["rm", "1.1"]).output().unwrap();
    assert!(rm.status.success(), "{}", text(&rm));
    assert!(!berth_tests::git(&repo, &["worktree", "list"]).contains("berth-1-1"));
    berth_tests::git(&repo, &["branch", "-D", "berth/1/1"]);
}

/// A result the pull refuses (a file over the size cap) is a failure: `berth run` exits
/// non-zero and `ls` records why. A result pulled twice is "already up to date".
#[test]
fn a_refused_result_is_a_failure_and_a_second_pull_is_up_to_date() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    // A submodule the attempts will not get: said at start.
    berth_tests::commit_file(
        &repo,
        ".gitmodules",
        "[submodule \"lib\"]\n\tpath = lib\n\turl = ../lib\n",
        "submodule",
    );
    let run = env
        .berth()
        .current_dir(&repo)
        .args(["run", "--repo", ".", "--max-file-size", "1000", "--"])
        .args([
            "sh",
            "-c",
            "head -c 5000 /dev/zero > big.bin; echo ok > small.txt; echo line-1; echo line-2",
        ])
        .output()
        .unwrap();
    let shown = text(&run);
    assert_eq!(run.status.code(), Some(125), "{shown}");
    assert!(shown.contains("(refused)"), "{shown}");
    assert!(shown.contains("submodules"), "{shown}");
    let ls = env.berth().args(["ls", "--json"]).output().unwrap();
    let ls: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    let error = ls[0]["error"].as_str().unwrap_or("");
    assert!(error.contains("refused"), "{ls}");
    // `ls` shows the repo and the error, and filters by state, task and repo.
    let human = text(&env.berth().args(["ls"]).output().unwrap());
    assert!(human.contains("REPO") && human.contains("ERROR"), "{human}");
    assert!(human.contains("its result was refused"), "{human}");
    let by = |args: &[&str]| text(&env.berth().arg("ls").args(args).output().unwrap());
    assert!(by(&["--state", "exited"]).contains("1.1"));
    assert!(by(&["--state", "live"]).contains("no attempt matches"));
    assert!(
        by(&["--task", "1", "--repo"]).contains("error"),
        "--repo needs a path"
    );
    assert!(by(&["--task", "9"]).contains("no task 9"));
    assert!(by(&["--state", "sleeping"]).contains("one of"));
    let mut here = env.berth();
    here.current_dir(&repo).args(["ls", "--repo", "."]);
    assert!(text(&here.output().unwrap()).contains("1.1"));

    // --json on diff and pull, pull by task, logs --tail.
    let diff = env
        .berth()
        .args(["diff", "1.1", "--json"])
        .output()
        .unwrap();
    let diff: serde_json::Value = serde_json::from_slice(&diff.stdout).unwrap();
    assert_eq!(diff["files_changed"], 2, "{diff}");
    assert!(diff["patch"].as_str().unwrap().contains("small.txt"));
    let tail = text(
        &env.berth()
            .args(["logs", "1.1", "--tail", "1"])
            .output()
            .unwrap(),
    );
    assert_eq!(tail.trim(), "line-2", "{tail}");
    // The default cap takes it (the whole task pulled); pulling it again changes nothing and
    // needs no --force.
    let first = env.berth().args(["pull", "1", "--json"]).output().unwrap();
    assert!(first.status.success(), "{}", text(&first));
    let first: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(first[0]["branch"], "berth/1/1", "{first}");
    let head = berth_tests::git(&repo, &["rev-parse", "berth/1/1"]);
    let again = env.berth().args(["pull", "1.1"]).output().unwrap();
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        text(&again).contains("already up to date"),
        "{}",
        text(&again)
    );
    assert_eq!(berth_tests::git(&repo, &["rev-parse", "berth/1/1"]), head);
}

/// `berth start` boots an attempt again with its own CPUs (and memory), not the defaults.
#[test]
fn start_keeps_the_attempts_cpus() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    let run = env
        .berth()
        .current_dir(&repo)
        .args([
            "run",
            "--repo",
            ".",
            "--cpus",
            "2",
            "--",
            "sh",
            "-c",
            "echo cpus=$(nproc)",
        ])
        .output()
        .unwrap();
    assert!(text(&run).contains("cpus=2"), "{}", text(&run));
    let start = env.berth().args(["start", "1.1"]).output().unwrap();
    assert!(start.status.success(), "{}", text(&start));
    let mut logs = String::new();
    for _ in 0..240 {
        let ls = env.berth().args(["ls", "--json"]).output().unwrap();
        let ls: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
        if ls[0]["state"] == "exited" {
            logs = text(&env.berth().args(["logs", "1.1"]).output().unwrap());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert_eq!(logs.matches("cpus=2").count(), 2, "{logs}");

    // The user moves the repo: pull says how to go on, and --repo takes the new place (only
    // a repo that has the task's base).
    let moved = env.home.path().join("moved");
    std::fs::rename(&repo, &moved).unwrap();
    let lost = env.berth().args(["pull", "1.1"]).output().unwrap();
    assert!(text(&lost).contains("--repo NEW_PATH"), "{}", text(&lost));
    let stranger = berth_tests::repo_with(&env.home.path().join("stranger"), "main", "x", "y\n");
    let wrong = env
        .berth()
        .args(["pull", "1.1", "--repo"])
        .arg(&stranger)
        .output()
        .unwrap();
    assert!(
        text(&wrong).contains("not the repo this task was made on"),
        "{}",
        text(&wrong)
    );
    let found = env
        .berth()
        .args(["pull", "1.1", "--repo"])
        .arg(&moved)
        .output()
        .unwrap();
    assert!(found.status.success(), "{}", text(&found));
    let ls = env.berth().args(["ls", "--json"]).output().unwrap();
    let ls: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert_eq!(
        ls[0]["repo"],
        moved.canonicalize().unwrap().display().to_string()
    );
}

/// Shell completions and manual pages come from the CLI's own definitions; `berth help
/// config` documents berth.toml.
#[test]
fn completions_man_pages_and_the_berth_toml_help_are_there() {
    let env = TestEnv::new();
    for (shell, marker) in [
        ("bash", "_berth()"),
        ("zsh", "#compdef berth"),
        ("fish", "complete -c berth"),
    ] {
        let out = env.berth().args(["completions", shell]).output().unwrap();
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && script.contains(marker),
            "{shell}: {script:.200}"
        );
        assert!(
            script.contains("install"),
            "{shell}: the agent verbs are missing"
        );
        // (clap_complete's bash script names hidden commands too; zsh and fish do not.)
        assert!(
            shell == "bash" || !script.contains("__supervise"),
            "{shell}: internal commands leak"
        );
    }
    let dir = env.home.path().join("man");
    let out = env
        .berth()
        .args(["man", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    for page in [
        "berth.1",
        "berth-run.1",
        "berth-agent-install.1",
        "berth-exec.1",
    ] {
        let body = std::fs::read_to_string(dir.join(page)).unwrap_or_default();
        assert!(body.contains(".TH"), "{page}");
    }
    let doctor = env.berth().args(["doctor", "--json"]).output().unwrap();
    let doctor: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    assert!(
        doctor["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["check"] == "accelerator")
    );
    let help = text(&env.berth().args(["help", "config"]).output().unwrap());
    for section in [
        "[network]",
        "[env]",
        "[cache]",
        "[secrets]",
        "[agents.NAME]",
    ] {
        assert!(help.contains(section), "{section}: {help}");
    }
}

/// `berth stop` on an attempt a foreground `berth run` runs: that attempt stops, `berth run`
/// reports it and exits on its own (never killed), and exec/attach explain where it runs.
#[test]
fn stop_reaches_an_attempt_that_berth_run_runs() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    let run = env
        .berth()
        .current_dir(&repo)
        .args([
            "run",
            "--repo",
            ".",
            "--",
            "sh",
            "-c",
            "echo go-$((6*7)); sleep 120",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = false;
    for _ in 0..600 {
        let logs = env.berth().args(["logs", "1.1"]).output().unwrap();
        if String::from_utf8_lossy(&logs.stdout).contains("go-42") {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(ready, "the command never started");
    let exec = env
        .berth()
        .args(["exec", "1.1", "--", "true"])
        .output()
        .unwrap();
    assert!(
        text(&exec).contains("runs under `berth run`"),
        "{}",
        text(&exec)
    );
    let stop = env.berth().args(["stop", "1.1"]).output().unwrap();
    assert!(stop.status.success(), "{}", text(&stop));
    let out = run.wait_with_output().unwrap();
    let shown = text(&out);
    assert_eq!(
        out.status.code(),
        Some(125),
        "berth run was killed: {shown}"
    );
    assert!(shown.contains("stopped"), "{shown}");
    let ls = env.berth().args(["ls", "--json"]).output().unwrap();
    let ls: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert_eq!(ls[0]["state"], "stopped", "{ls}");
}

/// With --include-uncommitted, the user's own edits are the attempt's starting point, not
/// its work: an attempt that changes nothing counts 0 files; its own change counts alone.
#[test]
fn the_users_uncommitted_edits_are_not_counted_as_the_attempts_work() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    std::fs::write(repo.join("a.txt"), "the user's edit\n").unwrap();
    std::fs::write(repo.join("mine.txt"), "also the user's\n").unwrap();
    for cmd in ["true", "echo agent > agent.txt"] {
        let run = env
            .berth()
            .current_dir(&repo)
            .args([
                "run",
                "--json",
                "--include-uncommitted",
                "--",
                "sh",
                "-c",
                cmd,
            ])
            .output()
            .unwrap();
        assert!(run.status.success(), "{}", text(&run));
        // --json: the summary as records.
        let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
        assert_eq!(summary[0]["exit_code"], 0, "{summary}");
        assert!(
            summary[0]["branch"].as_str().unwrap().starts_with("berth/"),
            "{summary}"
        );
    }
    let ls = env.berth().args(["ls", "--json"]).output().unwrap();
    let ls: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    for (i, files) in [(0, 0), (1, 1)] {
        assert_eq!(ls[i]["files_changed"], files, "{ls}");
    }
    let diff = env
        .berth()
        .args(["diff", "2.1", "--json"])
        .output()
        .unwrap();
    let diff: serde_json::Value = serde_json::from_slice(&diff.stdout).unwrap();
    let patch = diff["patch"].as_str().unwrap();
    assert!(
        patch.contains("agent.txt") && !patch.contains("mine.txt"),
        "{patch}"
    );
}

/// Detaching (Ctrl-]) while a guest program holds the alternate screen with the cursor
/// hidden gives the user's terminal back: out of the alternate screen, cursor shown.
#[test]
fn detaching_gives_the_terminal_back() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    let task = env
        .berth()
        .current_dir(&repo)
        .args(["task", "new", "--", "sh", "-c"])
        .arg("printf 'full-screen\\033[?1049h\\033[?25l'; sleep 120")
        .output()
        .unwrap();
    assert!(task.status.success(), "{}", text(&task));
    for _ in 0..600 {
        let logs = env.berth().args(["logs", "1.1"]).output().unwrap();
        if String::from_utf8_lossy(&logs.stdout).contains("full-screen") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let berth = env.berth();
    let mut line: Vec<String> = vec![berth.get_program().to_string_lossy().into_owned()];
    line.extend(berth.get_args().map(|a| a.to_string_lossy().into_owned()));
    line.extend(["attach".into(), "1.1".into()]);
    let mut script = std::process::Command::new("script")
        .args(["-qfec", &line.join(" "), "/dev/null"])
        .envs(berth.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    use std::io::Write;
    let mut stdin = script.stdin.take().unwrap();
    stdin.write_all(&[0x1d]).unwrap();
    stdin.flush().unwrap();
    let out = script.wait_with_output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    let entered = shown
        .rfind("\x1b[?1049h")
        .expect("the guest's screen was replayed");
    let left = shown
        .rfind("\x1b[?1049l")
        .expect("the terminal was not given back");
    assert!(left > entered, "{shown:?}");
    assert!(
        shown[entered..].contains("\x1b[?25h"),
        "cursor left hidden: {shown:?}"
    );
    let _ = env.berth().args(["stop", "1"]).output();
}

/// The guest's repo has the base's recent history (for `git log` and `git blame`), as deep
/// as `--history` or the user's setting says, shallow past that; a commit made on it comes
/// back as usual.
#[test]
fn the_guest_repo_has_history_for_log_and_blame() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    for n in 2..=4 {
        berth_tests::commit_file(&repo, "a.txt", &format!("v{n}\n"), &format!("c{n}"));
    }
    let script = "git log --format=%s | tr '\\n' ' '; echo; \
                  git blame --porcelain a.txt | grep -c '^summary'; \
                  git rev-parse -q --verify HEAD~3 >/dev/null || echo no-HEAD~3; \
                  echo v5 > a.txt && git commit -qam c5 && echo committed";
    let run = env
        .berth()
        .current_dir(&repo)
        .args(["run", "--history", "3", "--", "sh", "-c", script])
        .output()
        .unwrap();
    let shown = text(&run);
    assert_eq!(run.status.code(), Some(0), "{shown}");
    // Log and blame reach back three commits (blame's one line, from c4) and stop there.
    assert!(shown.contains("c4 c3 c2 \n1\nno-HEAD~3\n"), "{shown}");
    assert!(shown.contains("committed"), "{shown}");
    // The attempt's commit sits on the user's history, not on a cut-off copy of it.
    let parent = berth_tests::git(&repo, &["rev-parse", "berth/1/1~1"]);
    assert_eq!(parent, berth_tests::git(&repo, &["rev-parse", "main"]));
    assert_eq!(
        berth_tests::git(&repo, &["rev-list", "--count", "berth/1/1"]).trim(),
        "5"
    );

    // The user's setting is the default; a bad depth is refused before anything is made.
    let set = env
        .berth()
        .args(["config", "history", "1"])
        .output()
        .unwrap();
    assert!(set.status.success(), "{}", text(&set));
    let one = env
        .berth()
        .current_dir(&repo)
        .args(["run", "--", "sh", "-c", "git log --oneline | wc -l"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&one.stdout).starts_with("1\n"),
        "{}",
        text(&one)
    );
    let zero = env
        .berth()
        .current_dir(&repo)
        .args(["run", "--history", "0", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(zero.status.code(), Some(125), "{}", text(&zero));
    assert!(text(&zero).contains("history 0"), "{}", text(&zero));
    let bad = env
        .berth()
        .args(["config", "history", "lots"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(text(&bad).contains("a number of commits"), "{}", text(&bad));
    let ls = env.berth().args(["ls", "--json"]).output().unwrap();
    let ls: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert_eq!(
        ls.as_array().unwrap().len(),
        2,
        "nothing made for --history 0: {ls}"
    );
}

/// Single-quotes `word` for `sh -c`.
/// `berth compare TASK --json`, which must succeed.
fn compare_json(env: &TestEnv, task: u32) -> serde_json::Value {
    let out = env
        .berth()
        .args(["compare", &task.to_string(), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn sh_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// `berth run` on a terminal asks about a name not on the allowlist there, like `attach`
/// does for `task new`: "always" holds for the rest of the task, "deny" refuses; while a
/// question waits, `ls` says so. Without a terminal it is denied at once, and said so.
#[test]
fn berth_run_asks_on_its_terminal_about_unlisted_names() {
    use std::io::{Read as _, Write as _};
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    let svc = berth_tests::LoopbackHttp::start("svc");
    let p = svc.port;
    let guest = format!(
        "for h in other.test other.test third.test; do \
         echo \"got-$h $(curl -sS -m 90 http://$h:{p}/)\"; done"
    );
    let berth = env.berth();
    let mut line: Vec<String> = vec![berth.get_program().to_string_lossy().into_owned()];
    line.extend(berth.get_args().map(|a| a.to_string_lossy().into_owned()));
    line.extend(
        [
            "run",
            "--network",
            "allowlist",
            "--resolve",
            "other.test=127.0.0.1",
            "--resolve",
            "third.test=127.0.0.1",
            "--",
            "sh",
            "-c",
            &guest,
        ]
        .map(String::from),
    );
    let line: Vec<String> = line.iter().map(|w| sh_quote(w)).collect();
    let mut script = std::process::Command::new("script")
        .args(["-qfec", &line.join(" "), "/dev/null"])
        .envs(berth.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .current_dir(&repo)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut out = script.stdout.take().unwrap();
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let mut stdin = script.stdin.take().unwrap();
    let questions = |s: &str| s.matches("Allow it?").count();
    let wait_for = |n: usize| {
        assert!(
            berth_tests::wait_until(std::time::Duration::from_secs(300), || questions(
                &seen.lock().unwrap()
            ) >= n),
            "no question {n}: {}",
            seen.lock().unwrap()
        );
    };
    wait_for(1);
    assert!(seen.lock().unwrap().contains("other.test"));
    let ls = env.berth().args(["ls", "--json"]).output().unwrap();
    let ls: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert_eq!(ls[0]["waiting_for"][0], format!("other.test:{p}"), "{ls}");
    stdin.write_all(b"always\n").unwrap();
    wait_for(2);
    stdin.write_all(b"deny\n").unwrap();
    let status = script.wait().unwrap();
    reader.join().unwrap();
    let shown = seen.lock().unwrap().clone();
    assert!(status.success(), "{shown}");
    assert_eq!(questions(&shown), 2, "asked again after always: {shown}");
    let got: Vec<&str> = shown.lines().filter(|l| l.starts_with("got-")).collect();
    assert_eq!(got.len(), 3, "{shown}");
    assert!(got[0].trim_end().ends_with("hello from svc"), "{shown}");
    assert!(got[1].trim_end().ends_with("hello from svc"), "{shown}");
    assert!(
        got[2].contains("was not approved: denied by the user"),
        "{shown}"
    );
    let audit = env
        .berth()
        .args(["audit", "1.1", "--json"])
        .output()
        .unwrap();
    let audit: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    let decisions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "approval")
        .map(|e| e["data"]["decision"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(decisions, ["always", "deny"], "{audit}");

    // No terminal: denied at once, and said so before anything runs.
    let piped = env
        .berth()
        .current_dir(&repo)
        .args(["run", "--network", "allowlist", "--resolve"])
        .arg("other.test=127.0.0.1")
        .args(["--", "sh", "-c"])
        .arg(format!("curl -sS -m 90 http://other.test:{p}/"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let shown = text(&piped);
    assert!(shown.contains("no terminal to ask on"), "{shown}");
    assert!(shown.contains("is not on the allowlist"), "{shown}");
    assert!(!shown.contains("Allow it?"), "{shown}");
}

/// `berth logs --since` starts at a time: the log keeps a time mark at most once a second
/// where a write starts, and the flag takes a UTC time or a span back from now.
#[test]
fn logs_since_starts_at_a_time() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    let run = env
        .berth()
        .current_dir(&repo)
        .args(["run", "--", "sh", "-c", "echo early; sleep 3; echo late"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
    let marks =
        std::fs::read_to_string(env.data_dir().join("attempts/1.1/output.log.times")).unwrap();
    // The mark of the write that holds "late": the last one at or before where it is.
    let log = std::fs::read_to_string(env.data_dir().join("attempts/1.1/output.log")).unwrap();
    let late_offset = log.find("late").unwrap() as u64;
    let late_at: u64 = marks
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(t, at)| (t.parse::<u64>().unwrap(), at.parse::<u64>().unwrap()))
        .rfind(|(_, at)| *at <= late_offset)
        .unwrap()
        .0;
    let utc = |secs: u64| {
        let out = std::process::Command::new("date")
            .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%S"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let logs = |since: &str| {
        let out = env
            .berth()
            .args(["logs", "1.1", "--since", since])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let recent = logs(&utc(late_at));
    assert!(
        recent.contains("late") && !recent.contains("early"),
        "{recent:?} ({marks})"
    );
    let all = logs("1d");
    assert!(all.contains("early") && all.contains("late"), "{all:?}");
    assert_eq!(logs("2099-01-01"), "");
    let bad = env
        .berth()
        .args(["logs", "1.1", "--since", "yesterday"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("a time back from now"),
        "{}",
        text(&bad)
    );
}

/// `berth compare` shows a task's attempts side by side; `berth choose --merge` pulls the
/// winner, fast-forwards the branch the task started from in a clean checkout (never a
/// dirty one), and stops the task's other attempts, keeping their workspaces.
#[test]
fn compare_and_choose_a_winner_merging_into_a_clean_checkout_only() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    let new = env
        .berth()
        .current_dir(&repo)
        .args(["task", "new", "--attempts", "2", "--", "sh", "-c"])
        .arg("echo \"$BERTH_ATTEMPT\" > \"f$BERTH_ATTEMPT.txt\"; [ \"$BERTH_ATTEMPT\" = 1.1 ] || sleep 600")
        .output()
        .unwrap();
    assert!(new.status.success(), "{}", text(&new));
    let compare = || compare_json(&env, 1);
    assert!(
        berth_tests::wait_until(std::time::Duration::from_secs(300), || {
            let rows = compare();
            // Its changes are counted just after it is marked exited (the guest gone first).
            rows[0]["state"] == "exited"
                && !rows[0]["files_changed"].is_null()
                && rows[1]["state"] == "running"
        }),
        "{}",
        compare()
    );
    let rows = compare();
    assert_eq!(rows[0]["id"], "1.1", "{rows}");
    assert_eq!(rows[0]["exit_code"], 0, "{rows}");
    assert_eq!(rows[0]["files_changed"], 1, "{rows}");
    assert_eq!(rows[0]["denied"], 0, "{rows}");
    assert!(rows[0]["seconds"].is_u64(), "{rows}");
    let human = text(&env.berth().args(["compare", "1"]).output().unwrap());
    assert!(human.contains("DENIED") && human.contains("1.2"), "{human}");
    let unknown = env.berth().args(["compare", "9"]).output().unwrap();
    assert!(!unknown.status.success(), "{}", text(&unknown));

    // The user has an edit of their own: nothing is merged, their file is as it was.
    let main_before = berth_tests::git(&repo, &["rev-parse", "main"]);
    std::fs::write(repo.join("a.txt"), "my own edit\n").unwrap();
    let dirty = env
        .berth()
        .args(["choose", "1.1", "--merge"])
        .output()
        .unwrap();
    assert!(!dirty.status.success(), "{}", text(&dirty));
    assert!(
        text(&dirty).contains("changes of yours"),
        "{}",
        text(&dirty)
    );
    assert_eq!(berth_tests::git(&repo, &["rev-parse", "main"]), main_before);
    assert_eq!(
        std::fs::read_to_string(repo.join("a.txt")).unwrap(),
        "my own edit\n"
    );
    assert_eq!(compare()[1]["state"], "running", "nothing was stopped");

    // Clean again: main moves to the winner (its file is in the checkout), the other stops.
    std::fs::write(repo.join("a.txt"), "a\n").unwrap();
    let chose = env
        .berth()
        .args(["choose", "1.1", "--merge", "--json"])
        .output()
        .unwrap();
    assert!(chose.status.success(), "{}", text(&chose));
    let chose: serde_json::Value = serde_json::from_slice(&chose.stdout).unwrap();
    assert_eq!(chose["branch"], "berth/1/1", "{chose}");
    assert_eq!(chose["merged_into"], "main", "{chose}");
    assert!(
        chose["how"].as_str().unwrap().starts_with("fast-forward"),
        "{chose}"
    );
    assert_eq!(chose["stopped"][0], "1.2", "{chose}");
    assert_eq!(
        berth_tests::git(&repo, &["rev-parse", "main"]),
        berth_tests::git(&repo, &["rev-parse", "berth/1/1"])
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("f1.1.txt")).unwrap(),
        "1.1\n"
    );
    assert_eq!(berth_tests::git(&repo, &["status", "--porcelain"]), "");
    assert_eq!(compare()[1]["state"], "stopped");
    assert!(env.data_dir().join("attempts/1.2/work").is_dir());
}

/// `berth prompt` runs a finished attempt again in its workspace with a follow-up as
/// `$BERTH_PROMPT`; the earlier run's work becomes a commit of its own, and pulling again
/// updates the attempt's branch without --force.
#[test]
fn a_follow_up_prompt_adds_a_step_to_the_same_attempt() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    let new = env
        .berth()
        .current_dir(&repo)
        .args(["task", "new", "--title", "first ask", "--", "sh", "-c"])
        .arg("echo \"$BERTH_PROMPT\" >> log.txt")
        .output()
        .unwrap();
    assert!(new.status.success(), "{}", text(&new));
    let ended = |n: usize| {
        berth_tests::wait_until(std::time::Duration::from_secs(300), || {
            let audit = env
                .berth()
                .args(["audit", "1.1", "--json"])
                .output()
                .unwrap();
            let events: serde_json::Value =
                serde_json::from_slice(&audit.stdout).unwrap_or_default();
            events.as_array().map_or(0, |e| {
                e.iter()
                    .filter(|e| e["kind"] == "lifecycle" && e["data"]["event"] == "exited")
                    .count()
            }) >= n
        })
    };
    assert!(ended(1));
    let pull = env.berth().args(["pull", "1.1"]).output().unwrap();
    assert!(pull.status.success(), "{}", text(&pull));

    let follow = env
        .berth()
        .args(["prompt", "1.1", "--", "second", "ask"])
        .output()
        .unwrap();
    assert!(follow.status.success(), "{}", text(&follow));
    assert!(ended(2));
    // The branch moves to the newer result: it was exactly what this attempt put there.
    let again = env.berth().args(["pull", "1.1"]).output().unwrap();
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(
        berth_tests::git(&repo, &["show", "berth/1/1:log.txt"]),
        "first ask\nsecond ask\n"
    );
    let subjects = berth_tests::git(&repo, &["log", "--format=%s", "main..berth/1/1"]);
    let subjects: Vec<&str> = subjects.lines().collect();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert_eq!(subjects[1], "Berth: first ask", "{subjects:?}");
    assert_eq!(
        berth_tests::git(&repo, &["show", "berth/1/1~1:log.txt"]),
        "first ask\n"
    );
    let audit = text(&env.berth().args(["audit", "1.1"]).output().unwrap());
    assert!(audit.contains("second ask"), "{audit}");
    let empty = env
        .berth()
        .args(["prompt", "1.1", "--", " "])
        .output()
        .unwrap();
    assert!(!empty.status.success());
    assert!(
        text(&empty).contains("say what the follow-up asks for"),
        "{}",
        text(&empty)
    );

    // Starting over: a new attempt of the task from its base with a changed prompt; 1.1 stays.
    let retry = env
        .berth()
        .args(["retry", "1.1", "--json", "--", "third", "ask"])
        .output()
        .unwrap();
    assert!(retry.status.success(), "{}", text(&retry));
    let retry: serde_json::Value = serde_json::from_slice(&retry.stdout).unwrap();
    assert_eq!(retry["attempt"], "1.2", "{retry}");
    assert!(
        berth_tests::wait_until(std::time::Duration::from_secs(300), || {
            let ls = env.berth().args(["ls", "--json"]).output().unwrap();
            let ls: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap_or_default();
            ls.as_array()
                .is_some_and(|a| a.iter().any(|r| r["id"] == "1.2" && r["state"] == "exited"))
        }),
        "1.2 never ended"
    );
    let pull = env.berth().args(["pull", "1.2"]).output().unwrap();
    assert!(pull.status.success(), "{}", text(&pull));
    assert_eq!(
        berth_tests::git(&repo, &["show", "berth/1/2:log.txt"]),
        "third ask\n",
        "from the base, not from 1.1's work"
    );
    assert_eq!(
        berth_tests::git(&repo, &["show", "berth/1/1:log.txt"]),
        "first ask\nsecond ask\n"
    );
    let audit = text(
        &env.berth()
            .args(["audit", "1.1", "--json"])
            .output()
            .unwrap(),
    );
    assert!(audit.contains("\"retry\""), "{audit}");
}

/// An attempt whose terminal sits quiet at a prompt shows as waiting for input (`ls`,
/// `compare`, the app); one that printed a whole line and works silently stays working.
#[test]
fn a_terminal_quiet_at_a_prompt_is_waiting_for_input() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    let new = env
        .berth()
        .current_dir(&repo)
        .args(["task", "new", "--attempts", "2", "--", "sh", "-c"])
        .arg("if [ \"$BERTH_ATTEMPT\" = 1.1 ]; then exec bash -i; else echo building; mkdir -p src/deep; echo x > src/deep/new.rs; echo y > notes.md; exec sleep 600; fi")
        .output()
        .unwrap();
    assert!(new.status.success(), "{}", text(&new));
    let ls = || {
        let out = env.berth().args(["ls", "--json"]).output().unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    assert!(
        berth_tests::wait_until(
            std::time::Duration::from_secs(300),
            || ls()[0]["waiting_input"] == true
        ),
        "{}",
        ls()
    );
    // 1.2 has been quiet as long, after a whole line: working.
    std::thread::sleep(std::time::Duration::from_secs(4));
    let rows = ls();
    assert_eq!(rows[1]["state"], "running", "{rows}");
    assert_eq!(rows[1]["waiting_input"], false, "{rows}");
    let human = text(&env.berth().arg("ls").output().unwrap());
    assert!(human.contains("input"), "{human}");
    let compare = env
        .berth()
        .args(["compare", "1", "--json"])
        .output()
        .unwrap();
    let compare: serde_json::Value = serde_json::from_slice(&compare.stdout).unwrap();
    assert_eq!(compare[0]["waiting_input"], true, "{compare}");
    // While it works, the files it changes show (the supervisor watches its workspace).
    assert!(
        berth_tests::wait_until(
            std::time::Duration::from_secs(30),
            || ls()[1]["changing"]["files"] == 2
        ),
        "{}",
        ls()
    );
    let changing = &ls()[1]["changing"];
    assert!(
        changing["recent"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "src/deep/new.rs"),
        "{changing}"
    );
    let _ = env.berth().args(["stop", "1"]).output();
}

/// The repo's test command (`[test]` in berth.toml) runs in each attempt after its agent;
/// the comparison says which passed. An agent that rewrites berth.toml cannot change how its
/// own attempt is judged: the command is the one the task was made with.
#[test]
fn the_repos_test_command_judges_each_attempt_after_its_agent() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    berth_tests::commit_file(
        &repo,
        "berth.toml",
        "[test]\ncommand = \"test -f done && echo tests-saw-done\"\ntimeout = \"5m\"\n",
        "tests",
    );
    let agent = "if [ \"$BERTH_ATTEMPT\" = 1.1 ]; then touch done; \
                 else printf '[test]\\ncommand = \"true\"\\n' > berth.toml; fi";
    let new = env
        .berth()
        .current_dir(&repo)
        .args(["task", "new", "--attempts", "2", "--", "sh", "-c", agent])
        .output()
        .unwrap();
    assert!(new.status.success(), "{}", text(&new));
    let compare = || compare_json(&env, 1);
    assert!(
        berth_tests::wait_until(std::time::Duration::from_secs(300), || {
            let rows = compare();
            rows[0]["state"] == "exited" && rows[1]["state"] == "exited"
        }),
        "{}",
        compare()
    );
    let rows = compare();
    assert_eq!(
        rows[0]["test_command"],
        "test -f done && echo tests-saw-done"
    );
    assert_eq!(rows[0]["test"]["exit_code"], 0, "{rows}");
    assert_eq!(
        rows[1]["exit_code"], 0,
        "the agent itself succeeded: {rows}"
    );
    assert_eq!(rows[1]["test"]["exit_code"], 1, "{rows}");
    let human = text(&env.berth().args(["compare", "1"]).output().unwrap());
    assert!(
        human.contains("TESTS") && human.contains("passed") && human.contains("failed (1)"),
        "{human}"
    );
    let logs = text(&env.berth().args(["logs", "1.1"]).output().unwrap());
    assert!(
        logs.contains("running the repo's tests") && logs.contains("tests-saw-done"),
        "{logs}"
    );
    assert!(logs.contains("[berth] tests passed"), "{logs}");
    let audit = text(
        &env.berth()
            .args(["audit", "1.2", "--json"])
            .output()
            .unwrap(),
    );
    assert!(audit.contains("\"test\""), "{audit}");

    // `berth run` judges its attempts the same way, the tests' output in its own.
    let run = env
        .berth()
        .current_dir(&repo)
        .args(["run", "--", "sh", "-c", "touch done"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{}", text(&run));
    assert!(
        said.contains("running the repo's tests")
            && said.contains("tests-saw-done")
            && said.contains("[berth] tests passed"),
        "{said}"
    );
    let rows = compare_json(&env, 2);
    assert_eq!(rows[0]["test"]["exit_code"], 0, "{rows}");
}
