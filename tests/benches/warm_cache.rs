//! Cold vs warm `cargo build` in an attempt: a crate with 30 dependency crates from a
//! stand-in registry on loopback, fetched and built once by the environment's setup VM.
//! Cold builds into a fresh target directory in the attempt; warm uses the cache disk's.
//! Both run in the same attempt, timed inside the guest, `--runs` times (median).
//!
//! `cargo bench -p berth-tests --bench warm_cache -- [--deps 30] [--runs 3]`
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::time::Instant;

use berth_tests::{Registries, TestEnv, commit_files, repo_with};

fn berth(env: &TestEnv, repo: &Path, args: &[&str]) -> String {
    let out = env.berth().current_dir(repo).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "berth {args:?}: {text}");
    text
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let (deps, runs) = (
        berth_tests::bench_arg("--deps", 30),
        berth_tests::bench_arg("--runs", 3),
    );
    let env = TestEnv::new();
    let reg = Registries::start();
    let port = reg.http.port;
    let mut files = reg.cargo("crates.test", deps);
    files.push((
        "berth.toml".into(),
        format!(
            "[env]\npackages = [\"cargo\"]\n\
             setup = [\"cargo fetch --locked\", \"cargo build --offline --locked\"]\n\
             [env.network]\nmode = \"allowlist\"\nallow = [\"crates.test:{port}\"]\n\
             resolve = {{ \"crates.test\" = \"127.0.0.1\" }}\n\
             [cache]\npresets = [\"cargo\"]\nsize = \"2GiB\"\n"
        ),
    ));
    let repo = repo_with(&env.home.path().join("repo"), "main", "README", "hi\n");
    commit_files(&repo, &files, "crate");
    berth(&env, &repo, &["config", "trust"]);
    let started = Instant::now();
    berth(&env, &repo, &["env", "build"]);
    let build = started.elapsed().as_secs_f64();
    let timed = |label: &str, cmd: &str| {
        format!(
            "s=$(date +%s%N); {cmd} >/dev/null 2>&1 || exit 9; e=$(date +%s%N); \
             echo \"{label} $(( (e - s) / 1000000 ))\"; "
        )
    };
    let script = format!(
        "{}{}",
        timed("warm-ms", "cargo build --offline --locked"),
        timed(
            "cold-ms",
            "CARGO_TARGET_DIR=/tmp/cold cargo build --offline --locked"
        )
    );
    let (mut warm, mut cold) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let out = berth(
            &env,
            &repo,
            &["run", "--repo", ".", "--", "sh", "-c", &script],
        );
        for line in out.lines() {
            let ms = |p: &str| {
                line.trim()
                    .strip_prefix(p)
                    .and_then(|v| v.trim().parse::<f64>().ok())
            };
            if let Some(v) = ms("warm-ms") {
                warm.push(v / 1000.0);
            }
            if let Some(v) = ms("cold-ms") {
                cold.push(v / 1000.0);
            }
        }
    }
    assert_eq!((warm.len(), cold.len()), (runs, runs), "timings missing");
    let (w, c) = (median(warm), median(cold));
    println!("dependency crates:            {deps}");
    println!("environment build (cold):     {build:.1} s");
    println!("cold cargo build (median {runs}): {c:.2} s");
    println!(
        "warm cargo build (median {runs}): {w:.2} s  ({:.2}x cold)",
        w / c
    );
}
