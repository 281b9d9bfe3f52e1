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
            if fingerprint != last {
                last = fingerprint;
                let _ = handle.emit("state-changed", ());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    });
}
