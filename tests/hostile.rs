//! The hostile layer corpus: images whose layers try to change, read or reveal host files
//! through every trick a tar can play, and a sentinel tree outside every root that must
//! come out of each run exactly as it went in.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::Digest;

/// A host tree outside any extraction root, with known modes, owners, times and contents.
#[derive(Debug)]
pub struct Sentinel {
    /// Its absolute path.
    pub path: PathBuf,
}

impl Sentinel {
    /// Make it under `at`.
    pub fn create(at: &Path) -> Sentinel {
        let path = at.join("sentinel");
        std::fs::create_dir_all(path.join("dir")).unwrap();
        for (p, data, mode) in [("secret", "host secret\n", 0o600), ("dir/keep", "keep\n", 0o644), ("exe", "#!/bin/sh\n", 0o755)] {
            std::fs::write(path.join(p), data).unwrap();
            std::fs::set_permissions(path.join(p), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        std::fs::set_permissions(path.join("dir"), std::fs::Permissions::from_mode(0o700)).unwrap();
        let t = filetime::FileTime::from_unix_time(1_600_000_000, 0);
        for p in ["secret", "dir/keep", "exe", "dir", ""] {
            filetime::set_file_times(path.join(p), t, t).unwrap();
        }
        Sentinel { path: std::fs::canonicalize(path).unwrap() }
    }

    /// Everything observable about the tree: each path's type, mode, owner, mtime,
    /// contents or link target, and extended attributes.
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for e in walkdir::WalkDir::new(&self.path).sort_by_file_name() {
            let e = e.unwrap();
            let m = e.path().symlink_metadata().unwrap();
            let rel = e.path().strip_prefix(&self.path).unwrap().to_string_lossy().into_owned();
            let what = if m.is_file() {
                String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned()
            } else if m.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(e.path()).unwrap().display())
            } else {
                String::new()
            };
            let xattrs: Vec<String> =
                xattr::list(e.path()).map(|l| l.map(|n| n.to_string_lossy().into_owned()).collect()).unwrap_or_default();
            out.insert(rel, format!("{:o} {}:{} {} {what} {xattrs:?}", m.mode(), m.uid(), m.gid(), m.mtime()));
        }
        out
    }
}

/// What a case expects to find in what was extracted (when extraction succeeds).
#[derive(Debug, Clone)]
pub enum Keep {
    /// A path with these permission bits (and setuid/setgid/sticky).
    Mode(&'static str, u32),
    /// A regular file with this content.
    Content(&'static str, &'static str),
    /// A path that must not be there.
    Missing(&'static str),
    /// An extended attribute with this value.
    Xattr(&'static str, &'static str, &'static [u8]),
}

/// One hostile image: its layers (uncompressed tars) and what must survive.
#[derive(Debug, Clone)]
pub struct Case {
    /// Short name, also the image's tag.
    pub name: String,
    /// The layers, lowest first.
    pub layers: Vec<Vec<u8>>,
    /// What a successful extraction keeps.
    pub keeps: Vec<Keep>,
}

/// A tar entry, written byte for byte as given (names with `..` included).
#[derive(Debug, Clone)]
pub struct E {
    kind: tar::EntryType,
    path: String,
    mode: u32,
    link: String,
    data: Vec<u8>,
    pax: Vec<(String, Vec<u8>)>,
    dev: (u32, u32),
    uid: u64,
}

/// A regular file.
pub fn file(path: &str, mode: u32, data: &str) -> E {
    E {
        kind: tar::EntryType::Regular,
        path: path.into(),
        mode,
        link: String::new(),
        data: data.as_bytes().to_vec(),
        pax: vec![],
        dev: (0, 0),
        uid: 0,
    }
}
/// A directory.
pub fn dir(path: &str, mode: u32) -> E {
    E { kind: tar::EntryType::Directory, path: path.into(), mode, ..file("", 0, "") }
}
/// A symlink.
pub fn sym(path: &str, target: &str) -> E {
    E { kind: tar::EntryType::Symlink, path: path.into(), mode: 0o777, link: target.into(), ..file("", 0, "") }
}
/// A hard link.
pub fn hard(path: &str, target: &str) -> E {
    E { kind: tar::EntryType::Link, path: path.into(), mode: 0o644, link: target.into(), ..file("", 0, "") }
}
/// A FIFO.
pub fn fifo(path: &str, mode: u32) -> E {
    E { kind: tar::EntryType::Fifo, path: path.into(), mode, ..file("", 0, "") }
}
/// A character device.
pub fn chr(path: &str, major: u32, minor: u32) -> E {
    E { kind: tar::EntryType::Char, path: path.into(), mode: 0o666, dev: (major, minor), ..file("", 0, "") }
}
impl E {
    /// With a PAX record (`SCHILY.xattr.*`, `uid`, ...).
    pub fn pax(mut self, key: &str, value: &[u8]) -> E {
        self.pax.push((key.into(), value.to_vec()));
        self
    }
    /// With this owner (tar encodes large ids in base 256).
    pub fn uid(mut self, uid: u64) -> E {
        self.uid = uid;
        self
    }
}

fn set_bytes(field: &mut [u8], value: &[u8]) {
    assert!(value.len() < field.len(), "name too long for the test corpus: {}", String::from_utf8_lossy(value));
    field[..value.len()].copy_from_slice(value);
}

/// A layer tar of `entries`, exactly as given.
pub fn layer(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        if !e.pax.is_empty() {
            let mut body = Vec::new();
            for (k, v) in &e.pax {
                let rest = k.len() + v.len() + 3;
                let mut len = rest + rest.to_string().len();
                if len.to_string().len() + rest != len {
                    len = rest + len.to_string().len();
                }
                body.extend_from_slice(format!("{len} {k}=").as_bytes());
                body.extend_from_slice(v);
                body.push(b'\n');
            }
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::XHeader);
            set_bytes(&mut h.as_old_mut().name, b"PaxHeader");
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append(&h, &body[..]).unwrap();
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(e.kind);
        set_bytes(&mut h.as_old_mut().name, e.path.as_bytes());
        set_bytes(&mut h.as_old_mut().linkname, e.link.as_bytes());
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(0);
        h.set_mtime(1_500_000_000);
        h.set_size(e.data.len() as u64);
        if matches!(e.kind, tar::EntryType::Char | tar::EntryType::Block) {
            h.set_device_major(e.dev.0).unwrap();
            h.set_device_minor(e.dev.1).unwrap();
        }
        h.set_cksum();
        b.append(&h, &e.data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

fn put_blob(layout: &Path, data: &[u8]) -> (String, usize) {
    let hex = sha256_hex(data);
    let p = layout.join("blobs/sha256").join(&hex);
    if !p.exists() {
        std::fs::write(p, data).unwrap();
    }
    (format!("sha256:{hex}"), data.len())
}

/// The host's architecture as OCI names it.
pub fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Add an image with `layers` (uncompressed tars, lowest first) to the OCI layout `dir`
/// (made if missing) under `tag`.
pub fn add_to_layout(dir: &Path, tag: &str, layers: &[Vec<u8>]) {
    add_to_layout_with(dir, tag, layers, serde_json::json!({"Env": ["PATH=/bin"]}));
}

/// [`add_to_layout`] with `config` as the image config's `config` object.
pub fn add_to_layout_with(dir: &Path, tag: &str, layers: &[Vec<u8>], config: serde_json::Value) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut diff_ids = Vec::new();
    let mut descs = Vec::new();
    for l in layers {
        let (digest, size) = put_blob(dir, l);
        diff_ids.push(digest.clone());
        descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size}));
    }
    let config = serde_json::json!({
        "architecture": oci_arch(), "os": "linux", "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let (cd, cs) = put_blob(dir, &serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": descs,
    });
    let (md, ms) = put_blob(dir, &serde_json::to_vec(&manifest).unwrap());
    let index_path = dir.join("index.json");
    let mut index: serde_json::Value = std::fs::read(&index_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| serde_json::json!({"schemaVersion": 2, "manifests": []}));
    index["manifests"].as_array_mut().unwrap().push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }));
    std::fs::write(index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}

/// A layer holding the tree at `root` (symlinks kept as links).
pub fn layer_of_tree(root: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", root).unwrap();
    b.into_inner().unwrap()
}

/// Check `keeps` against an extracted tree; the failures, described.
pub fn check_tree(root: &Path, keeps: &[Keep]) -> Vec<String> {
    let mut bad = Vec::new();
    for k in keeps {
        match k {
            Keep::Mode(p, mode) => match root.join(p).symlink_metadata() {
                Ok(m) if m.mode() & 0o7777 == *mode => {}
                Ok(m) => bad.push(format!("{p}: mode {:o}, want {mode:o}", m.mode() & 0o7777)),
                Err(e) => bad.push(format!("{p}: {e}")),
            },
            Keep::Content(p, c) => match std::fs::read_to_string(root.join(p)) {
                Ok(got) if got == *c => {}
                got => bad.push(format!("{p}: {got:?}, want {c:?}")),
            },
            Keep::Missing(p) => {
                if root.join(p).symlink_metadata().is_ok() {
                    bad.push(format!("{p}: should be gone"));
                }
            }
            Keep::Xattr(p, n, v) => match xattr::get(root.join(p), n) {
                Ok(Some(got)) if got == *v => {}
                got => bad.push(format!("{p}: xattr {n} is {got:?}")),
            },
        }
    }
    bad
}

/// Check `keeps` against a layer tar (as `export` to a tar or `squash` writes it).
pub fn check_tar(tar_bytes: &[u8], keeps: &[Keep]) -> Vec<String> {
    type Xattrs = Vec<(String, Vec<u8>)>;
    let mut seen: BTreeMap<String, (u32, Vec<u8>, Xattrs)> = BTreeMap::new();
    let mut ar = tar::Archive::new(tar_bytes);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().trim_start_matches("./").trim_end_matches('/').to_string();
        let mode = e.header().mode().unwrap() & 0o7777;
        let mut x = Vec::new();
        if let Ok(Some(exts)) = e.pax_extensions() {
            for ext in exts.flatten() {
                if let Some(n) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) {
                    x.push((n.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        seen.insert(path, (mode, data, x));
    }
    let mut bad = Vec::new();
    for k in keeps {
        match k {
            Keep::Mode(p, mode) => match seen.get(*p) {
                Some((m, _, _)) if m == mode => {}
                got => bad.push(format!("{p}: mode {:?}, want {mode:o}", got.map(|g| format!("{:o}", g.0)))),
            },
            Keep::Content(p, c) => match seen.get(*p) {
                Some((_, d, _)) if d == c.as_bytes() => {}
                _ => bad.push(format!("{p}: content differs or missing")),
            },
            Keep::Missing(p) => {
                if seen.contains_key(*p) {
                    bad.push(format!("{p}: should be gone"));
                }
            }
            Keep::Xattr(p, n, v) => {
                if !seen.get(*p).is_some_and(|(_, _, x)| x.iter().any(|(k, val)| k == n && val == v)) {
                    bad.push(format!("{p}: xattr {n} missing"));
                }
            }
        }
    }
    bad
}
