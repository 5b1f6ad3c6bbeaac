//! Container maps: docker-map's `ContainerMap` and `MappingDockerClient`, on a Docker Engine
//! API (Docker's, or podman's compatible service).
//!
//! A map file (docker-map's YAML, unchanged, or the same in TOML) names containers, the
//! volumes they share, their host paths, ports, users and permissions and what they depend
//! on. [`ContainerMap::load`] reads one; [`ContainerMap::resolved`] merges `extends` and runs
//! docker-map's integrity check.
//!
//! ```
//! let map = imgtool_maps::parse_map("name: web\napp:\n  image: busybox\n  exposes: {80: 8080}\n", false, "x").unwrap();
//! let map = map.resolved().unwrap();
//! assert_eq!(map.containers["app"].exposes[0].host_port, Some(8080));
//! ```
#![deny(missing_docs)]

mod cleanup;
mod clients;
mod docker;
mod engine;
mod error;
mod file;
mod model;
mod options;
mod plan;
mod resolve;
mod run;
mod shapes;
mod spec;
mod units;

pub use cleanup::{cleanup_containers, cleanup_images, remove_all_containers};
pub use clients::{ClientConfig, Clients, DEFAULT_CLIENT, load_clients, parse_clients};
pub use docker::DockerEngine;
pub use engine::{Engine, ExecOutcome, Health, RunState, Seen};
pub use error::Error;
pub use file::{load_map, parse_map};
pub use model::{
    Attach, Bind, Command, ContainerConfig, ContainerMap, Endpoint, ExecCommand, ExecPolicy, HealthCheck, HostPath, Link, NetworkConfig,
    NetworkMode, Options, Port, Use, VolumeConfig,
};
pub use plan::{Action, Observed, Op, Step, VolumeSpecOut, plan, units_for};
pub use run::{RunOptions, execute, observe};
pub use spec::{CONFIG_LABEL, MAP_LABEL, UNIT_LABEL, VolumeSpec};
pub use units::Unit;
