//! Open mode never reaches the host itself through one of its public addresses. The test
//! runs itself again inside a network namespace of its own (`unshare -n`, root only) and
//! gives that namespace a public address, so nothing outside it is touched.

use std::process::Command;

use berth_egress::{Decision, Mode, Policy, decide};

const OWN: &str = "203.0.113.7";

#[test]
fn open_mode_refuses_the_hosts_own_public_address() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root for a network namespace");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["--net", "--"])
        .arg(&exe)
        .args([
            "--exact",
            "inside_a_namespace_with_a_public_address",
            "--ignored",
            "--nocapture",
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

#[test]
#[ignore = "run by open_mode_refuses_the_hosts_own_public_address inside its namespace"]
fn inside_a_namespace_with_a_public_address() {
    for cmd in ["ip link set lo up", &format!("ip addr add {OWN}/32 dev lo")] {
        let args: Vec<&str> = cmd.split(' ').collect();
        assert!(
            Command::new(args[0])
                .args(&args[1..])
                .status()
                .unwrap()
                .success(),
            "{cmd}"
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let policy = Policy {
        mode: Mode::Open,
        ..Policy::default()
    };
    match rt.block_on(decide(&policy, OWN, 443)) {
        Decision::Deny { reason, rule } => {
            assert_eq!(rule, "ranges");
            assert!(reason.contains("address of this host"), "{reason}");
        }
        allowed => panic!("the host's own address was allowed: {allowed:?}"),
    }
    // Another public address is not the host's (decided without connecting anywhere).
    assert!(matches!(
        rt.block_on(decide(&policy, "203.0.113.8", 443)),
        Decision::Allow { .. }
    ));
}
