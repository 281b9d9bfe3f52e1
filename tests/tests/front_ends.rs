//! The CLI and the app are two thin front ends over one core: neither depends on a crate
//! below it, so a safety rule put in `berth-core` (liveness before a read, confirmation of
//! a discard, trust of a repo's config) cannot be bypassed by one of them.

use std::path::PathBuf;

fn berth_deps(manifest: &str) -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(manifest);
    let toml: toml::Value = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    let mut deps: Vec<String> = ["dependencies", "build-dependencies"]
        .iter()
        .filter_map(|section| toml.get(section).and_then(|d| d.as_table()))
        .flat_map(|t| t.keys().cloned())
        .filter(|k| k.starts_with("berth-"))
        .collect();
    deps.sort();
    deps
}

#[test]
fn the_cli_and_the_app_depend_on_the_core_alone() {
    assert_eq!(berth_deps("../crates/berth-cli/Cargo.toml"), ["berth-core"]);
    assert_eq!(berth_deps("../src-tauri/Cargo.toml"), ["berth-core"]);
}
