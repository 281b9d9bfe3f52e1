//! The egress proxy's request head (plain HTTP in absolute form, CONNECT), and the host and
//! allow rule checks behind it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    berth_egress::fuzz::request_head(data);
    let text = String::from_utf8_lossy(data);
    let (host, rule) = text.split_once('\n').unwrap_or((&text, "*.example.org:443"));
    berth_egress::fuzz::host_and_rule(host, rule);
});
