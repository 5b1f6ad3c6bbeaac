//! The documentation, run as written. In README.md and docs/*.md:
//!
//! - a block fenced as ```` ```LANG file=NAME ```` is written to NAME in the scene;
//! - a ```` ```console ```` block is run: each `$ ` line (with `\` continuations) is a shell
//!   command, and the lines up to the next one are what it prints (stdout and stderr as a
//!   terminal shows them). `[..]` in a line matches any text, a line `...` any lines. A
//!   command must fail exactly when its output shows an `error:` line.
//!
//! Other blocks (`sh` synopses, `text`) are not run. Each document gets its own scene: a
//! temporary directory holding a copy of `fixtures/`, its own HOME and cache, and its own
//! registry holding `busybox:latest`, which the documents call `localhost:5000` (the harness
//! points that name at its registry). `cargo run --release -p imgtool --` runs the binary
//! under test.

use std::path::{Path, PathBuf};
use std::process::Command;

use imgtool_tests::{Registry, busybox_rootfs, require, run_ok, workspace};

use crate::{copy_dir, imgtool};

const DOCS_REGISTRY: &str = "localhost:5000";

#[derive(Debug)]
enum Block {
    File { line: usize, name: String, body: String },
    Console { commands: Vec<(usize, String, Vec<String>)> },
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, l)) = lines.next() {
        let Some(info) = l.trim_start().strip_prefix("```") else { continue };
        // A fence indented under a list item indents its lines as much.
        let indent = l.len() - l.trim_start().len();
        let mut words = info.split_whitespace();
        let lang = words.next().unwrap_or_default().to_string();
        let file = words.find_map(|w| w.strip_prefix("file=")).map(str::to_string);
        let mut body = Vec::new();
        for (_, l) in lines.by_ref() {
            if l.trim_start().starts_with("```") {
                break;
            }
            let cut = l.len() - l.trim_start().len();
            body.push(l[cut.min(indent)..].to_string());
        }
        assert!(!(file.is_some() && lang == "console"), "line {}: a console block is run, it cannot be a file= too", n + 1);
        if let Some(name) = file {
            out.push(Block::File { line: n + 1, name, body: body.join("\n") + "\n" });
        } else if lang == "console" {
            let commands = commands(n + 2, &body);
            let stray = body.iter().take_while(|l| !l.starts_with("$ ")).count();
            assert!(!commands.is_empty() && stray == 0, "line {}: a console block starts with a `$ ` command", n + 1);
            out.push(Block::Console { commands });
        }
    }
    out
}

/// `$ ` lines (joined over `\` continuations) with the output lines that follow each.
fn commands(first: usize, body: &[String]) -> Vec<(usize, String, Vec<String>)> {
    let mut out: Vec<(usize, String, Vec<String>)> = Vec::new();
    let mut continuing = false;
    for (i, l) in body.iter().enumerate() {
        if continuing {
            let cmd = &mut out.last_mut().unwrap().1;
            cmd.push('\n');
            cmd.push_str(l);
            continuing = l.ends_with('\\');
        } else if let Some(cmd) = l.strip_prefix("$ ") {
            out.push((first + i, cmd.to_string(), Vec::new()));
            continuing = cmd.ends_with('\\');
        } else if let Some(last) = out.last_mut() {
            last.2.push(l.to_string());
        }
    }
    out
}

/// Whether `actual` lines match `expected` ones, with `[..]` and `...` wildcards.
fn matches(expected: &[String], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((e, rest)) if e == "..." => (0..=actual.len()).any(|skip| matches(rest, &actual[skip..])),
        Some((e, rest)) => actual.split_first().is_some_and(|(a, arest)| line_matches(e, a) && matches(rest, arest)),
    }
}

fn line_matches(expected: &str, actual: &str) -> bool {
    let parts: Vec<&str> = expected.split("[..]").collect();
    if parts.len() == 1 {
        return expected == actual;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !actual.starts_with(first) || actual.len() < first.len() + last.len() || !actual.ends_with(last) {
        return false;
    }
    let mut rest = &actual[first.len()..actual.len() - last.len()];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    true
}

/// A scene for one document: fixtures, HOME, a registry with busybox, and for a document
/// about container maps a Docker Engine of its own with busybox loaded (as DOCKER_HOST).
struct Scene {
    dir: tempfile::TempDir,
    registry: Registry,
    dockerd: Option<imgtool_tests::Dockerd>,
}

impl Scene {
    fn new(engine: bool) -> Self {
        require("runc", "runc");
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&workspace().join("fixtures"), &dir.path().join("fixtures"));
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        let registry = Registry::start();
        let work = tempfile::tempdir().unwrap();
        busybox_rootfs(work.path());
        run_ok(imgtool(work.path()).args([
            "append",
            "-q",
            "scratch",
            &format!("docker://{}/busybox:latest", registry.addr),
            "--path",
            "rootfs:/",
        ]));
        let dockerd = engine.then(|| {
            let d = imgtool_tests::Dockerd::start();
            let image = format!("docker://{}/busybox:latest", registry.addr);
            run_ok(imgtool(work.path()).args(["copy", "-q", &image, "docker-archive:bb.tar:busybox:latest"]));
            run_ok(d.docker().args(["load", "-q", "-i"]).arg(work.path().join("bb.tar")));
            d
        });
        Self { dir, registry, dockerd }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn localize(&self, s: &str) -> String {
        s.replace(DOCS_REGISTRY, &self.registry.addr).replace("cargo run --release -p imgtool --", "imgtool")
    }

    fn run(&self, cmd: &str) -> (bool, String) {
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_imgtool"));
        let path = format!("{}:{}", bin.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
        let output = Command::new("bash")
            .args(["-o", "pipefail", "-c"])
            .arg(format!("exec 2>&1\n{}", self.localize(cmd)))
            .current_dir(self.path())
            .env("HOME", self.path().join("home"))
            .env("PATH", path)
            .env_remove("RUST_LOG")
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("IMGTOOL_CREDS")
            .env_remove("IMGTOOL_INSECURE_REGISTRIES")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("DOCKER_CONFIG")
            .envs(self.dockerd.as_ref().map(|d| ("DOCKER_HOST", format!("unix://{}", d.socket().display()))))
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&output.stdout)
            .replace(&self.registry.addr, DOCS_REGISTRY)
            .replace(&self.path().display().to_string(), "[CWD]");
        (output.status.success(), shown)
    }
}

/// Run every example of `doc` (relative to the workspace) in a scene of its own.
fn run_document(doc: &str) {
    let text = std::fs::read_to_string(workspace().join(doc)).unwrap();
    let scene = Scene::new(text.contains("imgtool map "));
    let mut failures = Vec::new();
    let mut ran = 0;
    let mut stop = false;
    for block in blocks(&text) {
        match block {
            Block::File { line, name, body } => {
                let normal = Path::new(&name).components().all(|c| matches!(c, std::path::Component::Normal(_)));
                assert!(normal, "{doc}:{line}: file={name} must be a relative path inside the scene");
                let path = scene.path().join(&name);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, scene.localize(&body)).unwrap();
            }
            Block::Console { commands } => {
                for (line, cmd, expected) in commands {
                    ran += 1;
                    let (ok, shown) = scene.run(&cmd);
                    let lines: Vec<&str> = shown.lines().collect();
                    let want_error = expected.iter().any(|l| l.starts_with("error:"));
                    let said_error = lines.iter().any(|l| l.starts_with("error:"));
                    if ok == want_error || said_error != want_error || !matches(&expected, &lines) {
                        failures.push(format!(
                            "{doc}:{line}: $ {cmd}\n  exit: {}\n--- expected\n{}\n--- got\n{}",
                            if ok { "success" } else { "failure" },
                            expected.join("\n"),
                            shown.trim_end()
                        ));
                    }
                    if ok == want_error {
                        // Later examples build on this one: stop here.
                        stop = true;
                        break;
                    }
                }
            }
        }
        if stop {
            break;
        }
    }
    assert!(failures.is_empty(), "{} example(s) of {doc} do not do what they say:\n\n{}", failures.len(), failures.join("\n\n"));
    assert!(ran > 0, "{doc} has no console examples");
}

/// Documents with no runnable examples, and why.
const EXEMPT: &[(&str, &str)] = &[("docs/security.md", "states guarantees; its mechanisms are tested by the hostile suites")];

#[test]
fn readme_examples_run_as_written() {
    run_document("README.md");
}

#[test]
fn every_document_in_docs_is_run_or_exempt() {
    let mut names: Vec<String> = std::fs::read_dir(workspace().join("docs"))
        .unwrap()
        .map(|e| format!("docs/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|n| n.ends_with(".md"))
        .collect();
    names.sort();
    let run: Vec<String> = names.iter().filter(|n| !EXEMPT.iter().any(|(e, _)| e == n)).cloned().collect();
    for (exempt, _) in EXEMPT {
        let text = std::fs::read_to_string(workspace().join(exempt)).unwrap();
        assert!(!text.contains("```console"), "{exempt} is exempt but has console examples: run it");
    }
    // Each runs in a thread of its own: a scene per document, side by side.
    let handles: Vec<_> = run.into_iter().map(|doc| std::thread::spawn(move || run_document(&doc))).collect();
    let failed: Vec<String> = handles
        .into_iter()
        .filter_map(|h| h.join().err())
        .map(|e| e.downcast_ref::<String>().cloned().unwrap_or_else(|| "a document panicked".into()))
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

#[test]
fn the_harness_matches_wildcards_and_finds_blocks() {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert!(matches(&s(&["a [..] c", "...", "z"]), &["a b c", "x", "y", "z"]));
    assert!(matches(&s(&["..."]), &[]));
    assert!(!matches(&s(&["a [..] c"]), &["a b d"]));
    assert!(!matches(&s(&["a"]), &["a", "b"]));
    assert!(line_matches("sha256:[..]", "sha256:abc"));
    assert!(!line_matches("x[..]y[..]z", "xzy"));
    let b = blocks("```toml file=p.toml\nk = 1\n```\n```console\n$ echo a \\\n  b\na b\n$ true\n```\n```sh\nnot run\n```\n");
    assert_eq!(b.len(), 2, "{b:?}");
    match &b[1] {
        Block::Console { commands, .. } => {
            assert_eq!(commands.len(), 2);
            assert_eq!(commands[0].1, "echo a \\\n  b");
            assert_eq!(commands[0].2, ["a b"]);
        }
        other => panic!("{other:?}"),
    }
}
