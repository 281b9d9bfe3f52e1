//! Tells the window when the state database changed (any writer: the app, the CLI, a
//! supervisor) or an attempt's terminal started or stopped waiting for input, so the views
//! refresh within half a second without polling from JS; raises OS notifications when
//! attempts finish or fail; stays attached to running attempts so their approval requests
//! reach the window.

use std::collections::HashMap;
use std::time::Duration;

use tauri::{AppHandle, Emitter, Manager};

use crate::App;
use crate::notify::{Seen, notices, show};

/// Every attempt's state by id, and a fingerprint that changes with any row change.
fn snapshot(app: &App) -> Option<(HashMap<String, Seen>, String)> {
    let db = app.store.db().ok()?;
    let titles: HashMap<u32, String> = db
        .tasks()
        .ok()?
        .into_iter()
        .map(|t| (t.id, t.title))
        .collect();
    let mut fingerprint = String::new();
    let mut seen = HashMap::new();
    for a in db.attempts().ok()? {
        // Pulls change the row but not the state: part of the fingerprint too; and a live
        // attempt's terminal waiting for input (a marker file, not a row).
        let input = a.state.is_live() && app.store.waiting_input(a.id);
        // And the files a live attempt is changing (the supervisor's live-changes count).
        let changing = if a.state.is_live() {
            berth_core::live_changes(&app.store, a.id).map(|c| c.files)
        } else {
            None
        };
        fingerprint += &format!(
            "{}:{}:{}:{:?}:{input}:{changing:?},",
            a.id, a.state, a.updated_at, a.branch
        );
        seen.insert(
            a.id.to_string(),
            Seen {
                state: a.state.to_string(),
                exit_code: a.exit_code,
                error: a.error.clone(),
                title: titles.get(&a.id.task).cloned().unwrap_or_default(),
            },
        );
    }
    Some((seen, fingerprint))
}

pub fn start(handle: AppHandle) {
    std::thread::spawn(move || {
        let mut last: Option<(HashMap<String, Seen>, String)> = None;
        loop {
            let app = handle.state::<App>();
            if let Some((now, fingerprint)) = snapshot(&app) {
                if let Some((before, _)) = &last {
                    for n in notices(before, &now) {
                        show(n);
                    }
                }
                // Stay attached to every running attempt, so its approval requests reach us.
                for (id, seen) in &now {
                    let known = app
                        .terminals
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .contains_key(id);
                    if seen.state == "running" && !known {
                        let _ = crate::commands::terminal(&app, &handle, id);
                    }
                }
                let changed = last.as_ref().map(|(_, f)| f) != Some(&fingerprint);
                last = Some((now, fingerprint));
                if changed {
                    let _ = handle.emit("state-changed", ());
                }
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    });
}
