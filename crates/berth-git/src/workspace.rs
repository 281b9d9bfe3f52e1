//! Creating an attempt's workspace from the user's repository.

use std::path::{Path, PathBuf};

use git2::{Oid, Repository, Signature, StatusOptions, build::CheckoutBuilder};

use crate::error::{GitError, io};
use crate::{AGENT_EMAIL, AGENT_NAME};

/// The branch the guest works on inside the workspace.
pub const WORKSPACE_BRANCH: &str = "refs/heads/berth";

#[derive(Debug, Clone)]
pub struct CreatedWorkspace {
    pub dir: PathBuf,
    /// The base commit in the user's repository.
    pub base: Oid,
    /// What the workspace starts at: the base, or a snapshot of uncommitted changes on it.
    pub start: Oid,
    /// The user's working tree had uncommitted changes that were *not* included.
    pub left_out_uncommitted: bool,
    /// The name (`pack-<hex>`) of the pack Berth wrote into the workspace: everything in it
    /// is in the user's repository too (see [`crate::BaseObjects`]).
    pub pack: Option<String>,
}

/// How many commits of history a workspace gets by default: enough for `git log` and `git
/// blame` on recent work, small enough that creating one stays quick.
pub const DEFAULT_HISTORY: u32 = 50;

/// Creates `dest` as a standalone repository holding `base` and the commits up to `history`
/// generations deep (1: the base alone; fewer when older file versions would pass
/// [`HISTORY_BUDGET`]), each with its tree, marked shallow at its edge (so
/// the guest's git knows there is more and never asks for it), checked out on branch
/// `berth`. Nothing in it names the user's repository. The user's repository is only read.
///
/// With `include_uncommitted`, the user's uncommitted changes (tracked and untracked, minus
/// ignored files) become one snapshot commit on top of the base in the workspace; the user's
/// index and working tree are left as they are.
pub fn create_workspace(
    repo_path: &Path,
    base: &str,
    dest: &Path,
    include_uncommitted: bool,
    history: u32,
) -> Result<CreatedWorkspace, GitError> {
    let user = Repository::open(repo_path).map_err(|source| GitError::NotARepo {
        path: repo_path.to_path_buf(),
        cause: source.into(),
    })?;
    let no_base = || GitError::NoSuchBase {
        repo: repo_path.to_path_buf(),
        base: base.to_string(),
    };
    let base_commit = user
        .revparse_single(base)
        .and_then(|o| o.peel_to_commit())
        .map_err(|_| no_base())?;
    let dirty = is_dirty(&user)?;

    std::fs::create_dir_all(dest).map_err(io("cannot create", dest))?;
    let ws = Repository::init(dest)?;
    {
        let mut cfg = ws.config()?;
        cfg.set_str("user.name", AGENT_NAME)?;
        cfg.set_str("user.email", AGENT_EMAIL)?;
    }
    let (commits, edge) = history_of(&user, base_commit.id(), history.max(1))?;
    let mut pb = user.packbuilder()?;
    for c in &commits {
        pb.insert_commit(*c)?;
    }
    let snapshot_tree = if include_uncommitted && dirty {
        let tree = snapshot_tree(&user)?;
        pb.insert_tree(tree)?;
        Some(tree)
    } else {
        None
    };
    let mut buf = git2::Buf::new();
    pb.write_buf(&mut buf)?;
    let odb = ws.odb()?;
    let mut writer = odb.packwriter()?;
    std::io::Write::write_all(&mut writer, &buf).map_err(io("cannot write pack into", dest))?;
    writer.commit()?;
    let pack = written_pack(&dest.join(".git/objects/pack"));

    let start = match snapshot_tree {
        Some(tree_id) => {
            let tree = ws.find_tree(tree_id)?;
            let base_in_ws = ws.find_commit(base_commit.id())?;
            let sig = Signature::now(AGENT_NAME, AGENT_EMAIL)?;
            ws.commit(
                None,
                &sig,
                &sig,
                "Uncommitted changes from the repo (--include-uncommitted)\n",
                &tree,
                &[&base_in_ws],
            )?
        }
        None => base_commit.id(),
    };
    // The commits whose parents are not here: the guest's git sees the history end there.
    if !edge.is_empty() {
        let shallow = dest.join(".git/shallow");
        let text: String = edge.iter().map(|c| format!("{c}\n")).collect();
        std::fs::write(&shallow, text).map_err(io("cannot write", &shallow))?;
    }
    ws.reference(WORKSPACE_BRANCH, start, true, "berth: start of the attempt")?;
    ws.set_head(WORKSPACE_BRANCH)?;
    ws.checkout_head(Some(CheckoutBuilder::new().force()))?;
    Ok(CreatedWorkspace {
        dir: dest.to_path_buf(),
        base: base_commit.id(),
        start,
        left_out_uncommitted: dirty && !include_uncommitted,
        pack,
    })
}

/// The one pack in a new repository's `objects/pack`.
fn written_pack(dir: &Path) -> Option<String> {
    let mut packs = std::fs::read_dir(dir).ok()?.flatten().filter_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        name.strip_suffix(".pack").map(str::to_string)
    });
    let one = packs.next()?;
    packs.next().is_none().then_some(one)
}

/// The most bytes of older file versions the history may bring (each generation's files
/// that differ from what the workspace has already): a repo that rewrote a large binary in
/// every commit gets fewer generations, not a slow start.
pub const HISTORY_BUDGET: u64 = 16 << 20;

/// The commits at most `depth` generations from `base` (the base is the first), breadth
/// first over every parent, stopping before the generation that would take the older file
/// versions past [`HISTORY_BUDGET`]; and those among them with a parent left out (the
/// shallow edge).
fn history_of(user: &Repository, base: Oid, depth: u32) -> Result<(Vec<Oid>, Vec<Oid>), GitError> {
    let mut seen = std::collections::HashSet::from([base]);
    let mut order = vec![base];
    let mut frontier = vec![base];
    let mut spent = 0u64;
    let odb = user.odb()?;
    for _ in 1..depth {
        let mut next = Vec::new();
        let mut cost = 0u64;
        for c in &frontier {
            let child = user.find_commit(*c)?;
            for p in child.parent_ids() {
                if seen.contains(&p) || next.contains(&p) {
                    continue;
                }
                // What the parent holds that its child does not: the old side of the diff.
                let parent = user.find_commit(p)?;
                let diff =
                    user.diff_tree_to_tree(Some(&parent.tree()?), Some(&child.tree()?), None)?;
                for d in diff.deltas() {
                    let old = d.old_file();
                    if old.exists() && !old.id().is_zero() {
                        cost += odb.read_header(old.id()).map(|(size, _)| size as u64)?;
                    }
                }
                next.push(p);
            }
        }
        if next.is_empty() || spent + cost > HISTORY_BUDGET {
            break;
        }
        spent += cost;
        seen.extend(&next);
        order.extend(&next);
        frontier = next;
    }
    let mut edge = Vec::new();
    for c in &order {
        if user
            .find_commit(*c)?
            .parent_ids()
            .any(|p| !seen.contains(&p))
        {
            edge.push(*c);
        }
    }
    Ok((order, edge))
}

fn is_dirty(repo: &Repository) -> Result<bool, GitError> {
    if repo.is_bare() {
        return Ok(false);
    }
    let mut opts = StatusOptions::new();
    opts.include_untracked(true).exclude_submodules(true);
    Ok(!repo.statuses(Some(&mut opts))?.is_empty())
}

/// A tree of the user's working directory as it is now, written to the user's object
/// database (new blobs only; nothing references them) without writing the user's index.
fn snapshot_tree(user: &Repository) -> Result<Oid, GitError> {
    let mut index = user.index()?; // an in-memory copy; never written back
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None)?;
    index.update_all(["*"], None)?;
    Ok(index.write_tree()?)
}

/// Makes a new repository at `dir` with `files` committed on `main` (the demo repo, tests).
pub fn init_repo_with_files(
    dir: &Path,
    files: &[(&str, &str, bool)],
    message: &str,
) -> Result<Oid, GitError> {
    std::fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
    let mut opts = git2::RepositoryInitOptions::new();
    opts.initial_head("main");
    let repo = Repository::init_opts(dir, &opts)?;
    for (name, text, executable) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io("cannot create", parent))?;
        }
        std::fs::write(&path, text).map_err(io("cannot write", &path))?;
        if *executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(io("cannot chmod", &path))?;
        }
    }
    let mut index = repo.index()?;
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None)?;
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let sig = Signature::now("Berth demo", "demo@berth.invalid")?;
    Ok(repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &[])?)
}

/// The local branch names of the repository at `repo` (for pickers): the checked-out one
/// first, then the rest sorted.
pub fn branches(repo: &Path) -> Result<Vec<String>, GitError> {
    let r = Repository::open(repo).map_err(|source| GitError::NotARepo {
        path: repo.to_path_buf(),
        cause: source.into(),
    })?;
    let mut names: Vec<String> = r
        .branches(Some(git2::BranchType::Local))?
        .flatten()
        .filter_map(|(b, _)| b.name().ok().flatten().map(str::to_string))
        .collect();
    names.sort();
    // The checked-out branch first: what a new task should start from unless the user
    // picks another (not `berth/1/1`, which sorts first and is an old attempt's result).
    let head = r
        .head()
        .ok()
        .filter(|h| h.is_branch())
        .and_then(|h| h.shorthand().ok().map(str::to_string));
    if let Some(head) = head
        && let Some(i) = names.iter().position(|n| *n == head)
    {
        let h = names.remove(i);
        names.insert(0, h);
    }
    Ok(names)
}

/// The top folder of the non-bare repository that contains `path` (a sub-folder counts).
pub fn repo_root(path: &Path) -> Result<PathBuf, GitError> {
    let r = Repository::discover(path).map_err(|source| GitError::NotARepo {
        path: path.to_path_buf(),
        cause: source.into(),
    })?;
    match r.workdir() {
        Some(w) => Ok(w.canonicalize().unwrap_or_else(|_| w.to_path_buf())),
        None => Err(GitError::NotARepo {
            path: path.to_path_buf(),
            cause: git2::Error::from_str("a bare repository has no files to work on").into(),
        }),
    }
}
