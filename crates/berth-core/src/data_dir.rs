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

    /// Where Berth keeps its data, for every front end alike: `flag` (`--data-dir`), else
    /// `$BERTH_DATA_DIR`, else `$XDG_DATA_HOME/berth`, else `$HOME/.local/share/berth`; a
    /// relative path is taken from `cwd`. `env` looks a variable up (the binaries pass the
    /// process environment; this crate reads none itself).
    pub fn resolve(
        flag: Option<PathBuf>,
        env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
        cwd: &Path,
    ) -> Result<DataDir, String> {
        let set = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let root = match flag.or_else(|| set("BERTH_DATA_DIR")) {
            Some(p) => p,
            None => match (set("XDG_DATA_HOME"), set("HOME")) {
                (Some(x), _) => x.join("berth"),
                (None, Some(h)) => h.join(".local/share/berth"),
                (None, None) => {
                    return Err("neither XDG_DATA_HOME nor HOME is set; pass --data-dir".into());
                }
            },
        };
        Ok(DataDir::new(if root.is_absolute() {
            root
        } else {
            cwd.join(root)
        }))
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
    fn resolution_order_is_flag_env_xdg_home_and_relative_paths_are_made_absolute() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        let cwd = Path::new("/cwd");
        let all: &[(&str, &str)] = &[
            ("BERTH_DATA_DIR", "/b"),
            ("XDG_DATA_HOME", "/x"),
            ("HOME", "/h"),
        ];
        let r = |flag: Option<&str>, vars| {
            DataDir::resolve(flag.map(PathBuf::from), &env(vars), cwd)
                .map(|d| d.root().to_path_buf())
        };
        assert_eq!(r(Some("rel"), all).unwrap(), Path::new("/cwd/rel"));
        assert_eq!(r(None, all).unwrap(), Path::new("/b"));
        assert_eq!(
            r(None, &[("XDG_DATA_HOME", "/x"), ("HOME", "/h")]).unwrap(),
            Path::new("/x/berth")
        );
        assert_eq!(
            r(None, &[("XDG_DATA_HOME", ""), ("HOME", "/h")]).unwrap(),
            Path::new("/h/.local/share/berth")
        );
        assert!(r(None, &[]).is_err());
    }

    #[test]
    fn everything_lives_under_the_root() {
        let d = DataDir::new("/d");
        for p in [d.images(), d.run(), d.logs()] {
            assert!(p.starts_with("/d"));
        }
    }
}
