//! Two VMs at once over one base image; the base is never written.

use berth_tests::TestEnv;

fn sha256(path: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn two_vms_from_one_base_run_at_once_and_the_base_is_unchanged() {
    let env = TestEnv::new();
    let rootfs = std::fs::read_dir(env.data_dir().join("images"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("rootfs.img"))
        .find(|p| p.is_file())
        .unwrap();
    let before = sha256(&rootfs);

    let (a, b) = (env.share(), env.share());
    let mut vm_a = env.boot_vm(Some(a.path()));
    let mut vm_b = env.boot_vm(Some(b.path()));
    // Each VM writes its own root disk and share; neither sees the other's.
    assert_eq!(
        vm_a.sh_as_root("echo A > /etc/which && echo A > /work/which")
            .code,
        0
    );
    assert_eq!(
        vm_b.sh_as_root("echo B > /etc/which && echo B > /work/which")
            .code,
        0
    );
    assert_eq!(vm_a.sh("cat /etc/which /work/which").stdout, "A\nA\n");
    assert_eq!(vm_b.sh("cat /etc/which /work/which").stdout, "B\nB\n");
    // Hammer the root disk in both at once.
    let big = "dd if=/dev/urandom of=/var/tmp/blob bs=1M count=16 2>/dev/null && sync && echo ok";
    assert_eq!(vm_a.sh_as_root(big).stdout, "ok\n");
    assert_eq!(vm_b.sh_as_root(big).stdout, "ok\n");
    vm_a.shutdown();
    vm_b.shutdown();

    assert_eq!(
        std::fs::read_to_string(a.path().join("which")).unwrap(),
        "A\n"
    );
    assert_eq!(
        std::fs::read_to_string(b.path().join("which")).unwrap(),
        "B\n"
    );
    assert_eq!(sha256(&rootfs), before, "the base image was written");
    // A fresh VM does not see what the others wrote to their overlays.
    let mut vm_c = env.boot_vm(None);
    assert_eq!(
        vm_c.sh("cat /etc/which 2>/dev/null || echo none").stdout,
        "none\n"
    );
    vm_c.shutdown();
}
