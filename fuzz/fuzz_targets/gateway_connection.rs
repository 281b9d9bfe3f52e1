//! The secrets gateway's whole handling of a guest connection (hyper, the phantom checks,
//! stripping, approval, the forward to a real TLS upstream on loopback): the value never
//! reaches the guest, an event or a header it was not meant for.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    berth_egress::fuzz::gateway_connection(data);
});
