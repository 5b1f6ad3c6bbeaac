//! The cases of the hostile corpus, by class. `s` is the sentinel's absolute path; each
//! case aims at it with absolute links, `../` chains, hard links, whiteouts and metadata.

use crate::hostile::{Case, Keep, chr, dir, fifo, file, hard, layer, sym};

const CAP: &[u8] = b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";

fn case(name: &str, layers: Vec<Vec<u8>>, keeps: Vec<Keep>) -> Case {
    Case { name: name.into(), layers, keeps }
}

/// Every case, in a fixed order (at least 40).
pub fn cases(s: &str) -> Vec<Case> {
    let up = format!("../../../../../../../../../..{s}");
    let up = up.as_str();
    let f = |p: &str| format!("{s}/{p}");
    let u = |p: &str| format!("{up}/{p}");
    let mut out = vec![
        // A directory's deferred chmod redirected by a later entry (same layer, other layer).
        case("dir-then-abs-link", vec![layer(&[dir("x", 0o6777), sym("x", &f("secret"))])], vec![]),
        case("dir-then-rel-link", vec![layer(&[dir("x", 0o6777), sym("x", &u("secret"))])], vec![]),
        case("dir-then-link-to-dir", vec![layer(&[dir("x", 0o777), sym("x", &f("dir"))])], vec![]),
        case("dir-then-link-across", vec![layer(&[dir("x", 0o755)]), layer(&[dir("x", 0o6777), sym("x", &f("secret"))])], vec![]),
        case("nested-dir-parent-swapped", vec![layer(&[dir("a", 0o755), dir("a/dir", 0o777), sym("a", s)])], vec![]),
        case("link-then-dir", vec![layer(&[sym("x", &f("dir")), dir("x", 0o777)])], vec![Keep::Mode("x", 0o777)]),
        case("link-then-dir-across", vec![layer(&[sym("x", &f("dir"))]), layer(&[dir("x", 0o777)])], vec![Keep::Mode("x", 0o777)]),
        // Writes through links.
        case("abs-link-then-write", vec![layer(&[sym("l", s), file("l/new", 0o644, "pwned")])], vec![]),
        case("rel-link-then-write", vec![layer(&[sym("l", up), file("l/new", 0o644, "pwned")])], vec![]),
        case("link-parent-across", vec![layer(&[sym("l", &f("dir"))]), layer(&[file("l/keep", 0o666, "pwned")])], vec![]),
        case("file-over-link", vec![layer(&[sym("l", &f("secret")), file("l", 0o777, "mine")])], vec![Keep::Content("l", "mine")]),
        case(
            "file-over-link-across",
            vec![layer(&[sym("l", &f("secret"))]), layer(&[file("l", 0o777, "mine")])],
            vec![Keep::Content("l", "mine")],
        ),
        case("fifo-over-link", vec![layer(&[sym("l", &f("secret"))]), layer(&[fifo("l", 0o666)])], vec![Keep::Mode("l", 0o666)]),
        case("symlink-chain", vec![layer(&[sym("a", "b"), sym("b", s), file("a/new", 0o644, "pwned")])], vec![]),
        case("link-to-proc-root", vec![layer(&[sym("p", "/proc/self/root"), file(&format!("p{s}/new"), 0o644, "pwned")])], vec![]),
        case("link-to-proc-fd", vec![layer(&[sym("p", "/proc/self/cwd"), file("p/new", 0o644, "pwned")])], vec![]),
        case(
            "deep-dotdot-link",
            vec![layer(&[dir("d", 0o755), sym("d/l", "../../../../../.."), file(&format!("d/l{s}/new"), 0o644, "pwned")])],
            vec![],
        ),
        case(
            "dangling-parent-link",
            vec![layer(&[sym("run", "/var/run-x"), file("run/lock", 0o644, "inside")])],
            vec![Keep::Content("var/run-x/lock", "inside")],
        ),
        case("link-loop", vec![layer(&[sym("a", "b"), sym("b", "a"), file("a/x", 0o644, "x")])], vec![]),
        // Entry names that climb.
        case("dotdot-name", vec![layer(&[file("../escaped", 0o644, "pwned")])], vec![]),
        case("nested-dotdot-name", vec![layer(&[dir("a", 0o755), file("a/../../escaped", 0o644, "pwned")])], vec![]),
        case("absolute-name", vec![layer(&[file(&f("new"), 0o644, "inside")])], vec![]),
        // Hard links.
        case("hardlink-absolute", vec![layer(&[hard("h", &f("secret"))])], vec![]),
        case("hardlink-dotdot", vec![layer(&[hard("h", "../../../../../etc/passwd")])], vec![]),
        case("hardlink-through-link", vec![layer(&[sym("d", s), hard("h", "d/secret")])], vec![]),
        case(
            "hardlink-to-link-then-write",
            vec![layer(&[sym("l", &f("secret")), hard("h", "l"), file("h", 0o644, "mine")])],
            vec![Keep::Content("h", "mine")],
        ),
        case(
            "hardlink-over-link",
            vec![layer(&[sym("l", &f("secret")), file("t", 0o644, "t")]), layer(&[hard("l", "t")])],
            vec![Keep::Content("l", "t")],
        ),
        case("hardlink-to-dir", vec![layer(&[dir("d", 0o755), hard("h", "d")])], vec![]),
        // Whiteouts.
        case("whiteout-through-link", vec![layer(&[sym("l", s)]), layer(&[file("l/.wh.secret", 0o644, "")])], vec![]),
        case("opaque-through-link", vec![layer(&[sym("l", &f("dir"))]), layer(&[file("l/.wh..wh..opq", 0o644, "")])], vec![]),
        case("whiteout-dotdot", vec![layer(&[dir("a", 0o755), file("a/.wh...", 0o644, "")])], vec![]),
        case("whiteout-of-link", vec![layer(&[sym("l", &f("secret"))]), layer(&[file(".wh.l", 0o644, "")])], vec![Keep::Missing("l")]),
        case("whiteout-of-dir-link", vec![layer(&[sym("l", &f("dir"))]), layer(&[file(".wh.l", 0o644, "")])], vec![Keep::Missing("l")]),
        case(
            "opaque-keeps-same-layer",
            vec![layer(&[file("o/old", 0o644, "old")]), layer(&[file("o/new", 0o644, "new"), file("o/.wh..wh..opq", 0o644, "")])],
            vec![Keep::Content("o/new", "new"), Keep::Missing("o/old")],
        ),
        case(
            "opaque-first",
            vec![layer(&[file("o/old", 0o644, "old")]), layer(&[file("o/.wh..wh..opq", 0o644, ""), file("o/new", 0o644, "new")])],
            vec![Keep::Content("o/new", "new"), Keep::Missing("o/old")],
        ),
        case(
            "opaque-nested-same-layer",
            vec![layer(&[file("o/sub/old", 0o644, "old")]), layer(&[file("o/sub/new", 0o644, "new"), file("o/.wh..wh..opq", 0o644, "")])],
            vec![Keep::Content("o/sub/new", "new"), Keep::Missing("o/sub/old")],
        ),
        case("whiteout-same-layer", vec![layer(&[file("w", 0o644, "w"), file(".wh.w", 0o644, "")])], vec![Keep::Content("w", "w")]),
        // What must be kept.
        case("setuid-kept", vec![layer(&[dir("bin2", 0o755), file("bin2/su", 0o4755, "su")])], vec![Keep::Mode("bin2/su", 0o4755)]),
        case(
            "setgid-dir-kept",
            vec![layer(&[dir("g", 0o2775), file("g/f", 0o2755, "f")])],
            vec![Keep::Mode("g", 0o2775), Keep::Mode("g/f", 0o2755)],
        ),
        case(
            "capability-kept",
            vec![layer(&[file("ping", 0o755, "ping").pax("SCHILY.xattr.security.capability", CAP)])],
            vec![Keep::Mode("ping", 0o755), Keep::Xattr("ping", "security.capability", CAP)],
        ),
        case("fifo-mode-exact", vec![layer(&[fifo("p", 0o666)])], vec![Keep::Mode("p", 0o666)]),
        case("sticky-dir", vec![layer(&[dir("t", 0o1777)])], vec![Keep::Mode("t", 0o1777)]),
        case("char-device", vec![layer(&[chr("null2", 1, 3)])], vec![]),
        // Metadata aimed through links.
        case("xattr-on-link", vec![layer(&[sym("l", &f("secret")).pax("SCHILY.xattr.user.pwned", b"1")])], vec![]),
        case("mtime-on-link", vec![layer(&[sym("l", &f("secret")), sym("m", &f("dir"))])], vec![]),
        case(
            "dir-over-existing-link",
            vec![layer(&[sym("x", &f("dir"))]), layer(&[dir("x", 0o777), file("x/f", 0o644, "f")])],
            vec![Keep::Content("x/f", "f")],
        ),
        // Odd numbers.
        case("huge-uid", vec![layer(&[file("u", 0o644, "u").uid(99_999_999_999)])], vec![]),
        case(
            "dir-replaced-by-file",
            vec![layer(&[file("d/f", 0o644, "f")]), layer(&[file("d", 0o644, "file")])],
            vec![Keep::Content("d", "file")],
        ),
    ];
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
