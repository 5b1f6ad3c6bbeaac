//! The hostile corpus through every entry point that extracts layers: `export` to a
//! directory and to a tar, the `squash` step, a Dockerfile build on the image (stage root,
//! COPY, RUN), `ADD` of the layers as local tars, and `imgtool run`. After each, the
//! sentinel tree outside every root must be exactly as it was, the exit must be a clean
//! success or a clean error (never a panic), and what a case must keep is kept.

use std::path::Path;

use imgtool_tests::hostile::{self, Sentinel};
use imgtool_tests::{busybox_rootfs, hostile_cases};

use super::imgtool;

fn outcome(out: &std::process::Output, what: &str, failures: &mut Vec<String>) -> bool {
    let code = out.status.code().unwrap_or(-1);
    if code != 0 && code != 1 {
        failures.push(format!("{what}: exit {code} (a crash?)\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    out.status.success()
}

#[test]
fn hostile_layers_never_touch_the_host() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let sentinel = Sentinel::create(d);
    let cases = hostile_cases(&sentinel.path.to_string_lossy());
    assert!(cases.len() >= 40, "the corpus has {} cases", cases.len());
    let base = hostile::layer_of_tree(&busybox_rootfs(&d.join("bb")));
    let layout = d.join("images");
    hostile::add_to_layout(&layout, "base", std::slice::from_ref(&base));
    for c in &cases {
        let mut layers = vec![base.clone()];
        layers.extend(c.layers.iter().cloned());
        hostile::add_to_layout(&layout, &c.name, &layers);
    }
    let before = sentinel.snapshot();
    let mut summary = String::new();
    let mut failures = Vec::new();
    for c in &cases {
        let w = d.join("work").join(&c.name);
        std::fs::create_dir_all(w.join("ctx")).unwrap();
        let img = format!("oci:{}:{}", layout.display(), c.name);
        let mut line = format!("{}:", c.name);
        let mut check = |label: &str, ok: bool, problems: Vec<String>, failures: &mut Vec<String>| {
            line.push_str(&format!(" {label}={}", if ok { "ok" } else { "refused" }));
            if sentinel.snapshot() != before {
                failures.push(format!("{} via {label} changed the sentinel tree", c.name));
            }
            for p in problems {
                failures.push(format!("{} via {label}: {p}", c.name));
            }
        };

        let out = imgtool(&w).args(["export", "-q", &img, "dir"]).output().unwrap();
        let ok = outcome(&out, &format!("{} export dir", c.name), &mut failures);
        let problems = if ok { hostile::check_tree(&w.join("dir"), &c.keeps) } else { vec![] };
        if !ok && w.join("dir").exists() {
            failures.push(format!("{}: a failed export left {} behind", c.name, w.join("dir").display()));
        }
        check("dir", ok, problems, &mut failures);

        let out = imgtool(&w).args(["export", "-q", &img, "flat.tar"]).output().unwrap();
        let ok = outcome(&out, &format!("{} export tar", c.name), &mut failures);
        let problems = if ok { hostile::check_tar(&std::fs::read(w.join("flat.tar")).unwrap(), &c.keeps) } else { vec![] };
        check("tar", ok, problems, &mut failures);

        let pipeline = format!("[source]\nimage = \"{img}\"\n\n[[step]]\nsquash = true\n\n[[sink]]\nto = \"oci:sq:{}\"\n", c.name);
        std::fs::write(w.join("squash.toml"), pipeline).unwrap();
        let out = imgtool(&w).args(["pipe", "-q", "squash.toml"]).output().unwrap();
        let mut ok = outcome(&out, &format!("{} squash", c.name), &mut failures);
        let mut problems = vec![];
        if ok {
            let out = imgtool(&w).args(["export", "-q", &format!("oci:sq:{}", c.name), "sq.tar"]).output().unwrap();
            ok = outcome(&out, &format!("{} squash export", c.name), &mut failures);
            problems = if ok {
                hostile::check_tar(&std::fs::read(w.join("sq.tar")).unwrap(), &c.keeps)
            } else {
                vec!["cannot export the squashed image".into()]
            };
        }
        check("squash", ok, problems, &mut failures);

        std::fs::write(w.join("ctx/f"), "f").unwrap();
        std::fs::write(w.join("ctx/Dockerfile"), format!("FROM {img}\nCOPY f /imgtool-f\nRUN /bin/true\n")).unwrap();
        let out = imgtool(&w).args(["build", "-q", "-o", "built.tar", "ctx"]).output().unwrap();
        let ok = outcome(&out, &format!("{} build", c.name), &mut failures);
        check("build", ok, vec![], &mut failures);

        let mut adds = format!("FROM oci:{}:base\n", layout.display());
        for (i, l) in c.layers.iter().enumerate() {
            std::fs::write(w.join(format!("ctx/l{i}.tar")), l).unwrap();
            adds.push_str(&format!("ADD l{i}.tar /x/\n"));
        }
        adds.push_str("RUN /bin/true\n");
        std::fs::write(w.join("ctx/Dockerfile"), adds).unwrap();
        let out = imgtool(&w).args(["build", "-q", "-o", "added.tar", "ctx"]).output().unwrap();
        let ok = outcome(&out, &format!("{} ADD", c.name), &mut failures);
        check("add", ok, vec![], &mut failures);

        let out = imgtool(&w).args(["run", &img, "--", "/bin/true"]).output().unwrap();
        let ok = outcome(&out, &format!("{} run", c.name), &mut failures);
        check("run", ok, vec![], &mut failures);
        summary.push_str(&line);
        summary.push('\n');
        let _ = std::fs::remove_dir_all(&w);
    }
    assert!(failures.is_empty(), "{}\n\n{summary}", failures.join("\n"));
    insta::assert_snapshot!(summary);
}

/// The sentinel helper itself notices changes (so the test above can fail).
#[test]
fn the_sentinel_sees_every_kind_of_change() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Sentinel::create(tmp.path());
    let before = s.snapshot();
    use std::os::unix::fs::PermissionsExt;
    type Change = Box<dyn Fn(&Path)>;
    let changes: Vec<Change> = vec![
        Box::new(|p| std::fs::set_permissions(p.join("secret"), std::fs::Permissions::from_mode(0o4777)).unwrap()),
        Box::new(|p| std::fs::write(p.join("dir/keep"), "changed\n").unwrap()),
        Box::new(|p| std::fs::write(p.join("dir/new"), "").unwrap()),
        Box::new(|p| {
            let f = std::fs::File::options().write(true).open(p.join("exe")).unwrap();
            f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(5)).unwrap();
        }),
    ];
    for change in changes {
        let t = tempfile::tempdir().unwrap();
        let s2 = Sentinel::create(t.path());
        let b2 = s2.snapshot();
        change(&s2.path);
        assert_ne!(s2.snapshot(), b2);
    }
    assert_eq!(s.snapshot(), before);
}
