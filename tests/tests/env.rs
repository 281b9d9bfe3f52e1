//! Environments in real VMs: the repo's `[env]` packages and setup steps are built once into
//! a read-only layer, attempts boot on it, and bad input changes nothing.

use std::path::{Path, PathBuf};
use std::process::Output;

use berth_tests::{LoopbackHttp, TestEnv, commit_file, repo_with};

fn berth(env: &TestEnv, repo: &Path, args: &[&str]) -> Output {
    env.berth().current_dir(repo).args(args).output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn repo_with_env(env: &TestEnv, toml: &str) -> PathBuf {
    let repo = repo_with(&env.home.path().join("repo"), "main", "README", "hi\n");
    commit_file(&repo, "berth.toml", toml, "env");
    repo
}

/// `berth run --attempts N -- sh -c SCRIPT` in `repo`.
fn run_sh(env: &TestEnv, repo: &Path, attempts: u32, script: &str) -> Output {
    let n = attempts.to_string();
    berth(
        env,
        repo,
        &[
            "run",
            "--repo",
            ".",
            "--attempts",
            &n,
            "--",
            "sh",
            "-c",
            script,
        ],
    )
}

/// The current generation of the (only) repo's cache disk.
fn cache_generation(env: &TestEnv, repo: &Path) -> u64 {
    let ls = berth(env, repo, &["cache", "ls", "--json"]);
    let caches: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    caches[0]["generation"].as_u64().unwrap_or(0)
}

fn env_ids(env: &TestEnv, repo: &Path) -> Vec<String> {
    let out = berth(env, repo, &["env", "ls", "--json", "--repo", "."]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_environment_is_built_once_and_attempts_boot_on_it() {
    let env = TestEnv::new();
    let repo = repo_with_env(
        &env,
        "[env]\npackages = [\"jq\"]\nsetup = [\"echo setup-ran > /home/agent/setup.txt\", \
         \"python3 -m venv /home/agent/venv\"]\n",
    );
    let first = berth(&env, &repo, &["env", "build"]);
    assert!(first.status.success(), "{}", text(&first));
    let second = berth(&env, &repo, &["env", "build"]);
    assert!(second.status.success(), "{}", text(&second));
    assert!(text(&second).contains("is up to date"), "{}", text(&second));
    assert_eq!(env_ids(&env, &repo).len(), 1);
    // Rebuild: the steps run again into the same environment; the status says so.
    let again = berth(&env, &repo, &["env", "build", "--rebuild"]);
    assert!(
        text(&again).contains("built environment"),
        "{}",
        text(&again)
    );
    assert_eq!(env_ids(&env, &repo).len(), 1);
    let status = berth(&env, &repo, &["env", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        status["built"]["id"].as_str(),
        Some(&env_ids(&env, &repo)[0][..12])
    );
    assert_eq!(status["activity"]["state"], "done");

    let out = run_sh(
        &env,
        &repo,
        1,
        "jq --version; cat ~/setup.txt; ~/venv/bin/python -c 'print(6*7)'; cc --version | head -1",
    );
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("jq-1."), "{shown}");
    assert!(
        shown.contains("setup-ran") && shown.contains("42"),
        "{shown}"
    );
    assert!(
        shown.contains("cc (Debian"),
        "the base has a C toolchain: {shown}"
    );

    // A bad package: a clear error naming it; the environment before is kept.
    commit_file(
        &repo,
        "berth.toml",
        "[env]\npackages = [\"jq\", \"no-such-package-berth-test\"]\n",
        "bad package",
    );
    let bad = berth(&env, &repo, &["env", "build"]);
    assert_eq!(bad.status.code(), Some(125), "{}", text(&bad));
    assert!(
        text(&bad).contains("Debian has no package no-such-package-berth-test"),
        "{}",
        text(&bad)
    );
    assert_eq!(
        env_ids(&env, &repo).len(),
        1,
        "the earlier environment is kept"
    );

    // A failing setup step: its output in the error; nothing new is kept.
    commit_file(
        &repo,
        "berth.toml",
        "[env]\nsetup = [\"echo about-to-fail; echo why-it-failed >&2; exit 3\"]\n",
        "bad step",
    );
    let failed = berth(&env, &repo, &["env", "build"]);
    assert_eq!(failed.status.code(), Some(125), "{}", text(&failed));
    let shown = text(&failed);
    assert!(
        shown.contains("setup step 1") && shown.contains("exited 3"),
        "{shown}"
    );
    assert!(shown.contains("why-it-failed"), "{shown}");
    assert_eq!(env_ids(&env, &repo).len(), 1);
    let status = berth(&env, &repo, &["env", "status"]);
    let shown = text(&status);
    assert!(shown.contains("not built for HEAD yet"), "{shown}");
    assert!(
        shown.contains("failed") && shown.contains("exited 3"),
        "{shown}"
    );
    let id = env_ids(&env, &repo)[0].clone();
    let rm = berth(&env, &repo, &["env", "rm", &id[..12]]);
    assert!(rm.status.success(), "{}", text(&rm));
    assert!(env_ids(&env, &repo).is_empty());
}

#[test]
fn setup_steps_reach_only_what_the_trusted_setup_network_allows() {
    let env = TestEnv::new();
    let svc = LoopbackHttp::start("registry");
    let repo = repo_with_env(
        &env,
        &format!(
            "[env]\nsetup = [\"curl -fsS http://svc.test:{p}/ > /home/agent/fetched.txt\"]\n\
             [env.network]\nmode = \"allowlist\"\nallow = [\"svc.test:{p}\"]\n\
             resolve = {{ \"svc.test\" = \"127.0.0.1\" }}\n",
            p = svc.port
        ),
    );
    // The repo asks for a network for its setup steps: not before the user trusts it.
    let refused = berth(&env, &repo, &["env", "build"]);
    assert_eq!(refused.status.code(), Some(125), "{}", text(&refused));
    assert!(
        text(&refused).contains("berth config trust"),
        "{}",
        text(&refused)
    );
    let trusted = berth(&env, &repo, &["config", "trust"]);
    assert!(trusted.status.success(), "{}", text(&trusted));
    let built = berth(&env, &repo, &["env", "build"]);
    assert!(built.status.success(), "{}", text(&built));
    assert!(
        text(&built).contains("network: allow GET svc.test"),
        "{}",
        text(&built)
    );
    let out = berth(
        &env,
        &repo,
        &["run", "--repo", ".", "--", "cat", "/home/agent/fetched.txt"],
    );
    assert!(text(&out).contains("hello from registry"), "{}", text(&out));
    // The attempt itself has no network: the setup's network was the setup's alone.
    let out = run_sh(
        &env,
        &repo,
        1,
        "curl -sS -m 5 http://svc.test/ || echo no-net",
    );
    assert!(text(&out).contains("no-net"), "{}", text(&out));
}

#[test]
fn the_cache_disk_is_shared_warm_and_nothing_an_attempt_writes_reaches_another() {
    let env = TestEnv::new();
    let repo = repo_with_env(
        &env,
        "[env]\nsetup = [\"mkdir -p $PIP_CACHE_DIR/wheels && echo from-setup > $PIP_CACHE_DIR/wheels/pkg\"]\n\
         [cache]\npresets = [\"pip\"]\nsize = \"256MiB\"\n",
    );
    let built = berth(&env, &repo, &["env", "build"]);
    assert!(built.status.success(), "{}", text(&built));
    assert!(
        text(&built).contains("cache: generation 1 published"),
        "{}",
        text(&built)
    );
    // Two attempts at once: the first poisons the cached file and leaves a marker; the
    // second, reading later, still sees what the setup VM put there.
    let out = run_sh(
        &env,
        &repo,
        2,
        "if [ \"$BERTH_ATTEMPT\" = 1.1 ]; then echo POISON > $PIP_CACHE_DIR/wheels/pkg; \
             touch /cache/from-A; echo kept > work-of-A.txt; echo A-wrote; else sleep 4; \
             echo B-saw $(cat $PIP_CACHE_DIR/wheels/pkg); ls /cache; fi",
    );
    let shown = text(&out);
    assert!(shown.contains("A-wrote"), "{shown}");
    assert!(shown.contains("B-saw from-setup"), "{shown}");
    assert!(!shown.contains("from-A"), "{shown}");
    // A full cache disk is the guest's problem only: ENOSPC inside, the host untouched.
    let out = run_sh(
        &env,
        &repo,
        1,
        "head -c 300M /dev/zero > /cache/big || echo guest-got-enospc",
    );
    assert!(text(&out).contains("guest-got-enospc"), "{}", text(&out));
    // Pulling A refreshes the cache in the background, on A's commit, by a setup VM.
    let pulled = berth(&env, &repo, &["pull", "1.1", "--branch", "kept-a"]);
    assert!(
        text(&pulled).contains("refreshing the repo's cache"),
        "{}",
        text(&pulled)
    );
    let generation = || cache_generation(&env, &repo);
    assert!(
        berth_tests::wait_until(std::time::Duration::from_secs(180), || generation() == 2),
        "no new generation after the pull"
    );
    // A new generation is made by a setup VM, never from an attempt's bytes.
    let refreshed = berth(&env, &repo, &["cache", "refresh"]);
    assert!(refreshed.status.success(), "{}", text(&refreshed));
    let out = run_sh(&env, &repo, 1, "cat $PIP_CACHE_DIR/wheels/pkg; ls /cache");
    let shown = text(&out);
    assert!(
        shown.contains("from-setup") && !shown.contains("POISON"),
        "{shown}"
    );
    assert!(
        !shown.contains("from-A") && !shown.contains("big"),
        "{shown}"
    );
    assert_eq!(generation(), 3);
}

/// Real clients against local registries: cargo, npm and pip fetch through the setup VM's
/// proxy onto the cache disk; attempts build and test offline on it without compiling a
/// dependency again, nothing one attempt writes there reaches another, and a generation
/// made after pulling an attempt holds nothing it wrote.
#[test]
fn real_projects_fetch_from_registries_once_and_build_offline_on_the_warm_cache() {
    let env = TestEnv::new();
    let reg = berth_tests::Registries::start();
    let port = reg.http.port;
    let mut files = reg.cargo("crates.test", 3);
    files.extend(reg.npm("npm.test"));
    files.extend(reg.pip("pypi.test"));
    files.push((
        "berth.toml".into(),
        format!(
            "[env]\npackages = [\"cargo\", \"npm\"]\nsetup = [\n  \"cargo fetch --locked\",\n  \
             \"cargo build --offline --locked\",\n  \"npm ci --ignore-scripts\",\n  \
             \"pip download --quiet --dest $PIP_CACHE_DIR/wheelhouse -r requirements.txt\",\n]\n\
             [env.network]\nmode = \"allowlist\"\n\
             allow = [\"crates.test:{port}\", \"npm.test:{port}\", \"pypi.test:{port}\"]\n\
             resolve = {{ \"crates.test\" = \"127.0.0.1\", \"npm.test\" = \"127.0.0.1\", \
             \"pypi.test\" = \"127.0.0.1\" }}\n\
             [cache]\npresets = [\"cargo\", \"npm\", \"pip\"]\nsize = \"2GiB\"\n"
        ),
    ));
    let repo = repo_with(&env.home.path().join("repo"), "main", "README", "hi\n");
    berth_tests::commit_files(&repo, &files, "projects");
    assert!(berth(&env, &repo, &["config", "trust"]).status.success());
    let built = berth(&env, &repo, &["env", "build"]);
    assert!(built.status.success(), "{}", text(&built));
    // Each client really went to its registry, through the proxy.
    for (host, path) in [
        ("crates.test", "/cargo/index.git/info/refs"),
        ("crates.test", "/cargo/crates/berth_dep_02/1.0.0/download"),
        ("npm.test", "/npm/berth-dep-b/-/berth-dep-b-1.0.0.tgz"),
        ("pypi.test", "/pypi/files/berth_pkg_b-1.0-py3-none-any.whl"),
    ] {
        assert!(reg.http.was_asked_for(path), "{path} never fetched");
        assert!(
            text(&built).contains(&format!("allow GET {host}")),
            "{}",
            text(&built)
        );
    }
    let check = "set -e; cargo build --offline --locked 2>&1; cargo test --offline --locked 2>&1; \
                 npm ci --offline --ignore-scripts >/dev/null; \
                 node -e \"console.log('node:', require('berth-dep-a').hello())\"; \
                 python3 -m venv /tmp/venv; /tmp/venv/bin/pip install --quiet --no-index \
                 --find-links $PIP_CACHE_DIR/wheelhouse -r requirements.txt; \
                 /tmp/venv/bin/python -c 'import berth_pkg_a; print(\"python:\", berth_pkg_a.hello())'";
    let poison = "for f in $CARGO_HOME/registry/src/*/berth_dep_00-1.0.0/src/lib.rs; do \
                  echo 'compile_error!(\"POISON\");' >> $f; done; \
                  for f in $CARGO_TARGET_DIR/debug/deps/libberth_dep_00-*.rlib; do \
                  echo POISON > $f; done; echo POISON >> $npm_config_cache/_cacache/index-v5/x; \
                  echo kept > work-of-A.txt; echo A-poisoned";
    let script = format!(
        "if [ \"$BERTH_ATTEMPT\" = 1.1 ]; then {poison}; else sleep 20; {check}; \
         grep -rl POISON /cache 2>/dev/null || echo B-saw-no-poison; fi"
    );
    let out = run_sh(&env, &repo, 2, &script);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("A-poisoned"), "{shown}");
    assert!(shown.contains("B-saw-no-poison"), "{shown}");
    assert!(shown.contains("Compiling app"), "{shown}");
    assert!(
        !shown.contains("Compiling berth_dep"),
        "the warm cache compiled a dependency again: {shown}"
    );
    assert!(shown.contains("test result: ok. 1 passed"), "{shown}");
    assert!(
        shown.contains("node: berth-dep-a with berth-dep-b"),
        "{shown}"
    );
    assert!(
        shown.contains("python: berth_pkg_a with berth_pkg_b"),
        "{shown}"
    );

    // Pulling A makes a new generation on A's commit, by a setup VM: nothing A wrote in it.
    let pulled = berth(&env, &repo, &["pull", "1.1", "--branch", "kept-a"]);
    assert!(pulled.status.success(), "{}", text(&pulled));
    let generation = || cache_generation(&env, &repo);
    assert!(
        berth_tests::wait_until(std::time::Duration::from_secs(600), || generation() == 2),
        "no new generation after the pull"
    );
    let out = run_sh(
        &env,
        &repo,
        1,
        &format!("{check}; grep -rl POISON /cache 2>/dev/null || echo no-poison-in-gen-2"),
    );
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("no-poison-in-gen-2"), "{shown}");
    assert!(!shown.contains("Compiling berth_dep"), "{shown}");
}

/// The guest's MemTotal in the output of `grep MemTotal /proc/meminfo`, kB.
fn mem_total_kb(out: &Output) -> u64 {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .unwrap_or_else(|| panic!("no MemTotal in {}", self::text(out)));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn the_environment_sizes_its_attempts_memory_and_the_user_overrides_it() {
    let env = TestEnv::new();
    let repo = repo_with_env(&env, "[env]\nmemory = 384\n");
    let out = run_sh(&env, &repo, 1, "grep MemTotal /proc/meminfo");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("384 MiB per attempt: the repo's berth.toml asks 384 MiB"),
        "{}",
        text(&out)
    );
    // A 384 MiB guest (the kernel keeps a little for itself), not the default 512.
    let kb = mem_total_kb(&out);
    assert!((300_000..=393_216).contains(&kb), "MemTotal {kb} kB");
    let ls = berth(&env, &repo, &["ls", "--json"]);
    let ls: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert_eq!(ls[0]["memory_mib"], 384, "{ls}");
    // The user's --memory wins.
    let out = berth(
        &env,
        &repo,
        &[
            "run",
            "--memory",
            "640",
            "--",
            "sh",
            "-c",
            "grep MemTotal /proc/meminfo",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let kb = mem_total_kb(&out);
    assert!(kb > 560_000, "MemTotal {kb} kB with --memory 640");

    // A repo asking for too little or too much: refused, naming the line; nothing made.
    for (value, why) in [
        ("64", "not between 256 and 32768"),
        ("999999", "not between"),
    ] {
        let bad = env.home.path().join(format!("bad-{value}"));
        let bad = repo_with(&bad, "main", "README", "hi\n");
        commit_file(
            &bad,
            "berth.toml",
            &format!("# sized\n[env]\nmemory = {value}\n"),
            "env",
        );
        let out = run_sh(&env, &bad, 1, "true");
        assert!(!out.status.success());
        let says = text(&out);
        assert!(
            says.contains("line 3") && says.contains("env.memory") && says.contains(why),
            "{says}"
        );
    }
    let ls = berth(&env, &repo, &["ls", "--json"]);
    let ls: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert_eq!(ls.as_array().unwrap().len(), 2, "{ls}");
}
