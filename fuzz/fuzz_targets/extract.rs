//! Layer extraction never changes anything outside its root: the input is applied twice
//! (as two layers) into a fresh root beside a sentinel tree, which must stay as it was.
//! Seeds (scripts/fuzz.sh extract) aim absolute links at /tmp/imgtool-fuzz/sentinel.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn base() -> &'static Path {
    static BASE: OnceLock<&'static Path> = OnceLock::new();
    BASE.get_or_init(|| {
        let base = Path::new("/tmp/imgtool-fuzz");
        let sentinel = base.join("sentinel");
        std::fs::create_dir_all(sentinel.join("dir")).expect("sentinel");
        std::fs::write(sentinel.join("secret"), "host secret\n").expect("sentinel");
        std::fs::create_dir_all(base.join("scratch")).expect("scratch");
        base
    })
}

fuzz_target!(|data: &[u8]| {
    let b = base();
    imgtool_archive::check_contained(&[data, data], &b.join("sentinel"), &b.join("scratch"));
});
