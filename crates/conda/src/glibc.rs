//! Reading the glibc version of a base image, for the `__glibc` virtual package.

use std::io::Read;

use imgtool_core::{Image, decompress};
use tokio_util::io::SyncIoBridge;

/// The glibc version in `image`, if its layers can be read here without a download (they
/// are local) and hold a recognisable libc: `libc-2.31.so`, or a `libc.so.6` whose banner
/// says `release version 2.36`. The top-most layer that has one wins.
pub async fn base_glibc(image: &Image) -> Option<String> {
    for layer in image.layers().iter().rev() {
        if layer.source.mount_origin().is_some() {
            // A registry layer: reading it would mean downloading the base. Not worth it.
            return None;
        }
        let compression = layer.descriptor.media_type.layer_compression()?;
        let stream = layer.source.open(&layer.descriptor).await.ok()?;
        let handle = tokio::runtime::Handle::current();
        let found = tokio::task::spawn_blocking(move || {
            let _g = handle.enter();
            let reader = decompress(compression, SyncIoBridge::new(stream)).ok()?;
            scan(reader)
        })
        .await
        .ok()
        .flatten();
        if found.is_some() {
            return found;
        }
    }
    None
}

fn scan(reader: impl Read) -> Option<String> {
    // A base layer is input like any other: read as Go reads it, no header hoarding memory.
    let mut tar = imgtool_archive::TarReader::new(reader);
    while let Some(m) = tar.next_member().ok()? {
        let path = String::from_utf8_lossy(&m.path).into_owned();
        let name = path.rsplit('/').next().unwrap_or_default().to_string();
        if !path.contains("lib") {
            continue;
        }
        if let Some(v) = name.strip_prefix("libc-").and_then(|r| r.strip_suffix(".so")) {
            return Some(v.to_string());
        }
        if name == "libc.so.6" && m.kind() == imgtool_archive::MemberKind::File && m.size < (64 << 20) {
            let mut data = Vec::new();
            (&mut tar).take(m.size).read_to_end(&mut data).ok()?;
            if let Some(v) = banner_version(&data) {
                return Some(v);
            }
        }
    }
    None
}

/// `... stable release version 2.36.` in libc's banner.
fn banner_version(data: &[u8]) -> Option<String> {
    let needle = b"release version ";
    let at = data.windows(needle.len()).position(|w| w == needle)? + needle.len();
    let v: String = data[at..].iter().take(16).take_while(|b| b.is_ascii_digit() || **b == b'.').map(|b| *b as char).collect();
    let v = v.trim_end_matches('.').to_string();
    v.contains('.').then_some(v)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_banner() {
        let b = b"\0GNU C Library (Debian GLIBC 2.36-9+deb12u4) stable release version 2.36.\n";
        assert_eq!(super::banner_version(b).as_deref(), Some("2.36"));
        assert_eq!(super::banner_version(b"nothing here"), None);
    }
}
