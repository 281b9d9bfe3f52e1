use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum GitError {
    /// libgit2's own words (`message()`, never its "class=…; code=…" suffix), shown once:
    /// no error source, so no chain repeats it.
    #[error("{path} is not a git repository (or cannot be opened): {}", .cause.message())]
    NotARepo { path: PathBuf, cause: NoChain },
    #[error("repo {repo} has no commit '{base}'; pass --base with a branch, tag or commit")]
    NoSuchBase { repo: PathBuf, base: String },
    #[error(
        "repo {repo} has no commits yet: attempts start from a commit, so commit something \
         first (e.g. `git -C {repo} commit --allow-empty -m start`)"
    )]
    NoCommits { repo: PathBuf },
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
    /// Something Berth will not do to the user's repository, in words that say why.
    #[error("{0}")]
    Refused(String),
    #[error("git: {}", .0.message())]
    Git(NoChain),
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

/// A libgit2 error kept as a plain value (not an error source), shown by its message.
#[derive(Debug)]
pub struct NoChain(pub git2::Error);

impl NoChain {
    pub fn message(&self) -> &str {
        self.0.message()
    }
}

impl From<git2::Error> for NoChain {
    fn from(e: git2::Error) -> Self {
        NoChain(e)
    }
}

impl From<git2::Error> for GitError {
    fn from(e: git2::Error) -> Self {
        GitError::Git(NoChain(e))
    }
}
