//! The containment check behind the extraction fuzzer and its deterministic twin in
//! `cargo test`: layers applied into a fresh root must leave a sentinel tree outside it
//! exactly as it was, whatever they hold, and must never panic.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::{Devices, ExtractOptions, apply_layer};

fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
        .map(|e| {
            let m = e.path().symlink_metadata().ok();
            let data = if e.file_type().is_file() { std::fs::read(e.path()).unwrap_or_default() } else { Vec::new() };
            let link = std::fs::read_link(e.path()).map(|l| l.display().to_string()).unwrap_or_default();
            let what = m.map(|m| format!("{:o} {}:{} {} {} {link} {data:?}", m.mode(), m.uid(), m.gid(), m.mtime(), m.size()));
            (e.path().display().to_string(), what.unwrap_or_default())
        })
        .collect()
}

/// Apply `layers` in order into a new directory under `scratch`, with device nodes
/// refused and owners and xattrs applied as root would; panic if anything under
/// `sentinel` (which must be outside `scratch`) changed. Errors are fine: refusing is
/// a correct answer to a hostile layer.
#[doc(hidden)]
pub fn check_contained(layers: &[&[u8]], sentinel: &Path, scratch: &Path) {
    let before = snapshot(sentinel);
    let Ok(root) = tempfile::Builder::new().prefix("root-").tempdir_in(scratch) else { return };
    let opts = ExtractOptions { devices: Devices::Refuse, same_owner: true, xattrs: true, package: false };
    for (i, l) in layers.iter().enumerate() {
        if apply_layer(root.path(), *l, opts, &format!("layer {i}")).is_err() {
            break;
        }
    }
    let after = snapshot(sentinel);
    if before != after {
        let changed: Vec<_> = after.iter().filter(|(k, v)| before.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect();
        let gone: Vec<_> = before.keys().filter(|k| !after.contains_key(*k)).cloned().collect();
        panic!("layers changed the host outside the root: changed or new {changed:?}, removed {gone:?}");
    }
}
