//! Builds small but real conda channels for the tests: `.conda` and `.tar.bz2` packages
//! with dependencies, prefix placeholders, symlinks, hardlinks, noarch python with entry
//! points, a post-link script; indexed into `repodata.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rattler_conda_types::compression_level::CompressionLevel;
use rattler_package_streaming::write::{write_conda_package, write_tar_bz2_package};
use serde_json::{Value, json};

pub const PLACEHOLDER: &str = "/opt/anaconda1anaconda2anaconda3";

#[derive(Clone)]
pub enum Item {
    /// Plain file.
    File(&'static str, Vec<u8>),
    /// A text file whose placeholder is replaced.
    Text(&'static str, String),
    /// A binary file whose placeholder is replaced (NUL-padded).
    Binary(&'static str, Vec<u8>),
    /// A symlink.
    Link(&'static str, &'static str),
    /// A hard link to an earlier file of the package.
    Hard(&'static str, &'static str),
    /// An executable text file with a placeholder.
    Script(&'static str, String),
    /// A `paths.json` entry with no file behind it, written exactly as given.
    Raw(Value),
    /// A symlink whose `paths.json` entry says it is a file with a placeholder.
    LinkAsText(&'static str, &'static str),
}

#[derive(Clone)]
pub struct Pkg {
    pub name: &'static str,
    pub version: &'static str,
    pub build: &'static str,
    pub depends: Vec<&'static str>,
    pub items: Vec<Item>,
    pub noarch_python: Option<Vec<&'static str>>,
    pub conda_format: bool,
    pub subdir: &'static str,
}

impl Pkg {
    pub fn new(name: &'static str, version: &'static str) -> Self {
        Self { name, version, build: "0", depends: vec![], items: vec![], noarch_python: None, conda_format: true, subdir: "linux-64" }
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(data))
}

/// Write `pkgs` into `dir` as a channel (subdirs as the packages say, plus an empty noarch).
pub fn write_channel(dir: &Path, pkgs: &[Pkg]) {
    // subdir -> (.tar.bz2 records, .conda records)
    type Records = BTreeMap<String, Value>;
    let mut repodata: BTreeMap<&str, (Records, Records)> = BTreeMap::new();
    repodata.entry("noarch").or_default();
    repodata.entry("linux-64").or_default();
    for p in pkgs {
        let (file, record) = write_package(dir, p);
        let e = repodata.entry(p.subdir).or_default();
        if p.conda_format {
            e.1.insert(file, record)
        } else {
            e.0.insert(file, record)
        };
    }
    for (subdir, (tarbz2, conda)) in repodata {
        std::fs::create_dir_all(dir.join(subdir)).unwrap();
        let doc = json!({"info": {"subdir": subdir}, "packages": tarbz2, "packages.conda": conda, "repodata_version": 1});
        std::fs::write(dir.join(subdir).join("repodata.json"), serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    }
}

fn write_package(channel: &Path, p: &Pkg) -> (String, Value) {
    let stage = tempfile::tempdir().unwrap();
    let root = stage.path();
    let mut paths = Vec::new();
    let mut files: Vec<PathBuf> = Vec::new();
    for item in &p.items {
        if let Item::Raw(v) = item {
            paths.push(v.clone());
            continue;
        }
        let (rel, entry) = match item {
            Item::Raw(_) => unreachable!("handled above"),
            Item::LinkAsText(rel, target) => {
                let path = root.join(rel);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::os::unix::fs::symlink(target, &path).unwrap();
                (
                    rel,
                    json!({"_path": rel, "path_type": "hardlink", "sha256": sha256_hex(b""), "size_in_bytes": 0, "prefix_placeholder": PLACEHOLDER, "file_mode": "text"}),
                )
            }
            Item::File(rel, data) | Item::Binary(rel, data) => {
                write(root, rel, data, 0o644);
                let mut e = json!({"_path": rel, "path_type": "hardlink", "sha256": sha256_hex(data), "size_in_bytes": data.len()});
                if matches!(item, Item::Binary(..)) {
                    e["prefix_placeholder"] = json!(PLACEHOLDER);
                    e["file_mode"] = json!("binary");
                }
                (rel, e)
            }
            Item::Text(rel, text) | Item::Script(rel, text) => {
                let mode = if matches!(item, Item::Script(..)) { 0o755 } else { 0o644 };
                write(root, rel, text.as_bytes(), mode);
                (
                    rel,
                    json!({"_path": rel, "path_type": "hardlink", "sha256": sha256_hex(text.as_bytes()), "size_in_bytes": text.len(), "prefix_placeholder": PLACEHOLDER, "file_mode": "text"}),
                )
            }
            Item::Link(rel, target) => {
                let path = root.join(rel);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::os::unix::fs::symlink(target, &path).unwrap();
                (
                    rel,
                    json!({"_path": rel, "path_type": "softlink", "sha256": sha256_hex(target.as_bytes()), "size_in_bytes": target.len()}),
                )
            }
            Item::Hard(rel, target) => {
                let path = root.join(rel);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::hard_link(root.join(target), &path).unwrap();
                let data = std::fs::read(&path).unwrap();
                (rel, json!({"_path": rel, "path_type": "hardlink", "sha256": sha256_hex(&data), "size_in_bytes": data.len()}))
            }
        };
        paths.push(entry);
        files.push(root.join(rel));
    }
    let mut index = json!({
        "name": p.name, "version": p.version, "build": p.build, "build_number": 0,
        "depends": p.depends, "license": "MIT", "timestamp": 0,
    });
    if let Some(entry_points) = &p.noarch_python {
        index["noarch"] = json!("python");
        index["subdir"] = json!("noarch");
        let link = json!({"noarch": {"type": "python", "entry_points": entry_points}, "package_metadata_version": 1});
        write(root, "info/link.json", link.to_string().as_bytes(), 0o644);
        files.push(root.join("info/link.json"));
    } else {
        index["subdir"] = json!(p.subdir);
        index["platform"] = json!("linux");
        index["arch"] = json!(if p.subdir == "linux-aarch64" { "aarch64" } else { "x86_64" });
    }
    write(root, "info/index.json", index.to_string().as_bytes(), 0o644);
    write(root, "info/paths.json", json!({"paths": paths, "paths_version": 1}).to_string().as_bytes(), 0o644);
    files.push(root.join("info/index.json"));
    files.push(root.join("info/paths.json"));
    let subdir = if p.noarch_python.is_some() { "noarch" } else { p.subdir };
    let stem = format!("{}-{}-{}", p.name, p.version, p.build);
    std::fs::create_dir_all(channel.join(subdir)).unwrap();
    let file = if p.conda_format { format!("{stem}.conda") } else { format!("{stem}.tar.bz2") };
    let out = std::fs::File::create(channel.join(subdir).join(&file)).unwrap();
    let ts = jiff_zero();
    if p.conda_format {
        write_conda_package(out, root, &files, CompressionLevel::Default, Some(1), &stem, Some(&ts), None).unwrap();
    } else {
        write_tar_bz2_package(out, root, &files, CompressionLevel::Default, Some(&ts), None).unwrap();
    }
    let bytes = std::fs::read(channel.join(subdir).join(&file)).unwrap();
    let mut record = index.clone();
    record["sha256"] = json!(sha256_hex(&bytes));
    record["size"] = json!(bytes.len());
    (file, record)
}

/// A fixed time (zip cannot store dates before 1980).
fn jiff_zero() -> jiff::Timestamp {
    jiff::Timestamp::from_second(946_684_800).unwrap()
}

fn write(root: &Path, rel: &str, data: &[u8], mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, data).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The channel most tests use.
pub fn standard_channel(dir: &Path) {
    standard_channel_with(dir, |_| {});
}

/// The standard channel, with the packages edited by `edit` first.
pub fn standard_channel_with(dir: &Path, edit: impl FnOnce(&mut Vec<Pkg>)) {
    let mut binary = b"BIN\0".to_vec();
    binary.extend_from_slice(PLACEHOLDER.as_bytes());
    binary.extend_from_slice(b"/lib/libfoo.so\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0tail");
    let mut libfoo = Pkg::new("libfoo", "1.0");
    libfoo.items = vec![
        Item::File("lib/libfoo.so.1", vec![7u8; 5000]),
        Item::Link("lib/libfoo.so", "libfoo.so.1"),
        Item::Hard("lib/libfoo-copy.so.1", "lib/libfoo.so.1"),
        Item::Binary("lib/libfoo.cfg", binary),
    ];
    let mut libfoo2 = libfoo.clone();
    libfoo2.version = "2.0";
    libfoo2.conda_format = false;
    let mut hello = Pkg::new("hello", "1.0");
    hello.depends = vec!["libfoo >=2"];
    hello.items = vec![
        Item::Script("bin/hello", format!("#!/bin/sh\necho {PLACEHOLDER}/share/hello\n")),
        Item::Text("share/hello/config.txt", format!("prefix={PLACEHOLDER}\n")),
        Item::File("lib/libhello.a", b"static archive".to_vec()),
        Item::Script("bin/.hello-post-link.sh", "#!/bin/sh\necho never run\n".to_string()),
    ];
    let mut hello_old = hello.clone();
    hello_old.build = "old_0";
    hello_old.version = "0.9";
    let mut python = Pkg::new("python", "3.12.0");
    python.items = vec![Item::Script("bin/python3.12", "#!/bin/sh\necho fake python\n".into()), Item::Link("bin/python", "python3.12")];
    let mut tool = Pkg::new("pytool", "0.1");
    tool.depends = vec!["python >=3.12"];
    tool.noarch_python = Some(vec!["pytool = pytool.cli:main"]);
    // As conda-forge names them; conda-lock tells noarch python packages by it.
    tool.build = "pyh_0";
    tool.items = vec![
        Item::File("site-packages/pytool/__init__.py", b"".to_vec()),
        Item::File("site-packages/pytool/cli.py", b"def main():\n    print('hi')\n".to_vec()),
    ];
    let mut arm = Pkg::new("hello", "1.0");
    arm.subdir = "linux-aarch64";
    arm.items = vec![Item::Script("bin/hello", "#!/bin/sh\necho aarch64\n".into())];
    let mut pkgs = vec![libfoo, libfoo2, hello, hello_old, python, tool, arm];
    edit(&mut pkgs);
    write_channel(dir, &pkgs);
}

/// Serve `dir` over HTTP on 127.0.0.1 (Python's http.server); stopped on drop.
pub struct Served(std::process::Child, pub String);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn serve(dir: &Path) -> Served {
    // A port free a moment ago may be taken before python binds it (tests side by side
    // publish container ports): only a server that answers as python's counts.
    for _ in 0..20 {
        let port = crate::free_port();
        let mut child = std::process::Command::new("python3")
            .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            if is_python_server(port) {
                return Served(child, format!("http://127.0.0.1:{port}/"));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("http.server did not start on any of 20 ports");
}

/// Whether python's http.server answers on `port`.
fn is_python_server(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    if s.write_all(b"HEAD / HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = s.take(4096).read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).contains("SimpleHTTP")
}
