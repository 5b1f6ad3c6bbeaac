//! A map's networks and volumes as the engine makes them: a container on two networks (the
//! second joined after create), an internal network with driver options and labels, a
//! volume with its driver's options; and an update after a second network is added.

use super::maps::{Eng, docker, ids, map, map_ok, scene};
use imgtool_tests::{Dockerd, PodmanService, transcript};

const MAP: &str = r#"name: nets
networks:
  front: {create_options: {ipam: {Config: [{Subnet: FRONT}]}}}
  back:
    internal: true
    driver_options: {com.docker.network.driver.mtu: "1400"}
    create_options: {labels: {team: data}, ipam: {Config: [{Subnet: BACK}]}}
volumes:
  cache:
    default_path: /cache
    driver_options: {type: tmpfs, device: tmpfs, o: nodev}
db:
  image: busybox
  networks: back
  attaches: cache
  stop_signal: SIGKILL
  create_options: {command: sleep 3600}
app:
  image: busybox
  networks: [front, {back: {aliases: [application]}}]
  stop_signal: SIGKILL
  create_options: {command: "sh -c 'mkdir /www; echo hello > /www/index.html; exec httpd -f -p 8000 -h /www'"}
"#;

#[test]
fn networks_and_volume_options_on_docker() {
    networks_and_volumes(&Eng::Docker(Dockerd::start()));
}

#[test]
fn networks_and_volume_options_on_podman() {
    networks_and_volumes(&Eng::Podman(PodmanService::start()));
}

fn networks_and_volumes(d: &Eng) {
    let tmp = scene(d);
    let t = tmp.path();
    // Subnets of its own: engines side by side in other tests take the default pools.
    let n = imgtool_tests::free_port();
    let text = MAP
        .replace("FRONT", &format!("10.{}.{}.0/24", 100 + n % 100, (n / 100) % 125 * 2))
        .replace("BACK", &format!("10.{}.{}.0/24", 100 + n % 100, (n / 100) % 125 * 2 + 1));
    std::fs::write(t.join("nets.yml"), d.adapt(&text)).unwrap();
    map_ok(t, d, &["startup", "nets.yml"]);
    let joined = docker(d, &["inspect", "--format", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", "nets.app"]);
    assert_eq!(joined.split_whitespace().collect::<Vec<_>>(), ["nets.back", "nets.front"]);
    // The second network's alias is app's there; db, only on back, reaches app by it (by
    // its address on podman, whose networks here have no DNS plugin).
    let on_back = |f: &str| {
        docker(
            d,
            &["inspect", "--format", &format!("{{{{with index .NetworkSettings.Networks \"nets.back\"}}}}{f}{{{{end}}}}"), "nets.app"],
        )
    };
    assert!(on_back("{{.Aliases}}").contains("application"), "{}", on_back("{{.Aliases}}"));
    let peer = match d {
        Eng::Docker(_) => "application".to_string(),
        Eng::Podman(_) => on_back("{{.IPAddress}}").trim().to_string(),
    };
    // (Debian's static busybox wget crashes: nc speaks the HTTP.)
    let get = format!("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {peer} 8000");
    let got = docker(d, &["exec", "nets.db", "sh", "-c", &get]);
    assert!(got.starts_with("HTTP/1.1 200") && got.ends_with("hello\n"), "{got}");
    let net = docker(
        d,
        &[
            "network",
            "inspect",
            "--format",
            // podman's service takes Docker's option name and keeps it as its own.
            if matches!(d, Eng::Docker(_)) {
                "{{.Internal}} {{index .Options \"com.docker.network.driver.mtu\"}} {{index .Labels \"team\"}}"
            } else {
                "{{.Internal}} {{index .Options \"mtu\"}} {{index .Labels \"team\"}}"
            },
            "nets.back",
        ],
    );
    assert_eq!(net.trim(), "true 1400 data");
    let mounts = docker(d, &["exec", "nets.db", "cat", "/proc/mounts"]);
    assert!(mounts.lines().any(|l| l.starts_with("tmpfs /cache tmpfs")), "{mounts}");

    // An alias on the network joined after create changed: app alone is re-created; a bad network
    // option is refused before anything is done.
    let before = ids(d);
    std::fs::write(t.join("nets.yml"), d.adapt(&text.replace("aliases: [application]", "aliases: [application, app2]"))).unwrap();
    map_ok(t, d, &["update", "nets.yml"]);
    let after = ids(d);
    assert_ne!(after["nets.app"], before["nets.app"]);
    assert_eq!(after["nets.db"], before["nets.db"]);
    std::fs::write(t.join("bad.yml"), text.replace("{labels: {team: data},", "{lables: {team: data},").replace("name: nets", "name: bad"))
        .unwrap();
    let out = map(t, d, &["startup", "bad.yml"]);
    assert!(!out.status.success() && transcript(&out).contains("create option lables is not one it takes"), "{}", transcript(&out));
    map_ok(t, d, &["shutdown", "nets.yml"]);
    docker(d, &["volume", "rm", "nets.cache"]);
}
