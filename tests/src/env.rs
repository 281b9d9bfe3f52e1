//! A hermetic environment per test: own data dir, own HOME, the shared test image.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// `target/` of this workspace, found from the test executable (`target/debug/deps/x`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors()
        .nth(3)
        .expect("test executable lives in target/<profile>/deps")
        .to_path_buf()
}

/// The debug `berth` binary (`cargo build -p berth-cli`; `scripts/test.sh` builds it), for
/// tests and benchmarks alike: a release one may be from an older tree.
pub fn berth_bin() -> PathBuf {
    let bin = target_dir().join("debug/berth");
    assert!(
        bin.is_file(),
        "{} is missing; run scripts/test.sh (or `cargo build -p berth-cli`) first",
        bin.display()
    );
    bin
}

fn shared_images() -> PathBuf {
    let images = target_dir().join("berth-test-data/images");
    let has_image = std::fs::read_dir(&images)
        .map(|mut d| d.any(|e| e.is_ok_and(|e| e.path().join("manifest.json").is_file())))
        .unwrap_or(false);
    assert!(
        has_image,
        "no test image in {}; run scripts/test.sh, which builds it with \
         `berth --data-dir target/berth-test-data image build`",
        images.display()
    );
    images
}

pub struct TestEnv {
    pub data: TempDir,
    pub home: TempDir,
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl TestEnv {
    pub fn new() -> TestEnv {
        // Short paths under /tmp: unix socket paths are limited to 108 bytes.
        let data = tempfile::Builder::new()
            .prefix("bt")
            .tempdir_in("/tmp")
            .unwrap();
        let home = tempfile::Builder::new()
            .prefix("bh")
            .tempdir_in("/tmp")
            .unwrap();
        std::os::unix::fs::symlink(shared_images(), data.path().join("images")).unwrap();
        TestEnv { data, home }
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    pub fn run_dir(&self) -> PathBuf {
        self.data.path().join("run")
    }

    /// `berth --data-dir <ours>` with our HOME and nothing inherited that changes behaviour.
    pub fn berth(&self) -> Command {
        let mut cmd = Command::new(berth_bin());
        cmd.arg("--data-dir")
            .arg(self.data.path())
            .env("HOME", self.home.path())
            .env_remove("BERTH_DATA_DIR")
            .env_remove("XDG_DATA_HOME")
            .env_remove("BERTH_LOG")
            // Secrets go to the kernel keyring (scripts/test.sh runs the suite inside
            // `keyctl session -`), whatever session bus the developer's shell has.
            .env("BERTH_KEYRING", "keyutils");
        if let Some(v) = find_virtiofsd() {
            cmd.env("BERTH_VIRTIOFSD", v);
        }
        cmd
    }

    /// A new empty directory to share into a VM.
    pub fn share(&self) -> TempDir {
        tempfile::Builder::new()
            .prefix("bs")
            .tempdir_in("/tmp")
            .unwrap()
    }
}

/// virtiofsd from PATH or the real user's cargo bin (tests change HOME for berth).
pub fn find_virtiofsd() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut candidates: Vec<PathBuf> = std::env::split_paths(&path)
        .map(|d| d.join("virtiofsd"))
        .collect();
    if let Some(h) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(h).join(".cargo/bin/virtiofsd"));
    }
    candidates.into_iter().find(|p| p.is_file())
}
