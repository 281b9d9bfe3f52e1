//! The agent channel's frame decoder (what a guest sends the host, and a client the
//! supervisor): any bytes give messages or an error, never a panic or a huge allocation; a
//! decoded message encodes back to a frame that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reader = berth_proto::FrameReader::new(std::io::Cursor::new(data));
    for _ in 0..64 {
        let Ok(msg) = reader.read_message() else { break };
        let mut again = Vec::new();
        if berth_proto::write_message(&mut again, &msg).is_ok() {
            let back = berth_proto::FrameReader::new(std::io::Cursor::new(&again))
                .read_message()
                .expect("a frame Berth wrote must decode");
            assert_eq!(format!("{back:?}"), format!("{msg:?}"));
        }
    }
});
