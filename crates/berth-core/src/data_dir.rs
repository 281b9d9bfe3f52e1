//! The layout of Berth's data directory.

use std::path::{Path, PathBuf};

/// Berth's data directory (`$XDG_DATA_HOME/berth` by default; chosen by the binary).
///
/// ```text
/// <data>/images/   built guest images (see berth_vm::image)
/// <data>/run/      one run directory per running VM (see berth_vm::rundir)
/// <data>/logs/     guest consoles kept after a VM failed
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn images(&self) -> PathBuf {
        self.root.join("images")
    }
    pub fn run(&self) -> PathBuf {
        self.root.join("run")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_lives_under_the_root() {
        let d = DataDir::new("/d");
        for p in [d.images(), d.run(), d.logs()] {
            assert!(p.starts_with("/d"));
        }
    }
}
