//! The git import's checks on what the guest left: a tree entry's name, and its HEAD, loose
//! branch and packed-refs (input split at 0xff bytes), read from a real directory.
#![no_main]

use libfuzzer_sys::fuzz_target;

thread_local! {
    static GIT_DIR: tempfile::TempDir = tempfile::tempdir().expect("a temporary directory");
}

fuzz_target!(|data: &[u8]| {
    berth_git::fuzz::tree_entry_name(data);
    GIT_DIR.with(|dir| {
        let git = dir.path();
        let mut parts = data.split(|&b| b == 0xff);
        let head = parts.next().unwrap_or_default();
        let loose = parts.next().unwrap_or_default();
        let packed = parts.next().unwrap_or_default();
        std::fs::create_dir_all(git.join("refs/heads")).expect("refs/heads");
        std::fs::write(git.join("HEAD"), head).expect("HEAD");
        std::fs::write(git.join("refs/heads/main"), loose).expect("a loose ref");
        std::fs::write(git.join("packed-refs"), packed).expect("packed-refs");
        berth_git::fuzz::guest_head(git);
    });
});
