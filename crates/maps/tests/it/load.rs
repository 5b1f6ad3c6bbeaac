//! Map files: docker-map's own examples load unchanged, YAML and TOML mean the same, and bad
//! maps get docker-map's integrity messages or an error naming the key and its line.

use std::path::PathBuf;

use imgtool_maps::{Bind, ContainerMap, HostPath, parse_map};

fn fixture(name: &str) -> PathBuf {
    imgtool_tests::workspace().join("fixtures/maps").join(name)
}

fn error_of(yaml: &str) -> String {
    match parse_map(yaml, false, "t") {
        Err(e) => e,
        Ok(m) => m.resolved().map(|_| String::new()).unwrap_or_else(|e| e.to_string()),
    }
}

#[test]
fn docker_maps_documented_examples_load() {
    let web = ContainerMap::load(&fixture("web-app.yml")).unwrap().resolved().unwrap();
    assert_eq!(web.name, "web-app", "named after the file");
    assert_eq!(web.instance_names(), ["app_server.instance1", "app_server.instance2", "web_server"]);
    let app = &web.containers["app_server"];
    // `- app_data:` (an alias with nothing after it) is a read-write alias.
    assert_eq!(app.binds[1], Bind::Alias { alias: "app_data".into(), readonly: false });
    assert_eq!(app.user.as_deref(), Some("2000"));
    let nginx = &web.containers["web_server"];
    assert_eq!(nginx.binds[0], Bind::Path { path: "/etc/nginx".into(), host: HostPath::One("config/nginx".into()), readonly: true });
    assert_eq!(nginx.exposes.iter().map(|p| (p.exposed.as_str(), p.host_port)).collect::<Vec<_>>(), [("80", Some(80)), ("443", Some(443))]);
    let main = ContainerMap::load(&fixture("main.yml")).unwrap().resolved().unwrap();
    insta::assert_json_snapshot!("main_map", main);
}

#[test]
fn toml_and_yaml_mean_the_same() {
    let yaml = ContainerMap::load(&fixture("main.yml")).unwrap();
    let mut toml = ContainerMap::load(&fixture("main.toml")).unwrap();
    // A TOML table's keys come sorted: `exposes = {80 = 80, 443 = 443}` lists 443 first.
    toml.containers.get_mut("nginx").unwrap().exposes.sort_by_key(|p| p.exposed.len());
    assert_eq!(yaml, toml);
}

#[test]
fn extends_merges_as_docker_map_does() {
    let m = parse_map(
        r#"
name: m
base:
  abstract: true
  image: busybox
  binds: [{cfg: ro}]
  exposes: [80]
  create_options: {environment: {A: "1"}, command: base}
  instances: [a]
app:
  extends: base
  binds: [{cfg: rw}]
  exposes: [[80, 8080]]
  create_options: {command: app}
  instances: [b]
volumes: {cfg: /etc/app}
host: {cfg: /srv/cfg}
"#,
        false,
        "x",
    )
    .unwrap()
    .resolved()
    .unwrap();
    assert_eq!(m.containers.keys().collect::<Vec<_>>(), ["app"], "the abstract base is dropped");
    let app = &m.containers["app"];
    assert_eq!(app.image.as_deref(), Some("busybox"));
    assert_eq!(app.instances, ["a", "b"], "instances are joined");
    assert_eq!(app.binds, [Bind::Alias { alias: "cfg".into(), readonly: false }], "a bind of the same alias is replaced");
    assert_eq!(app.exposes[0].host_port, Some(8080));
    assert_eq!(app.create_options["command"], "app");
    assert_eq!(app.create_options["environment"]["A"], "1");
}

#[test]
fn bad_maps_get_docker_maps_messages() {
    let cases = [
        ("a:\n  links: b\n", "No container instance found for link(s): b."),
        ("a:\n  uses: sock\n", "No shared or attached volumes found for used volume(s): sock."),
        ("a:\n  binds: cfg\nvolumes: {cfg: /c}\n", "No host share found for mapped volume(s): cfg."),
        ("a:\n  attaches: log\n", "No volume name-path-assignments found for volume(s): log."),
        ("a:\n  attaches: log\nb:\n  attaches: log\nvolumes: {log: /l}\n", "Duplicated attached volumes found with name(s): log."),
        ("a:\n  networks: back\n", "No network configuration found for the following network reference(s): back"),
        ("a:\n  network_mode: b\n", "No container instance found for the following network mode reference(s): b"),
        ("a: {}\ngroups: {a: [a]}\n", "Names are used both for container configurations (or instances) and for container groups: a."),
        ("a: {}\ngroups: {g: [b]}\n", "Container configurations or certain instances are referenced by groups, but are not defined: b."),
        ("a:\n  instances: [x, y]\nb:\n  links: a\n", "No container instance found for link(s): a."),
        ("a:\n  extends: b\n", "a extends b, which is not in the map"),
        ("a:\n  extends: b\nb:\n  extends: a\n", "`extends` goes round in a circle: a -> b -> a"),
    ];
    for (yaml, want) in cases {
        let got = error_of(yaml);
        assert!(got.contains(want), "{yaml}\nwant: {want}\ngot:  {got}");
    }
}

#[test]
fn unknown_keys_and_bad_values_name_the_key_and_line() {
    let got = error_of("name: m\nweb:\n  image: x\n  portz: [80]\n");
    assert!(got.contains("unknown field `portz`") && got.contains("line 4"), "{got}");
    let got = error_of("name: m\nvolumes:\n  log: {default_path: /l, mode: 1}\n");
    assert!(got.contains("mode") || got.contains("volumes"), "{got}");
    let got = error_of("name: m\nweb:\n  exposes: [[80, 99999]]\n");
    assert!(got.contains("container web: exposes: item 1: \"99999\" is not a port number"), "{got}");
    let got = error_of("name: m\nweb:\n  healthcheck: [CMD-SHELL, x]\n");
    assert!(got.contains("container web: healthcheck:") && got.contains("not a duration"), "{got}");
    let got = error_of("name: 'a b'\nweb: {}\n");
    assert!(got.contains("cannot name containers"), "{got}");
    let got = match parse_map("web = 1\n[web2]\nimage = 3\n", true, "t") {
        Err(e) => e,
        Ok(_) => String::new(),
    };
    assert!(got.contains("line"), "TOML errors carry their place: {got}");
}

#[test]
fn inputs_that_would_exhaust_memory_or_stack_are_refused() {
    let bomb =
        format!("name: m\na:\n  create_options:\n    a: &a [{}]\n    b: [{}]\n", vec!["0"; 2000].join(","), vec!["*a"; 2000].join(","));
    let got = error_of(&bomb);
    assert!(got.contains("line 5: the alias *a") && got.contains("extends"), "{got}");
    // `*` inside a value is no alias.
    assert_eq!(error_of("name: m\na:\n  create_options: {command: 'ls *.txt'}\n  user: '1:2' # *not\n"), "");
    let deep = format!("[{}]\nx = 1\n", vec!["a"; 100_000].join("."));
    assert!(parse_map(&deep, true, "t").unwrap_err().contains("dotted parts"));
    let mut doubling = String::from("name: m\nc0: {abstract: true, image: x}\n");
    for i in 1..60 {
        doubling.push_str(&format!("c{i}: {{abstract: true, extends: [c{}, c{}]}}\n", i - 1, i - 1));
    }
    doubling.push_str("top: {extends: c59}\n");
    assert!(error_of(&doubling).is_empty(), "a doubling extends chain is resolved once per name");
    let many: String = (0..3000).map(|i| format!("c{i}: {{image: x}}\n")).collect();
    assert!(error_of(&many).contains("at most 2048"));
    let groups = error_of("name: m\ngroups: {a: [b], b: [a]}\n");
    assert!(groups.contains("referenced by groups, but are not defined"), "{groups}");
}
