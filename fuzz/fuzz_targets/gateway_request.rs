//! The secrets gateway's recognition of its requests and its path checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    berth_egress::fuzz::gateway_head(data);
});
