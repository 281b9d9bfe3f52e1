//! `berth doctor` names the problems a fresh machine really has, with the fix.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use berth_tests::TestEnv;

/// A stand-in program that prints `first_line` for `--version`.
fn fake_version(dir: &Path, name: &str, first_line: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\necho '{first_line}'\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn doctor(env: &TestEnv, qemu: &Path, qemu_img: &Path) -> (bool, String) {
    let out = env
        .berth()
        .env("BERTH_QEMU", qemu)
        .env("BERTH_QEMU_IMG", qemu_img)
        .arg("doctor")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn doctor_reports_a_backported_qemu_img_that_does_not_match_qemu() {
    let env = TestEnv::new();
    let bin = env.home.path();
    let qemu = fake_version(
        bin,
        "qemu",
        "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7)",
    );
    let img = fake_version(bin, "img", "qemu-img version 10.0.2 (Debian 1:10.0.2+ds-2)");
    let (ok, out) = doctor(&env, &qemu, &img);
    assert!(!ok, "a mismatch must fail doctor:\n{out}");
    let line = out
        .lines()
        .find(|l| l.contains("qemu versions"))
        .unwrap_or_else(|| panic!("no qemu versions line:\n{out}"));
    assert!(line.starts_with("FAIL"), "{line}");
    assert!(line.contains("7.2.19") && line.contains("10.0.2"), "{line}");
    assert!(line.contains("scripts/install-deps.sh"), "{line}");
}

#[test]
fn doctor_is_quiet_about_a_qemu_of_one_release() {
    let env = TestEnv::new();
    let bin = env.home.path();
    let qemu = fake_version(
        bin,
        "qemu",
        "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7)",
    );
    let img = fake_version(bin, "img", "qemu-img version 7.2.19 (Debian 1:7.2+dfsg-7)");
    let (_, out) = doctor(&env, &qemu, &img);
    assert!(!out.contains("qemu versions"), "{out}");
}
