//! The bundled demo repo: a tiny Python program with a failing test, and a scripted agent.

use std::path::{Path, PathBuf};

use crate::task::TaskError;

const FILES: &[(&str, &str, bool)] = &[
    (
        ".gitignore",
        include_str!("../../../examples/demo/.gitignore"),
        false,
    ),
    (
        "README.md",
        include_str!("../../../examples/demo/README.md"),
        false,
    ),
    (
        "calc.py",
        include_str!("../../../examples/demo/calc.py"),
        false,
    ),
    (
        "test_calc.py",
        include_str!("../../../examples/demo/test_calc.py"),
        false,
    ),
    (
        ".berth/demo-agent.sh",
        include_str!("../../../examples/demo/.berth/demo-agent.sh"),
        true,
    ),
];

/// Creates the demo repo at `dir` on first use (a real git repository with one commit on
/// `main`) and returns its path; later runs reuse it, so their branches accumulate there.
/// Returns whether it made it now.
pub fn ensure_demo_repo(dir: &Path) -> Result<(PathBuf, bool), TaskError> {
    if dir.join(".git").is_dir() {
        return Ok((dir.to_path_buf(), false));
    }
    crate::init_repo_with_files(dir, FILES, "Calculator with a failing test\n").map_err(|e| {
        TaskError::Refused(format!(
            "cannot create the demo repo in {}: {e}",
            dir.display()
        ))
    })?;
    Ok((dir.to_path_buf(), true))
}

/// Where the demo repo lives: `demo` in the data directory.
pub fn demo_repo_dir(store: &crate::Store) -> PathBuf {
    store.data().root().join("demo")
}
