//! Attempt workspaces and results, with git2 only.
//!
//! - [`create_workspace`]: a standalone repository holding just the base commit (and its
//!   tree), checked out in the attempt's directory; nothing in it points back to the user's
//!   repository. It is what the guest sees at `/work`.
//! - [`collect`]: after the guest is done, treat the workspace's `.git` as hostile data:
//!   copy its objects (regular files only, no symlinks, capped) into a host-private bare
//!   repository, check that the result descends from the base and that every new object is
//!   sane, and commit leftover changes with the host's own config (never the workspace's).
//! - [`import`]: re-create the result's commits in the user's repository with a
//!   `Berth-Attempt` trailer and point a new branch at them. No hooks, filters or config from
//!   the workspace are involved at any step; libgit2 runs no hooks at all.

mod checkout;
mod collect;
mod compare;
mod error;
mod files_at;
mod fsck;
mod guest_head;
mod import;
mod limits;
mod merge;
mod refs;
mod workspace;

pub use checkout::{Checkout, check_out_branch, remove_checkout};
pub use collect::{BaseObjects, Collected, collect, diff_patch, tree_of};
pub use compare::diff_between;
pub use error::GitError;
pub use files_at::{files_at, resolve_commit};
pub use git2::Oid;
pub use import::{Imported, Replaced, already_imported, branch_is_at, import};
pub use limits::Limits;
pub use merge::{Merged, merge_into, merge_target};
pub use refs::held_by_a_ref;
pub use workspace::{
    CreatedWorkspace, DEFAULT_HISTORY, HISTORY_BUDGET, branches, create_workspace,
    init_repo_with_files, repo_root,
};

/// Author and committer of commits Berth makes for an attempt.
pub const AGENT_NAME: &str = "Berth agent";
pub const AGENT_EMAIL: &str = "agent@berth.invalid";
/// The trailer linking an imported commit to its attempt.
pub const TRAILER: &str = "Berth-Attempt";

/// Entry points for `cargo fuzz` (`fuzz/`): the checks a guest's repository reaches.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz {
    /// A tree entry's name (dot-git in any spelling, separators, NUL).
    pub fn tree_entry_name(raw: &[u8]) {
        let _ = crate::fsck::check_name(raw, &String::from_utf8_lossy(raw));
    }

    /// The guest's `HEAD`, a loose branch and `packed-refs`, read from `git_dir` after the
    /// caller wrote them there.
    pub fn guest_head(git_dir: &std::path::Path) {
        let _ = crate::guest_head::read_guest_head(git_dir);
    }
}
