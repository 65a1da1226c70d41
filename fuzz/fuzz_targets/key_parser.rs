//! The key parser refuses or accepts any text without panicking, and what it accepts
//! has the shape's exact length.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(shape) = keyward_core::keyfmt::parse(text) {
            assert_eq!(text.len(), shape.total_len(), "{text:?}");
        }
    }
});
