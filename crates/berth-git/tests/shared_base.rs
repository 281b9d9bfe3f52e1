//! `host.git` reads the base's objects from the user's repository instead of copying the
//! workspace's pack a second time, and that changes nothing a guest could use: its HEAD and
//! new commits must still come from the workspace, a pack it rewrote under Berth's name is
//! never read, and without the user's repository everything is copied as before.

use std::path::{Path, PathBuf};

use berth_git::{BaseObjects, Limits, collect, create_workspace, import};
use git2::{Repository, Signature};

/// A user repo whose base holds a 3 MiB file nobody can compress, plus a later commit on
/// another branch (never shown to the workspace).
fn user_repo(dir: &Path) -> (PathBuf, git2::Oid) {
    let repo = dir.join("user");
    std::fs::create_dir_all(&repo).unwrap();
    let mut opts = git2::RepositoryInitOptions::new();
    opts.initial_head("main");
    let r = Repository::init_opts(&repo, &opts).unwrap();
    let mut noise = vec![0u8; 3 << 20];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(repo.join("big.bin"), &noise).unwrap();
    std::fs::write(repo.join("a.txt"), "a\n").unwrap();
    let mut index = r.index().unwrap();
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    index.write().unwrap();
    let tree = r.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = Signature::now("u", "u@u.invalid").unwrap();
    let base = r
        .commit(Some("HEAD"), &sig, &sig, "base\n", &tree, &[])
        .unwrap();
    let parent = r.find_commit(base).unwrap();
    let other = r
        .commit(
            None,
            &sig,
            &sig,
            "the user's own later work\n",
            &tree,
            &[&parent],
        )
        .unwrap();
    r.reference("refs/heads/elsewhere", other, true, "t")
        .unwrap();
    (repo, base)
}

fn size_of(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

/// The guest's work: a new file, committed by the host's leftovers commit.
fn work(ws: &Path) {
    std::fs::write(ws.join("new.txt"), "from the guest\n").unwrap();
}

#[test]
fn host_git_reads_the_base_from_the_user_repo_instead_of_copying_it() {
    let d = tempfile::tempdir().unwrap();
    let (user, base) = user_repo(d.path());
    let ws = d.path().join("ws");
    let created = create_workspace(&user, "main", &ws, false, 1).unwrap();
    let pack = created.pack.clone().expect("the workspace's pack is named");
    work(&ws);
    let host = d.path().join("host.git");
    let shared = BaseObjects {
        repo: &user,
        pack: &pack,
    };
    let c = collect(
        &ws,
        &host,
        base,
        base,
        "1.1",
        &Limits::default(),
        0,
        Some(shared),
    )
    .unwrap();
    assert_eq!(c.commits.len(), 1);
    assert!(
        size_of(&host) < 1 << 20,
        "host.git copied the base: {} bytes",
        size_of(&host)
    );
    let imported = import(&host, &c, &user, "berth/1/1", false, "1.1")
        .unwrap()
        .unwrap();
    let r = Repository::open(&user).unwrap();
    let tree = r.find_commit(imported.head).unwrap().tree().unwrap();
    assert!(tree.get_name("new.txt").is_some() && tree.get_name("big.bin").is_some());

    // Without sharing, the base is copied (the way it was), and the result is the same.
    let host2 = d.path().join("host2.git");
    let c2 = collect(&ws, &host2, base, base, "1.1", &Limits::default(), 0, None).unwrap();
    assert_eq!(c2.head, c.head);
    assert!(size_of(&host2) > 3 << 20);
}

#[test]
fn the_guest_cannot_use_the_shared_store_to_name_or_swap_objects() {
    let d = tempfile::tempdir().unwrap();
    let (user, base) = user_repo(d.path());
    let ws = d.path().join("ws");
    let created = create_workspace(&user, "main", &ws, false, 1).unwrap();
    let pack = created.pack.clone().unwrap();
    let r = Repository::open(&user).unwrap();
    let elsewhere = r.refname_to_id("refs/heads/elsewhere").unwrap();

    // The guest points HEAD at a commit only the user's repo has (it learned the id
    // somehow): not taken, since the workspace does not contain it.
    std::fs::write(ws.join(".git/refs/heads/berth"), format!("{elsewhere}\n")).unwrap();
    // And rewrites the pack named like Berth's with garbage: never read.
    let pack_file = ws.join(format!(".git/objects/pack/{pack}.pack"));
    let mut perms = std::fs::metadata(&pack_file).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    std::fs::set_permissions(&pack_file, perms).unwrap();
    std::fs::write(&pack_file, b"not a pack").unwrap();
    work(&ws);
    let host = d.path().join("host.git");
    let shared = BaseObjects {
        repo: &user,
        pack: &pack,
    };
    let c = collect(
        &ws,
        &host,
        base,
        base,
        "1.1",
        &Limits::default(),
        0,
        Some(shared),
    )
    .unwrap();
    assert!(
        c.warnings.iter().any(|w| w.contains("does not contain")),
        "{:?}",
        c.warnings
    );
    assert_ne!(c.head, elsewhere);
    let host_repo = Repository::open_bare(&host).unwrap();
    let head = host_repo.find_commit(c.head).unwrap();
    assert_eq!(head.parent_id(0).unwrap(), base);
}

#[test]
fn without_the_user_repo_everything_is_copied_as_before() {
    let d = tempfile::tempdir().unwrap();
    let (user, base) = user_repo(d.path());
    let ws = d.path().join("ws");
    let created = create_workspace(&user, "main", &ws, false, 1).unwrap();
    let pack = created.pack.clone().unwrap();
    work(&ws);
    // The repo was moved away since the attempt started.
    let moved = d.path().join("moved");
    std::fs::rename(&user, &moved).unwrap();
    let host = d.path().join("host.git");
    let shared = BaseObjects {
        repo: &user,
        pack: &pack,
    };
    let c = collect(
        &ws,
        &host,
        base,
        base,
        "1.1",
        &Limits::default(),
        0,
        Some(shared),
    )
    .unwrap();
    assert!(!host.join("objects/info/alternates").exists());
    assert!(size_of(&host) > 3 << 20);
    // A repo that exists but lacks the base (another project) falls back the same way.
    let other = d.path().join("other");
    berth_git::init_repo_with_files(&other, &[("x.txt", "another project\n", false)], "x\n")
        .unwrap();
    let host2 = d.path().join("host2.git");
    let wrong = BaseObjects {
        repo: &other,
        pack: &pack,
    };
    let c2 = collect(
        &ws,
        &host2,
        base,
        base,
        "1.1",
        &Limits::default(),
        0,
        Some(wrong),
    )
    .unwrap();
    assert_eq!(c2.head, c.head);
    assert!(size_of(&host2) > 3 << 20);
}
