//! The bundled demo repo (made by the core, shared with the app's "Try the demo").

use std::path::{Path, PathBuf};

use anyhow::Result;

/// Creates the demo repo at `dir` on first use and returns its path; later runs reuse it, so
/// their branches accumulate there.
pub fn ensure_demo_repo(dir: &Path) -> Result<PathBuf> {
    let (path, made) = berth_core::ensure_demo_repo(dir)?;
    if made {
        eprintln!("berth: created the demo repo in {}", path.display());
    }
    Ok(path)
}
