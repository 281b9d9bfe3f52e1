//! The /work share: both directions work, and it is the only host path a guest can see.

use berth_tests::TestEnv;

#[test]
fn files_cross_the_share_both_ways_while_the_vm_runs() {
    let env = TestEnv::new();
    let share = env.share();
    let mut vm = env.boot_vm(Some(share.path()));

    let out = vm.sh("echo from-guest > g.txt && mkdir -p sub && echo nested > sub/n.txt");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(share.path().join("g.txt")).unwrap(),
        "from-guest\n"
    );
    assert_eq!(
        std::fs::read_to_string(share.path().join("sub/n.txt")).unwrap(),
        "nested\n"
    );

    // Written on the host after boot: the guest sees it at once.
    std::fs::write(share.path().join("h.txt"), "from-host\n").unwrap();
    let out = vm.sh("cat h.txt");
    assert_eq!(out.stdout, "from-host\n", "{out:?}");

    // Files the guest creates belong to the share's owner on the host, never to anyone else.
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(share.path()).unwrap().uid();
    assert_eq!(
        std::fs::metadata(share.path().join("g.txt")).unwrap().uid(),
        owner
    );
    // Even guest root cannot hand a file to another host user.
    let out = vm.sh_as_root("echo x > /work/root.txt && chown 4242:4242 /work/root.txt; true");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::metadata(share.path().join("root.txt"))
            .unwrap()
            .uid(),
        owner
    );
    vm.shutdown();
}

#[test]
fn the_guest_cannot_find_host_files_outside_its_share() {
    let env = TestEnv::new();
    let share = env.share();
    let secret = format!("berth-marker-{}", std::process::id());
    // Plant markers where a leak would show: the invoking user's HOME, berth's HOME, /tmp,
    // and right next to the share.
    let real_home = std::env::var("HOME").unwrap();
    let planted = [
        std::path::PathBuf::from(&real_home).join(format!(".{secret}")),
        env.home.path().join(&secret),
        std::path::PathBuf::from("/tmp").join(&secret),
        share.path().with_extension("sibling-marker"),
    ];
    for p in &planted {
        std::fs::write(p, &secret).unwrap();
    }
    let mut vm = env.boot_vm(Some(share.path()));
    // As guest root, search every file system the guest has, by name and by content.
    let out = vm.sh_as_root(&format!(
        "find / -xdev -name '*{secret}*' 2>/dev/null; find /work /tmp /run /home /root -name '*marker*' 2>/dev/null; \
         grep -rls --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev '{secret}' / 2>/dev/null; \
         ls -a /work; mount | grep -c virtiofs; echo done"
    ));
    for p in &planted {
        let _ = std::fs::remove_file(p);
    }
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        !out.stdout.contains(&secret),
        "guest found a host marker:\n{}",
        out.stdout
    );
    assert!(!out.stdout.contains("sibling-marker"), "{}", out.stdout);
    // /work holds exactly what the share holds (nothing), and there is one virtiofs mount.
    assert!(out.stdout.contains(".\n..\n1\ndone"), "{}", out.stdout);
    // `..` of /work is the guest's root, not the share's parent on the host.
    let out = vm.sh("ls /work/.. | grep -c '^etc$'; cat /work/../../tmp/*marker* 2>&1 | head -1");
    assert!(out.stdout.starts_with("1\n"), "{out:?}");
    assert!(!out.stdout.contains(&secret));
    vm.shutdown();
}
