//! Real coding agents from `berth run --agent NAME` to their first model request and to a
//! pulled branch, against the loopback TLS stand-in of their vendor's API
//! (`berth_tests::model_api`, the scripted job of `tests/tests/agents_real.rs`), with the
//! floor beside them: the same attempt running `true` (boot, command, teardown, pull).
//! The agents' CLIs are installed first (not timed here; `berth agent install` prints its
//! own time).
//!
//! `cargo bench -p berth-tests --bench agent -- [--runs 3]` (inside `keyctl session -`)
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use berth_tests::{ModelApi, TestEnv, Vendor, bench_arg, output_with_stdin, simple_repo};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn main() {
    let runs = bench_arg("--runs", 3);
    println!(
        "| attempt | to the first model request (median) | to a pulled branch (median) | runs |"
    );
    println!("|---|---|---|---|");
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    // The floor: an attempt whose command is `true`.
    let mut floor = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let out = env
            .berth()
            .current_dir(&repo)
            .args(["run", "--repo", ".", "--", "true"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        floor.push(t.elapsed());
    }
    println!("| floor (`true`) | - | {} | {runs} |", secs(median(floor)));
    for (name, vendor, secret, header) in [
        ("claude", Vendor::Anthropic, "anthropic", "x-api-key"),
        (
            "codex",
            Vendor::OpenAi,
            "openai",
            "Authorization: Bearer {}",
        ),
    ] {
        let api = ModelApi::start(vendor);
        let ca = env.home.path().join(format!("{name}-ca.pem"));
        std::fs::write(&ca, &api.ca_pem).unwrap();
        let set = output_with_stdin(
            env.berth()
                .args(["secret", "set", secret, "--header", header])
                .arg("--upstream")
                .arg(format!("https://localhost:{}", api.port))
                .arg("--ca-file")
                .arg(&ca),
            b"sk-bench",
        );
        assert!(
            set.status.success(),
            "{}",
            String::from_utf8_lossy(&set.stderr)
        );
        let install = env
            .berth()
            .current_dir(&repo)
            .args(["agent", "install", name])
            .output()
            .unwrap();
        assert!(
            install.status.success(),
            "{}",
            String::from_utf8_lossy(&install.stderr)
        );
        let (mut first, mut done) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let seen = api.requests().len();
            let t = Instant::now();
            let out = env
                .berth()
                .current_dir(&repo)
                .args([
                    "run",
                    "--agent",
                    name,
                    "--repo",
                    ".",
                    "--",
                    "write hello.txt",
                ])
                .output()
                .unwrap();
            done.push(t.elapsed());
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let reqs = api.requests();
            let model = reqs[seen..].iter().find(|r| r.step.is_some()).unwrap();
            first.push(model.at.duration_since(t));
        }
        println!(
            "| {name} | {} | {} | {runs} |",
            secs(median(first)),
            secs(median(done))
        );
    }
}
