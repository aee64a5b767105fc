//! The first-boot file as arbitrary bytes: whatever a person or a broken
//! editor puts on the config partition, pgboxd must refuse it with errors
//! that point into the file, or accept it and derive everything from it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgbox_fuzz::checks;

fuzz_target!(|data: &[u8]| {
    // Bytes that are not UTF-8 are refused before parsing (pgbox reads the
    // file with `String::from_utf8`); the parser sees text only.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = checks::parse_and_check(text);
});
