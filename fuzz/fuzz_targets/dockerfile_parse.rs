//! The Dockerfile parser and substitution never panic, and what the parser accepts it
//! accepts again after rendering.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    imgtool_dockerfile::check_never_panics(text);
});
