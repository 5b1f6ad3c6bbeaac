//! What the engine is sent for networks, volumes and containers, and what the configuration
//! hash covers.

use imgtool_maps::{CONFIG_LABEL, ContainerMap, parse_map};

fn map(text: &str) -> Result<ContainerMap, String> {
    parse_map(text, false, "m")?.resolved().map_err(|e| e.to_string())
}

fn hash(m: &ContainerMap, config: &str) -> String {
    let unit = m.units().into_iter().find(|u| u.config == config).unwrap();
    m.create_body(&unit).unwrap()["Labels"][CONFIG_LABEL].as_str().unwrap().to_string()
}

#[test]
fn network_bodies_take_docker_py_and_engine_names_and_refuse_the_rest() {
    let m = map("name: m\nnetworks:\n  n:\n    driver: bridge\n    internal: true\n    driver_options: {a: '1'}\n    create_options: {enable_ipv6: true, Attachable: true, options: {b: 2}, labels: {team: x}}\na:\n  networks: n\n").unwrap();
    let b = m.network_body("n").unwrap();
    assert_eq!((b["Name"].as_str(), b["Driver"].as_str(), b["Internal"].as_bool()), (Some("m.n"), Some("bridge"), Some(true)));
    assert_eq!((b["EnableIPv6"].as_bool(), b["Attachable"].as_bool()), (Some(true), Some(true)));
    assert_eq!((b["Options"]["a"].as_str(), b["Options"]["b"].as_str()), (Some("1"), Some("2")));
    assert_eq!((b["Labels"]["team"].as_str(), b["Labels"]["io.imgtool.map"].as_str()), (Some("x"), Some("m")));
    for (bad, needle) in [
        ("{check_duplicate: true}", "check_duplicate is not one it takes"),
        ("{internal: 'yes'}", "internal: expected true or false"),
        ("{driver: 5}", "driver: expected a string"),
        ("{labels: [a]}", "labels: expected a mapping"),
    ] {
        let e = map(&format!("name: m\nnetworks:\n  n:\n    create_options: {bad}\na:\n  networks: n\n")).unwrap_err();
        assert!(e.contains(needle), "{bad}: {e}");
    }
}

#[test]
fn volume_create_options_win_over_its_own_settings_and_are_checked() {
    let m = map("name: m\nvolumes:\n  v:\n    default_path: /v\n    driver: local\n    driver_options: {type: tmpfs}\n    create_options: {driver: other, driver_opts: {o: size=1m}, labels: {k: v}}\na:\n  attaches: v\n").unwrap();
    let v = &m.volume_specs("a")[0];
    assert_eq!(
        (v.driver.as_deref(), v.driver_options["type"].as_str(), v.driver_options["o"].as_str()),
        (Some("other"), "tmpfs", "size=1m")
    );
    assert_eq!(v.labels["k"], "v");
    let e = map("name: m\nvolumes:\n  v:\n    default_path: /v\n    create_options: {driver_opts: x}\na:\n  attaches: v\n").unwrap_err();
    assert!(e.contains("driver_opts: expected a mapping"), "{e}");
}

#[test]
fn every_network_counts_in_the_hash_and_so_do_volume_owners_and_modes() {
    let base = "name: m\nnetworks: {n1: {}, n2: {}}\nvolumes: {v: /v}\na:\n  attaches: v\n  user: 2000\n  permissions: u=rwX\n  networks: [n1, {n2: {aliases: [x]}}]\n";
    let m = map(base).unwrap();
    let unit = m.units().into_iter().find(|u| u.config == "a").unwrap();
    let body = m.create_body(&unit).unwrap();
    let eps = body["NetworkingConfig"]["EndpointsConfig"].as_object().unwrap();
    assert_eq!(eps.keys().collect::<Vec<_>>(), ["m.n1", "m.n2"]);
    assert_eq!(eps["m.n2"]["Aliases"][0].as_str(), Some("x"));
    let h = hash(&m, "a");
    for changed in
        [base.replace("aliases: [x]", "aliases: [y]"), base.replace("u=rwX", "u=rwX,g=rX"), base.replace("user: 2000", "user: 2001")]
    {
        assert_ne!(hash(&map(&changed).unwrap(), "a"), h, "{changed}");
    }
    assert_eq!(hash(&map(base).unwrap(), "a"), h, "the hash is not stable");
}
