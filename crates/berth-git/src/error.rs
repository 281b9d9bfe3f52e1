use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum GitError {
    #[error("{path} is not a git repository (or cannot be opened): {source}")]
    NotARepo {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("repo {repo} has no commit '{base}'; pass --base with a branch, tag or commit")]
    NoSuchBase { repo: PathBuf, base: String },
    #[error("the workspace was tampered with: {0}; nothing was imported")]
    Hostile(String),
    #[error(
        "the attempt's result does not descend from the base commit {base} (history was \
         rewritten); nothing was imported"
    )]
    NotDescendant { base: String },
    #[error("the attempt's result is too large: {0}; nothing was imported")]
    TooLarge(String),
    #[error(
        "branch '{0}' already exists in the repo; pass --force to overwrite it or --branch to pick another name"
    )]
    BranchExists(String),
    #[error(
        "branch '{branch}' is checked out at {at}; moving it would leave that checkout's index \
         and files behind (like `git branch -f`, Berth refuses). Switch that checkout to another \
         branch first, or pass --branch to pick another name"
    )]
    BranchCheckedOut { branch: String, at: String },
    #[error("'{0}' is not a valid branch name")]
    BadBranch(String),
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub(crate) fn io(
    what: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> GitError {
    let path = path.to_path_buf();
    move |source| GitError::Io { what, path, source }
}
