//! Tells the window when the state database changed (any writer: the app, the CLI, a
//! supervisor), so the views refresh within half a second without polling from JS.

use std::time::Duration;

use tauri::{AppHandle, Emitter, Manager};

use crate::App;

pub fn start(handle: AppHandle) {
    std::thread::spawn(move || {
        let mut last = String::new();
        loop {
            let fingerprint = {
                let app = handle.state::<App>();
                app.store
                    .db()
                    .and_then(|db| db.attempts())
                    .map(|all| {
                        all.iter()
                            .map(|a| {
                                format!("{}:{}:{}:{:?}", a.id, a.state, a.updated_at, a.branch)
                            })
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default()
            };
            // Stay attached to every running attempt, so its approval requests reach us.
            {
                let app = handle.state::<App>();
                let running: Vec<String> = app
                    .store
                    .db()
                    .and_then(|db| db.attempts())
                    .map(|all| {
                        all.iter()
                            .filter(|a| a.state == berth_core::AttemptState::Running)
                            .map(|a| a.id.to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                for id in running {
                    let known = app
                        .terminals
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .contains_key(&id);
                    if !known {
                        let _ = crate::commands::terminal(&app, &handle, &id);
                    }
                }
            }
            if fingerprint != last {
                last = fingerprint;
                let _ = handle.emit("state-changed", ());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    });
}
