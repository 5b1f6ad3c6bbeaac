//! One map on two engines (docker-map's `clients`): a Docker Engine and podman's service,
//! each running the containers the map puts there, with its own addresses for interface
//! aliases, acted on side by side; an engine that does not answer stops the action on all.

use imgtool_tests::{Dockerd, PodmanService, transcript};

use super::maps::{Eng, docker, ids, map, map_ok, scene};

const MAP: &str = r#"name: multi
clients: [dock, pod]
store:
  image: busybox
  attaches: data
  stop_signal: SIGKILL
  create_options: {command: sleep 3600}
web:
  image: busybox
  clients: pod
  uses: data
  exposes: [[80, PORT, public]]
  stop_signal: SIGKILL
  create_options: {command: sleep 3600}
tool:
  image: busybox
  clients: dock
  exposes: [[81, PORT2, public]]
  stop_signal: SIGKILL
  create_options: {command: sleep 3600}
volumes:
  data: /data
"#;

fn names(e: &Eng) -> Vec<String> {
    ids(e).into_keys().collect()
}

#[test]
fn one_map_on_docker_and_podman() {
    let (dock, pod) = (Eng::Docker(Dockerd::start()), Eng::Podman(PodmanService::start()));
    let tmp = scene(&dock);
    let t = tmp.path();
    drop(scene(&pod));
    let clients = format!(
        "dock:\n  base_url: unix://{}\n  interfaces: {{public: 127.0.0.1}}\npod:\n  base_url: unix://{}\n  interfaces: {{public: 127.0.0.2}}\n",
        dock.socket().display(),
        pod.socket().display()
    );
    std::fs::write(t.join("clients.yml"), clients).unwrap();
    let (p1, p2) = (imgtool_tests::free_port().to_string(), imgtool_tests::free_port().to_string());
    let text = pod.adapt(&MAP.replace("PORT2", &p2).replace("PORT", &p1));
    std::fs::write(t.join("multi.yml"), &text).unwrap();

    let out = map_ok(t, &dock, &["startup", "--clients", "clients.yml", "multi.yml"]);
    assert!(out.contains("dock: start multi.store") && out.contains("pod: start multi.web"), "{out}");
    assert_eq!(names(&dock), ["multi.store", "multi.tool"]);
    assert_eq!(names(&pod), ["multi.store", "multi.web"]);
    // Each engine published on its own client's address for `public`.
    let bound = |e: &Eng, name: &str| docker(e, &["inspect", "--format", "{{json .HostConfig.PortBindings}}", name]);
    assert!(bound(&pod, "multi.web").contains("127.0.0.2"), "{}", bound(&pod, "multi.web"));
    assert!(bound(&dock, "multi.tool").contains("127.0.0.1"), "{}", bound(&dock, "multi.tool"));

    // Nothing changed: nothing re-created on either engine.
    let before = (ids(&dock), ids(&pod));
    let out = map_ok(t, &dock, &["update", "--clients", "clients.yml", "multi.yml"]);
    assert!(!out.contains("create"), "{out}");
    assert_eq!((ids(&dock), ids(&pod)), before);
    // A target acts only where it runs; status speaks for both engines.
    map_ok(t, &dock, &["stop", "--clients", "clients.yml", "multi.yml", "web"]);
    let state = |e: &Eng, n: &str| docker(e, &["inspect", "--format", "{{.State.Running}}", n]).trim().to_string();
    assert_eq!(
        (state(&pod, "multi.web"), state(&pod, "multi.store"), state(&dock, "multi.store")),
        ("false".into(), "true".into(), "true".into())
    );
    let status = map_ok(t, &dock, &["status", "--clients", "clients.yml", "multi.yml"]);
    assert!(status.contains("dock: multi.tool  running") && status.contains("pod: multi.web  exited"), "{status}");

    // A client the clients file lacks, one that does not answer, a dependency across
    // engines: each an error naming it, and nothing done anywhere.
    std::fs::write(t.join("one.yml"), "dock:\n  base_url: unix:///nonexistent/docker.sock\n").unwrap();
    let out = map(t, &dock, &["shutdown", "--clients", "one.yml", "multi.yml"]);
    assert!(!out.status.success() && transcript(&out).contains("client pod, which one.yml does not define"), "{}", transcript(&out));
    std::fs::write(t.join("dead.yml"), format!("pod:\n  base_url: unix://{}\n  interfaces: {{public: 127.0.0.2}}\ndock:\n  base_url: unix:///nonexistent/d.sock\n  interfaces: {{public: 127.0.0.1}}\n", pod.socket().display()))
        .unwrap();
    let out = map(t, &dock, &["shutdown", "--clients", "dead.yml", "multi.yml"]);
    assert!(!out.status.success() && transcript(&out).contains("client dock"), "{}", transcript(&out));
    assert_eq!(names(&pod), ["multi.store", "multi.web"], "one engine was acted on while the other did not answer");
    std::fs::write(t.join("cross.yml"), text.replace("  uses: data\n", "  links: tool\n")).unwrap();
    let out = map(t, &dock, &["startup", "--clients", "clients.yml", "cross.yml"]);
    assert!(!out.status.success() && transcript(&out).contains("web runs on client pod and needs tool"), "{}", transcript(&out));

    map_ok(t, &dock, &["shutdown", "--clients", "clients.yml", "multi.yml"]);
    assert!(names(&dock).is_empty() && names(&pod).is_empty());
}

/// Docker's conventions for reaching an engine: `DOCKER_HOST=tcp://...` with
/// `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`, `--host`, and a client's `tls: true`; an
/// engine that wants TLS and is spoken to without it is an error naming it.
#[test]
fn an_engine_over_tls() {
    let (d, port, certs) = Dockerd::start_tls();
    let dock = Eng::Docker(d);
    let tmp = scene(&dock);
    let t = tmp.path();
    std::fs::write(
        t.join("one.yml"),
        "name: tls\napp:\n  image: busybox\n  stop_signal: SIGKILL\n  create_options: {command: sleep 3600}\n",
    )
    .unwrap();
    let host = format!("tcp://127.0.0.1:{port}");
    let run = |envs: &[(&str, &str)], args: &[&str]| {
        let mut c = super::imgtool(t);
        c.env_remove("DOCKER_HOST").envs(envs.iter().copied()).arg("map").args(args);
        c.output().unwrap()
    };
    let cert_path = certs.path().to_str().unwrap();
    let out = run(&[("DOCKER_HOST", &host), ("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", cert_path)], &["startup", "one.yml"]);
    assert!(out.status.success(), "{}", transcript(&out));
    assert_eq!(names(&dock), ["tls.app"]);
    let out = run(&[("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", cert_path)], &["stop", "--host", &host, "one.yml"]);
    assert!(out.status.success(), "{}", transcript(&out));
    std::fs::write(t.join("c.yml"), format!("__default__:\n  base_url: {host}\n  tls: true\n")).unwrap();
    let out = run(&[("DOCKER_CERT_PATH", cert_path)], &["start", "--clients", "c.yml", "one.yml"]);
    assert!(out.status.success(), "{}", transcript(&out));
    // Without TLS the engine does not answer: an error naming it, nothing done.
    let out = run(&[("DOCKER_HOST", &host)], &["shutdown", "one.yml"]);
    assert!(!out.status.success() && transcript(&out).contains(&host), "{}", transcript(&out));
    assert_eq!(names(&dock), ["tls.app"]);
    map_ok(t, &dock, &["shutdown", "one.yml"]);
}
