//! `berth.toml`, which an agent can write: parsed, validated, and what it asks for derived.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        berth_core::fuzz::berth_toml(text);
    }
});
