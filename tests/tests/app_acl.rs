//! The app's web view may call exactly the commands the app registers, each granted by name:
//! `build.rs` gives Tauri the command list (so it checks every call), the capability grants
//! each one, and nothing broader (no `core:default`, no plugin's JS commands).

use std::collections::BTreeSet;
use std::path::PathBuf;

fn src_tauri() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../src-tauri")
}

fn quoted_in(text: &str) -> BTreeSet<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn the_web_view_can_call_exactly_the_registered_commands() {
    let main = std::fs::read_to_string(src_tauri().join("src/main.rs")).unwrap();
    let start = main.find("generate_handler![").unwrap();
    let end = start + main[start..].find("])").unwrap();
    let registered: BTreeSet<String> = main[start + "generate_handler![".len()..end]
        .split(',')
        .map(|c| c.trim().rsplit("::").next().unwrap().to_string())
        .filter(|c| !c.is_empty())
        .collect();

    let build = std::fs::read_to_string(src_tauri().join("build.rs")).unwrap();
    let list = &build[build.find("const COMMANDS").unwrap()..build.find("];").unwrap()];
    assert_eq!(quoted_in(list), registered, "build.rs's app manifest");

    let cap: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(src_tauri().join("capabilities/default.json")).unwrap(),
    )
    .unwrap();
    let granted: BTreeSet<String> = cap["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().expect("plain permission names only").to_string())
        .collect();
    let mut expected: BTreeSet<String> = registered
        .iter()
        .map(|c| format!("allow-{}", c.replace('_', "-")))
        .collect();
    expected.insert("core:event:allow-listen".into());
    expected.insert("core:event:allow-unlisten".into());
    assert_eq!(granted, expected, "the capability grants exactly these");
}
