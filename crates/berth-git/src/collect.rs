//! Bringing an attempt's result into a host-private repository, treating the workspace's
//! `.git` as hostile data.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use git2::{Oid, Repository, Signature};

use crate::error::{GitError, io};
use crate::fsck::{self, Budget};
use crate::guest_head::{open_regular, read_guest_head};
use crate::{AGENT_EMAIL, AGENT_NAME, Limits, TRAILER};

/// The ref in the host repository that holds the collected result.
const RESULT_REF: &str = "refs/heads/result";

#[derive(Debug, Clone)]
pub struct Collected {
    /// The result commit, in the host repository.
    pub head: Oid,
    pub base: Oid,
    /// Where the attempt's own work starts: the base, or the snapshot of the user's
    /// uncommitted changes on it (`--include-uncommitted`). Counts and diffs start here, so
    /// the user's own edits are not shown as the attempt's work.
    pub start: Oid,
    /// New commits from the base (exclusive) to the head, oldest first.
    pub commits: Vec<Oid>,
    /// Whether Berth committed uncommitted leftovers.
    pub committed_leftovers: bool,
    /// Things the guest did that Berth ignored, for the user to know.
    pub warnings: Vec<String>,
}

/// The user's repository, standing in for the pack Berth wrote into the workspace when it
/// made it: `host.git` reads those objects from the user's object store (host-side; the
/// guest never reaches it) instead of copying them out of the workspace again, so a large
/// base is not stored a third time per attempt.
#[derive(Debug, Clone, Copy)]
pub struct BaseObjects<'a> {
    /// The user's repository (only read).
    pub repo: &'a Path,
    /// That pack's name (`pack-<hex>`, see [`crate::CreatedWorkspace::pack`]), kept on the
    /// host's side: a file of that name in the workspace is not copied, whatever it holds.
    pub pack: &'a str,
}

/// Collects the workspace's result into `host_git` (a bare repository only the host uses).
///
/// The guest's commits are used when its `HEAD` can be read safely; otherwise the result
/// starts from `start` and a warning says why. Uncommitted changes in the working tree are
/// committed on top with the host's config (the workspace's `.git/config` is never read;
/// symlinks are stored as links, never followed), dated `leftovers_at` (Unix seconds, the
/// caller's clock: this library reads none). Idempotent.
///
/// With `shared`, the base's objects are read from the user's repository (see
/// [`BaseObjects`]); the guest's own commits must still come from the workspace. Should
/// anything fail that way (the user's repository moved, or pruned what the attempt
/// started from), the collect is done again copying everything, which decides.
#[allow(clippy::too_many_arguments)]
pub fn collect(
    workspace: &Path,
    host_git: &Path,
    base: Oid,
    start: Oid,
    attempt: &str,
    limits: &Limits,
    leftovers_at: i64,
    shared: Option<BaseObjects>,
) -> Result<Collected, GitError> {
    let once = |shared| {
        collect_once(
            workspace,
            host_git,
            base,
            start,
            attempt,
            limits,
            leftovers_at,
            shared,
        )
    };
    match once(shared) {
        Err(_) if shared.is_some() => once(None),
        done => done,
    }
}

#[allow(clippy::too_many_arguments)]
fn collect_once(
    workspace: &Path,
    host_git: &Path,
    base: Oid,
    start: Oid,
    attempt: &str,
    limits: &Limits,
    leftovers_at: i64,
    shared: Option<BaseObjects>,
) -> Result<Collected, GitError> {
    let alternates = host_git.join("objects/info/alternates");
    let user_objects = shared.and_then(|b| user_objects(b.repo));
    let skip = user_objects.as_ref().and(shared.map(|b| b.pack));
    // Without the user's objects first: the guest's HEAD and new commits must be its own.
    open_or_init_bare(host_git)?;
    if alternates.exists() {
        std::fs::remove_file(&alternates).map_err(io("cannot remove", &alternates))?;
    }
    copy_guest_objects(workspace, host_git, limits, skip)?;
    let own = Repository::open_bare(host_git)?;
    let mut warnings = Vec::new();

    let mut head = match read_guest_head(&workspace.join(".git")) {
        Ok(id) if id == base || id == start || own.find_commit(id).is_ok() => id,
        Ok(id) => {
            warnings.push(format!(
                "the workspace's HEAD names {id}, which it does not contain; using the start"
            ));
            start
        }
        Err(why) => {
            warnings.push(format!(
                "ignored the workspace's HEAD ({why}); using the start"
            ));
            start
        }
    };
    let mut commits = new_commits(&own, head, base, limits)?;
    drop(own);
    let host = match &user_objects {
        Some(dir) => {
            if let Some(parent) = alternates.parent() {
                std::fs::create_dir_all(parent).map_err(io("cannot create", parent))?;
            }
            std::fs::write(&alternates, format!("{}\n", dir.display()))
                .map_err(io("cannot write", &alternates))?;
            Repository::open_bare(host_git)?
        }
        None => Repository::open_bare(host_git)?,
    };
    let mut known = HashSet::new();
    fsck::collect_tree_ids(
        &host,
        host.find_commit(base)?.tree_id(),
        &mut known,
        limits.max_tree_depth,
    )?;
    let mut budget = Budget::default();
    for c in &commits {
        fsck::check_commit(&host, *c, &mut known, &mut budget, limits)?;
    }

    warnings.extend(neutralize_rule_symlinks(workspace)?);
    let leftovers = commit_leftovers(&host, workspace, head, attempt, leftovers_at)?;
    if let Some(id) = leftovers {
        fsck::check_commit(&host, id, &mut known, &mut budget, limits)?;
        head = id;
        commits.push(id);
    }
    host.reference(RESULT_REF, head, true, "berth: collected result")?;
    // The snapshot counts as the start only if the result builds on it.
    let start = if start != base && commits.contains(&start) {
        start
    } else {
        base
    };
    Ok(Collected {
        head,
        base,
        start,
        commits,
        committed_leftovers: leftovers.is_some(),
        warnings,
    })
}

/// The object store of the user's repository at `repo`, if it is one and its path can be
/// written into an alternates file.
fn user_objects(repo: &Path) -> Option<PathBuf> {
    let r = Repository::open(repo).ok()?;
    let dir = r.commondir().join("objects");
    let text = dir.to_str()?;
    (dir.is_absolute() && dir.is_dir() && !text.contains('\n')).then_some(dir)
}

fn open_or_init_bare(path: &Path) -> Result<Repository, GitError> {
    if path.join("HEAD").is_file() {
        return Ok(Repository::open_bare(path)?);
    }
    let repo = Repository::init_bare(path)?;
    let mut cfg = repo.config()?;
    cfg.set_bool("core.autocrlf", false)?;
    cfg.set_bool("core.symlinks", true)?;
    Ok(repo)
}

static TEMP_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Copies the loose objects and packs of `workspace/.git/objects` into `host_git/objects`:
/// regular files only, never through a symlink, `info/` (alternates) ignored, capped.
/// `skip` names the pack Berth wrote at creation (read from the user's repository instead).
fn copy_guest_objects(
    workspace: &Path,
    host_git: &Path,
    limits: &Limits,
    skip: Option<&str>,
) -> Result<(), GitError> {
    for dir in [".git", ".git/objects"] {
        let p = workspace.join(dir);
        let meta = std::fs::symlink_metadata(&p).map_err(io("cannot read", &p))?;
        if meta.file_type().is_symlink() || !meta.is_dir() {
            return Err(GitError::Hostile(format!("{dir} is not a directory")));
        }
    }
    let objects = workspace.join(".git/objects");
    let mut total = 0u64;
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(&objects).map_err(io("cannot list", &objects))? {
        let entry = entry.map_err(io("cannot list", &objects))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ft = entry
            .file_type()
            .map_err(io("cannot stat", &entry.path()))?;
        let wanted =
            (name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit())) || name == "pack";
        if !wanted {
            continue; // info/ (alternates), tmp files: never read
        }
        if ft.is_symlink() || !ft.is_dir() {
            return Err(GitError::Hostile(format!(
                ".git/objects/{name} is not a directory"
            )));
        }
        for inner in std::fs::read_dir(entry.path()).map_err(io("cannot list", &entry.path()))? {
            let inner = inner.map_err(io("cannot list", &entry.path()))?;
            let iname = inner.file_name().to_string_lossy().into_owned();
            let skipped = skip.is_some_and(|p| {
                iname.strip_suffix(".pack").or(iname.strip_suffix(".idx")) == Some(p)
            });
            let ok = if name == "pack" {
                !skipped
                    && iname.starts_with("pack-")
                    && (iname.ends_with(".pack") || iname.ends_with(".idx"))
            } else {
                iname.len() == 38 && iname.bytes().all(|b| b.is_ascii_hexdigit())
            };
            if !ok {
                continue;
            }
            let ift = inner
                .file_type()
                .map_err(io("cannot stat", &inner.path()))?;
            if ift.is_symlink() {
                return Err(GitError::Hostile(format!(
                    ".git/objects/{name}/{iname} is a symlink"
                )));
            }
            files.push(PathBuf::from(".git/objects").join(&name).join(&iname));
        }
    }
    for rel in files {
        let dest = host_git.join(rel.strip_prefix(".git").unwrap_or(&rel));
        if dest.exists() {
            continue;
        }
        let mut src = open_regular(workspace, &rel).map_err(GitError::Hostile)?;
        let len = src.metadata().map_err(io("cannot stat", &rel))?.len();
        total += len;
        if total > limits.max_total_bytes {
            return Err(GitError::TooLarge(format!(
                "the workspace's objects exceed {} bytes",
                limits.max_total_bytes
            )));
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io("cannot create", parent))?;
        }
        // A name of its own: two collects at once must not write into one temporary file.
        let tmp = dest.with_extension(format!(
            "partial-{}-{}",
            std::process::id(),
            TEMP_SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let mut out = std::fs::File::create(&tmp).map_err(io("cannot create", &tmp))?;
        std::io::copy(&mut std::io::Read::take(&mut src, len), &mut out)
            .map_err(io("cannot copy", &rel))?;
        std::fs::rename(&tmp, &dest).map_err(io("cannot move", &tmp))?;
    }
    Ok(())
}

/// New commits from `base` (exclusive) to `head`, parents first. Every path from `head`
/// must end at `base`: a root commit, or a missing parent, means history was rewritten.
fn new_commits(
    repo: &Repository,
    head: Oid,
    base: Oid,
    limits: &Limits,
) -> Result<Vec<Oid>, GitError> {
    let not_descendant = || GitError::NotDescendant {
        base: base.to_string(),
    };
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    // Iterative post-order DFS.
    let mut stack = vec![(head, false)];
    while let Some((id, expanded)) = stack.pop() {
        if id == base {
            continue;
        }
        if expanded {
            order.push(id);
            continue;
        }
        if !seen.insert(id) {
            continue;
        }
        if seen.len() as u64 > limits.max_commits {
            return Err(GitError::TooLarge(format!(
                "more than {} new commits",
                limits.max_commits
            )));
        }
        let commit = repo.find_commit(id).map_err(|_| not_descendant())?;
        if commit.parent_count() == 0 {
            return Err(not_descendant());
        }
        stack.push((id, true));
        for p in commit.parent_ids() {
            if !seen.contains(&p) {
                stack.push((p, false));
            }
        }
    }
    Ok(order)
}

/// `.gitignore`/`.gitattributes` symlinks would make libgit2 read a host file as rules:
/// remove them from the workspace (they are the guest's doing) and say so.
fn neutralize_rule_symlinks(workspace: &Path) -> Result<Vec<String>, GitError> {
    let mut warnings = Vec::new();
    let mut stack = vec![workspace.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() && name != ".git" {
                stack.push(entry.path());
            } else if ft.is_symlink() && (name == ".gitignore" || name == ".gitattributes") {
                let rel = entry
                    .path()
                    .strip_prefix(workspace)
                    .unwrap_or(&entry.path())
                    .to_path_buf();
                std::fs::remove_file(entry.path()).map_err(io("cannot remove", &entry.path()))?;
                warnings.push(format!(
                    "removed {} (a symlink; Berth does not follow it)",
                    rel.display()
                ));
            }
        }
    }
    Ok(warnings)
}

fn commit_leftovers(
    host: &Repository,
    workspace: &Path,
    head: Oid,
    attempt: &str,
    at: i64,
) -> Result<Option<Oid>, GitError> {
    host.set_workdir(workspace, false)?;
    let head_commit = host.find_commit(head)?;
    let mut index = host.index()?;
    index.clear()?;
    index.read_tree(&head_commit.tree()?)?;
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None)?;
    index.update_all(["*"], None)?;
    let tree_id = index.write_tree()?;
    if tree_id == head_commit.tree_id() {
        return Ok(None);
    }
    let tree = host.find_tree(tree_id)?;
    // The caller's time (when the attempt ended), not this library's clock: the same
    // workspace always gives the same commit.
    let sig = Signature::new(AGENT_NAME, AGENT_EMAIL, &git2::Time::new(at, 0))?;
    let msg = format!("Uncommitted changes of attempt {attempt}\n\n{TRAILER}: {attempt}\n");
    Ok(Some(host.commit(
        None,
        &sig,
        &sig,
        &msg,
        &tree,
        &[&head_commit],
    )?))
}

/// The unified diff from `base` to `head` in the host repository, and (files, +, -).
pub fn diff_patch(
    host_git: &Path,
    base: Oid,
    head: Oid,
) -> Result<(String, (usize, usize, usize)), GitError> {
    let repo = Repository::open_bare(host_git)?;
    crate::compare::patch(&repo, base, head)
}

/// The tree id of `commit` in the repository at `repo` (bare or not).
pub fn tree_of(repo: &Path, commit: Oid) -> Result<Oid, GitError> {
    let r = Repository::open(repo)?;
    Ok(r.find_commit(commit)?.tree_id())
}
