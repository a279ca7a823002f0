//! The agent's IPC input path: bytes in arbitrary chunks through the frame
//! splitter, each frame through the request decoder. Must never panic, never
//! return a frame over the cap, and never buffer more than the cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_shared::ipc::{FrameSplitter, MAX_FRAME_BYTES, decode_client_frame, encode_frame};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut splitter = FrameSplitter::default();
    for piece in rest.chunks(chunk) {
        splitter.push(piece);
        while let Some(frame) = splitter.next_frame() {
            let Ok(line) = frame else {
                return; // the agent closes the connection here
            };
            assert!(line.len() < MAX_FRAME_BYTES);
            if let Ok(frame) = decode_client_frame(&line) {
                // Whatever decodes must re-encode to something that decodes
                // to the same request.
                let again = encode_frame(&frame);
                let back = decode_client_frame(&again[..again.len() - 1]).expect("re-encoded frame decodes");
                assert_eq!(back, frame);
            }
        }
        assert!(splitter.pending() <= MAX_FRAME_BYTES + chunk);
    }
});
