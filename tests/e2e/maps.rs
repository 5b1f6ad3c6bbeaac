//! Container maps on a real Docker Engine: docker-map's getting-started map (nginx-like and
//! uwsgi-like containers on a busybox image imgtool built, a socket shared through an
//! attached volume owned by user 2000 with `u=rwX,g=rX,o=`) brought up, updated and taken
//! down, with the Docker CLI as the observer.

use std::path::Path;
use std::process::Command;

use imgtool_tests::{Dockerd, PodmanService, run_ok, transcript};

use super::{busybox_archive, imgtool};

const MAP: &str = r#"name: main
host_root: site
nginx:
  image: nginx
  binds: {nginx_config: ro}
  uses: uwsgi_socket
  attaches: nginx_log
  exposes: {80: 8080}
  stop_signal: SIGKILL
  create_options:
    command: sh -c 'while ! [ -e /var/lib/uwsgi/socket/ready ]; do sleep 0.1; done; id -u > /var/log/nginx/started; exec sleep 3600'
uwsgi:
  binds: [{uwsgi_config: ro}, {app_config: ro}, app_data]
  attaches: [uwsgi_log, app_log, uwsgi_socket]
  user: 2000
  permissions: u=rwX,g=rX,o=
  stop_signal: SIGKILL
  create_options:
    command: sh -c 'touch /var/lib/uwsgi/socket/ready; exec sleep 3600'
volumes:
  nginx_config: /etc/nginx
  nginx_log: /var/log/nginx
  uwsgi_config: /etc/uwsgi
  uwsgi_socket: /var/lib/uwsgi/socket
  uwsgi_log: /var/log/uwsgi
  app_config: /var/lib/app/config
  app_log: /var/lib/app/log
  app_data: /var/lib/app/data
host:
  nginx_config: config/nginx
  uwsgi_config: config/uwsgi
  app_config: config/app
  app_data: data/app
"#;

/// The engine a test runs against, and its own CLI as the observer.
pub(crate) enum Eng {
    Docker(Dockerd),
    Podman(PodmanService),
}

impl Eng {
    pub(crate) fn socket(&self) -> std::path::PathBuf {
        match self {
            Eng::Docker(d) => d.socket(),
            Eng::Podman(p) => p.socket(),
        }
    }

    fn cli(&self) -> Command {
        match self {
            Eng::Docker(d) => d.docker(),
            Eng::Podman(p) => p.podman(),
        }
    }

    /// When a container last started, in nanoseconds.
    fn started(&self, name: &str) -> u128 {
        let ns = match self {
            Eng::Podman(_) => docker(self, &["inspect", "--format", "{{.State.StartedAt.UnixNano}}", name]),
            Eng::Docker(_) => {
                let at = docker(self, &["inspect", "--format", "{{.State.StartedAt}}", name]);
                run_ok(Command::new("date").args(["-d", at.trim(), "+%s%N"]))
            }
        };
        ns.trim().parse().unwrap()
    }

    /// `map` with what this machine's podman needs of every container (its default
    /// open-file limit is above what the sandbox allows) after each `stop_signal` line.
    pub(crate) fn adapt(&self, map: &str) -> String {
        let extra = match self {
            Eng::Docker(_) => "",
            Eng::Podman(_) => "  host_config: {ulimits: [{name: nofile, soft: 1024, hard: 1024}, {name: nproc, soft: 1024, hard: 1024}]}\n",
        };
        map.replace("  stop_signal: SIGKILL\n", &format!("  stop_signal: SIGKILL\n{extra}"))
    }
}

/// A directory for a test, with busybox (built by imgtool, as bb.tar there) in the engine.
pub(crate) fn scene(d: &Eng) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let archive = busybox_archive(tmp.path());
    docker(d, &["load", "-i", archive.to_str().unwrap()]);
    tmp
}

pub(crate) fn docker(d: &Eng, args: &[&str]) -> String {
    run_ok(d.cli().args(args))
}

pub(crate) fn map(t: &Path, d: &Eng, args: &[&str]) -> std::process::Output {
    let mut c = imgtool(t);
    c.env("DOCKER_HOST", format!("unix://{}", d.socket().display())).arg("map").args(args);
    c.output().unwrap()
}

pub(crate) fn map_ok(t: &Path, d: &Eng, args: &[&str]) -> String {
    let out = map(t, d, args);
    assert!(out.status.success(), "imgtool map {}: {}", args.join(" "), transcript(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Container name -> id, of the map's containers.
pub(crate) fn ids(d: &Eng) -> std::collections::BTreeMap<String, String> {
    docker(d, &["ps", "-a", "--filter", "label=io.imgtool.map", "--format", "{{.Names}} {{.ID}}"])
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(n, i)| (n.to_string(), i.to_string())))
        .collect()
}

/// Container events (`ACTION NAME`) between two moments, as the engine recorded them.
fn events(d: &Eng, since: &str) -> Vec<String> {
    let until = docker(d, &["system", "info", "--format", "{{.SystemTime}}"]);
    let out = docker(
        d,
        &[
            "events",
            "--since",
            since,
            "--until",
            until.trim(),
            "--filter",
            "type=container",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ],
    );
    out.lines().map(str::to_string).collect()
}

fn now(d: &Eng) -> String {
    docker(d, &["system", "info", "--format", "{{.SystemTime}}"]).trim().to_string()
}

#[test]
fn docker_maps_example_on_docker() {
    scenario(&Eng::Docker(Dockerd::start()));
}

#[test]
fn docker_maps_example_on_podman() {
    scenario(&Eng::Podman(PodmanService::start()));
}

/// docker-map's example comes up in order, its volumes owned as the map says; updates
/// re-create exactly what changed and what uses it; it goes down dependents first.
fn scenario(d: &Eng) {
    let is_docker = matches!(d, Eng::Docker(_));
    let tmp = scene(d);
    let t = tmp.path();
    docker(d, &["tag", "busybox:latest", "nginx:latest"]);
    docker(d, &["tag", "busybox:latest", "uwsgi:latest"]);
    for dir in ["config/nginx", "config/uwsgi", "config/app", "data/app"] {
        std::fs::create_dir_all(t.join("site").join(dir)).unwrap();
    }
    let map_file = t.join("main.yml");
    let port = imgtool_tests::free_port().to_string();
    let text = MAP
        .replace("{80: 8080}", &format!("{{80: {port}}}"))
        .replace("host_root: site", &format!("host_root: {}", t.join("site").display()));
    let text = d.adapt(&text);
    std::fs::write(&map_file, text).unwrap();

    // Startup: uwsgi (whose volume nginx uses) first.
    map_ok(t, d, &["startup", "main.yml"]);
    assert!(d.started("main.uwsgi") < d.started("main.nginx"), "nginx started before uwsgi");
    // The attached volumes are user 2000's, mode u=rwX,g=rX,o= (750), seen from inside.
    let stat = docker(d, &["exec", "main.uwsgi", "stat", "-c", "%u:%g %a", "/var/lib/uwsgi/socket", "/var/log/uwsgi", "/var/lib/app/log"]);
    assert_eq!(stat.lines().collect::<Vec<_>>(), ["2000:2000 750"; 3]);
    // nginx saw what uwsgi (as user 2000) wrote in the shared socket volume.
    let mut started = String::new();
    for _ in 0..100 {
        started = d
            .cli()
            .args(["exec", "main.nginx", "cat", "/var/log/nginx/started"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if !started.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(started.trim(), "0", "nginx never saw uwsgi's socket");
    let inspect = docker(d, &["inspect", "--format", "{{json .HostConfig.PortBindings}}", "main.nginx"]);
    assert!(inspect.contains(&format!("\"HostPort\":\"{port}\"")), "{inspect}");

    // An update with nothing changed plans nothing and does nothing.
    let before = ids(d);
    let started = d.started("main.nginx");
    let since = is_docker.then(|| now(d));
    assert_eq!(map_ok(t, d, &["plan", "main.yml"]), "");
    assert_eq!(map_ok(t, d, &["update", "main.yml"]), "");
    if let Some(since) = since {
        assert_eq!(events(d, &since), Vec::<String>::new(), "a no-change update touched containers");
    }
    assert_eq!(ids(d), before);
    assert_eq!(d.started("main.nginx"), started, "a no-change update restarted nginx");

    // nginx's command changes: only nginx is re-created.
    std::fs::write(&map_file, std::fs::read_to_string(&map_file).unwrap().replacen("exec sleep 3600", "exec sleep 3601", 1)).unwrap();
    let plan = map_ok(t, d, &["plan", "main.yml"]);
    assert!(plan.contains("create main.nginx (its configuration changed)") && !plan.contains("main.uwsgi"), "{plan}");
    map_ok(t, d, &["update", "main.yml"]);
    let after = ids(d);
    assert_ne!(after["main.nginx"], before["main.nginx"]);
    assert_eq!(after["main.uwsgi"], before["main.uwsgi"]);

    // uwsgi's permissions change: it and nginx, which uses its volume, are re-created, and
    // its volumes, which exist, take the new mode.
    std::fs::write(&map_file, std::fs::read_to_string(&map_file).unwrap().replace("u=rwX,g=rX,o=", "u=rwX,g=rwX,o=")).unwrap();
    map_ok(t, d, &["update", "main.yml"]);
    let again = ids(d);
    assert_ne!(again["main.nginx"], after["main.nginx"]);
    assert_ne!(again["main.uwsgi"], after["main.uwsgi"]);
    let stat = docker(d, &["exec", "main.uwsgi", "stat", "-c", "%u:%g %a", "/var/lib/uwsgi/socket", "/var/log/uwsgi", "/var/lib/app/log"]);
    assert_eq!(stat.lines().collect::<Vec<_>>(), ["2000:2000 770"; 3]);

    // A stopped container whose configuration matches is only started.
    docker(d, &["stop", "main.nginx"]);
    let plan = map_ok(t, d, &["plan", "main.yml"]);
    assert_eq!(plan.trim(), "start main.nginx (stopped)");
    map_ok(t, d, &["update", "main.yml"]);
    assert_eq!(ids(d), again);
    let status = map_ok(t, d, &["status", "main.yml"]);
    assert!(status.lines().all(|l| l.contains(" running ") && l.ends_with("as the map says")), "{status}");

    // Shutdown of uwsgi takes nginx, which needs it, down first.
    let plan = map_ok(t, d, &["plan", "main.yml"]);
    assert_eq!(plan, "");
    let since = is_docker.then(|| now(d));
    map_ok(t, d, &["shutdown", "main.yml", "uwsgi"]);
    if let Some(since) = since {
        let gone: Vec<String> = events(d, &since).into_iter().filter(|e| e.starts_with("destroy ")).collect();
        assert_eq!(gone, ["destroy main.nginx", "destroy main.uwsgi"]);
    }
    assert!(ids(d).is_empty());
}

#[test]
fn bad_maps_and_engines_get_clear_errors_and_leave_nothing() {
    let d = &Eng::Docker(Dockerd::start());
    let tmp = scene(d);
    let t = tmp.path();
    let cases = [
        (
            "cycle.yml",
            "name: m\na: {image: busybox, links: b}\nb: {image: busybox, links: a}\n",
            "depend on each other in a circle: a -> b -> a",
        ),
        ("alias.yml", "name: m\na: {image: busybox, uses: sock}\n", "No shared or attached volumes found for used volume(s): sock."),
        ("key.yml", "name: m\na:\n  image: busybox\n  exposez: [80]\n", "unknown field `exposez`"),
    ];
    for (file, text, want) in cases {
        std::fs::write(t.join(file), text).unwrap();
        let out = map(t, d, &["startup", file]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{file}: {}", transcript(&out));
    }
    std::fs::write(t.join("ok.yml"), "name: m\na: {image: busybox}\n").unwrap();
    let out = imgtool(t).args(["map", "status", "ok.yml", "--host", "unix:///nonexistent/docker.sock"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("unix:///nonexistent/docker.sock"), "{}", transcript(&out));
    // A startup whose second container's image does not exist leaves nothing of itself.
    std::fs::write(
        t.join("missing.yml"),
        "name: m\nfirst:\n  image: busybox\n  attaches: data\n  user: 1000\n  create_options: {command: sleep 3600}\nsecond:\n  image: not-there\n  uses: data\nvolumes: {data: /data}\n",
    )
    .unwrap();
    let out = map(t, d, &["startup", "missing.yml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("m.second") && err.contains("create"), "{}", transcript(&out));
    assert_eq!(docker(d, &["ps", "-aq"]), "", "a failed startup left containers");
    assert_eq!(docker(d, &["volume", "ls", "-q"]), "", "a failed startup left volumes");
}

const HEALTH: &str = r#"name: hc
db:
  image: busybox
  attaches: data
  healthcheck: {test: "[ -e /data/ready ]", interval: 200ms, retries: 100}
  exec_commands:
  - [[sh, -c, "echo ran >> /data/exec"], root]
  - [[sh, -c, "echo once >> /data/once"], root, initial]
  stop_signal: SIGKILL
  create_options:
    command: sh -c 'sleep 2; touch /data/ready; exec sleep 3600'
web:
  image: busybox
  uses: data
  stop_signal: SIGKILL
  create_options:
    command: sh -c '[ -e /data/ready ] && echo yes > /data/seen || echo no > /data/seen; exec sleep 3600'
volumes:
  data: /data
"#;

#[test]
fn health_and_exec_commands_on_docker() {
    health_and_exec(&Eng::Docker(Dockerd::start()));
}

#[test]
fn health_and_exec_commands_on_podman() {
    health_and_exec(&Eng::Podman(PodmanService::start()));
}

/// `startup --wait` starts a container only once what it needs is healthy (podman runs no
/// checks by itself: imgtool runs them through exec); a check that never passes fails the
/// startup, naming the container, and leaves nothing; exec commands run after the start.
fn health_and_exec(d: &Eng) {
    let tmp = scene(d);
    let t = tmp.path();
    std::fs::write(t.join("hc.yml"), d.adapt(HEALTH)).unwrap();
    map_ok(t, d, &["startup", "--wait", "30", "hc.yml"]);
    assert_eq!(docker(d, &["exec", "hc.web", "cat", "/data/seen"]).trim(), "yes", "web started before db was healthy");
    assert_eq!(docker(d, &["exec", "hc.web", "cat", "/data/exec"]).trim(), "ran", "db's exec command did not run");
    // Every start runs the commands of policy `restart`; `initial` ones run on the first
    // start only; `map exec` runs them all.
    map_ok(t, d, &["restart", "hc.yml", "db"]);
    map_ok(t, d, &["exec", "hc.yml", "db"]);
    let ran = |f: &str| docker(d, &["exec", "hc.web", "cat", f]).lines().count();
    assert_eq!((ran("/data/exec"), ran("/data/once")), (3, 2));
    map_ok(t, d, &["shutdown", "hc.yml"]);
    docker(d, &["volume", "rm", "hc.data"]);

    std::fs::write(t.join("never.yml"), d.adapt(&HEALTH.replace("touch /data/ready", "true").replace("name: hc", "name: never"))).unwrap();
    let out = map(t, d, &["startup", "--wait", "2", "never.yml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("never.db did not become healthy within 2 s"), "{}", transcript(&out));
    assert_eq!(docker(d, &["ps", "-aq"]), "", "a failed startup left containers");
}

#[test]
fn images_from_imgtool_on_docker() {
    images_from_imgtool(&Eng::Docker(Dockerd::start()));
}

#[test]
fn images_from_imgtool_on_podman() {
    images_from_imgtool(&Eng::Podman(PodmanService::start()));
}

/// A container's image named as an imgtool transport is loaded into the engine (once), and
/// `update` after the source changes re-creates exactly the containers on it.
fn images_from_imgtool(d: &Eng) {
    let tmp = scene(d);
    let t = tmp.path();
    run_ok(imgtool(t).args(["append", "-q", "docker-archive:bb.tar", "oci:app:1", "--contents", "/version=1"]));
    // A pipeline and a Dockerfile build, each named in the map as the image of a container.
    std::fs::write(
        t.join("web.toml"),
        "[source]\nimage = \"docker-archive:bb.tar\"\n[[step]]\nadd_contents = { \"/web\" = \"w1\" }\n[[sink]]\nto = \"oci:unused:1\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(t.join("ctx")).unwrap();
    std::fs::write(t.join("ctx/Dockerfile"), "FROM docker-archive:../bb.tar\nCOPY msg /msg\n").unwrap();
    std::fs::write(t.join("ctx/msg"), "m1").unwrap();
    let text = "name: own\napp:\n  image: oci:app:1\n  stop_signal: SIGKILL\n  create_options: {command: sleep 3600}\nother:\n  image: busybox\n  stop_signal: SIGKILL\n  create_options: {command: sleep 3600}\nweb:\n  image: pipe:web.toml\n  stop_signal: SIGKILL\n  create_options: {command: sleep 3600}\njob:\n  image: build:ctx\n  stop_signal: SIGKILL\n  create_options: {command: sleep 3600}\ntagged:\n  image: build:latest\n  stop_signal: SIGKILL\n  create_options: {command: sleep 3600}\n";
    // `build:latest`, with no directory `latest`, is the engine's image `build`, tag `latest`,
    // as docker-map reads it.
    docker(d, &["tag", "busybox:latest", "build:latest"]);
    let text = d.adapt(text);
    std::fs::write(t.join("own.yml"), text).unwrap();
    let out = map(t, d, &["startup", "own.yml"]);
    assert!(out.status.success(), "{}", transcript(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loading oci:app:1 into"), "{}", transcript(&out));
    assert_eq!(docker(d, &["exec", "own.app", "cat", "/version"]), "1");
    assert_eq!(docker(d, &["exec", "own.web", "cat", "/web"]), "w1");
    assert_eq!(docker(d, &["exec", "own.job", "cat", "/msg"]), "m1");
    assert!(!t.join("unused").exists(), "the pipeline's sinks were written");
    let before = ids(d);
    let out = map(t, d, &["update", "own.yml"]);
    assert!(out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("loading"), "loaded again: {}", transcript(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    run_ok(imgtool(t).args(["append", "-q", "docker-archive:bb.tar", "oci:app:1", "--contents", "/version=2"]));
    map_ok(t, d, &["update", "own.yml"]);
    assert_eq!(docker(d, &["exec", "own.app", "cat", "/version"]), "2");
    let after = ids(d);
    assert_ne!(after["own.app"], before["own.app"]);
    assert_eq!((&after["own.other"], &after["own.web"], &after["own.job"]), (&before["own.other"], &before["own.web"], &before["own.job"]));
    // A changed build context re-creates its container only.
    std::fs::write(t.join("ctx/msg"), "m2").unwrap();
    map_ok(t, d, &["update", "own.yml"]);
    assert_eq!(docker(d, &["exec", "own.job", "cat", "/msg"]), "m2");
    let last = ids(d);
    assert_ne!(last["own.job"], after["own.job"]);
    assert_eq!((&last["own.app"], &last["own.web"]), (&after["own.app"], &after["own.web"]));
    map_ok(t, d, &["shutdown", "own.yml"]);
}

/// docker-map's housekeeping: exited containers, untagged images, every container.
#[test]
fn cleanup_containers_images_and_all() {
    let d = &Eng::Docker(Dockerd::start());
    let tmp = scene(d);
    let t = tmp.path();
    docker(d, &["run", "--name", "exited", "busybox", "true"]);
    docker(d, &["create", "--name", "created", "busybox", "true"]);
    docker(d, &["run", "-d", "--name", "running", "busybox", "sleep", "3600"]);
    let host = format!("unix://{}", d.socket().display());
    let out = run_ok(imgtool(t).args(["map", "cleanup-containers", "--host", &host]));
    assert_eq!(out.trim(), "removed container exited");
    // An image that loses its tag to a newer one is untagged: cleanup-images removes it.
    run_ok(imgtool(t).args(["append", "-q", "docker-archive:bb.tar", "docker-archive:v2.tar:busybox:latest", "--contents", "/v=2"]));
    let old = docker(d, &["inspect", "--format", "{{.Id}}", "busybox:latest"]);
    docker(d, &["load", "-i", t.join("v2.tar").to_str().unwrap()]);
    docker(d, &["rm", "-f", "created", "running"]);
    let out = run_ok(imgtool(t).args(["map", "cleanup-images", "--host", &host]));
    assert_eq!(out.trim(), format!("removed image {}", old.trim()));
    docker(d, &["run", "-d", "--name", "again", "busybox", "sleep", "3600"]);
    let out = run_ok(imgtool(t).args(["map", "remove-all-containers", "--host", &host]));
    assert_eq!(out.trim(), "removed container again");
    assert_eq!(docker(d, &["ps", "-aq"]), "");
    let out = imgtool(t).args(["map", "cleanup-images", "some.yml", "--host", &host]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("reads no map"), "{}", transcript(&out));
}

/// The configuration hash does not depend on key order; updating a container takes what
/// shares its network along; a source that fails mid-load fails the startup cleanly.
#[test]
fn key_order_dependents_and_a_broken_source() {
    let d = &Eng::Docker(Dockerd::start());
    let tmp = scene(d);
    let t = tmp.path();
    let text = |env: &str| {
        format!(
            "name: edge\na:\n  image: busybox\n  stop_signal: SIGKILL\n  create_options:\n    command: sleep 3600\n    environment: {env}\nb:\n  image: busybox\n  network_mode: a\n  stop_signal: SIGKILL\n  create_options: {{command: sleep 3600}}\n"
        )
    };
    std::fs::write(t.join("edge.yml"), text("{A: '1', B: '2'}")).unwrap();
    map_ok(t, d, &["startup", "edge.yml"]);
    std::fs::write(t.join("edge.yml"), text("{B: '2', A: '1'}")).unwrap();
    assert_eq!(map_ok(t, d, &["plan", "edge.yml"]), "", "reordered keys changed the configuration hash");
    std::fs::write(t.join("edge.yml"), text("{A: '1', B: '3'}")).unwrap();
    let plan = map_ok(t, d, &["plan", "edge.yml", "a"]);
    assert!(plan.contains("create edge.a (its configuration changed)") && plan.contains("create edge.b (a is re-created)"), "{plan}");
    map_ok(t, d, &["update", "edge.yml", "a"]);
    assert_eq!(map_ok(t, d, &["plan", "edge.yml"]), "");
    map_ok(t, d, &["shutdown", "edge.yml"]);

    // A layout missing a layer: the load fails, nothing panics, nothing is left.
    run_ok(imgtool(t).args(["append", "-q", "docker-archive:bb.tar", "oci:broken:1", "--contents", "/x=1"]));
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(t.join("broken/index.json")).unwrap()).unwrap();
    let manifest = index["manifests"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(t.join("broken/blobs/sha256").join(&manifest)).unwrap()).unwrap();
    let layer = m["layers"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    std::fs::remove_file(t.join("broken/blobs/sha256").join(layer)).unwrap();
    std::fs::write(t.join("broken.yml"), "name: broken\nx:\n  image: oci:broken:1\n  create_options: {command: sleep 3600}\n").unwrap();
    let out = map(t, d, &["startup", "broken.yml"]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("container x: loading oci:broken:1"), "{}", transcript(&out));
    assert_eq!(docker(d, &["ps", "-aq"]), "");
}
