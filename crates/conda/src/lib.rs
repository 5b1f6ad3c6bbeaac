//! Conda environments as image layers, without conda and without docker.
//!
//! [`CondaLayers`] solves specs against channels with rattler's resolvo solver, fetches
//! packages into a shared cache (unpacked and checked by us), links them into a staging prefix
//! (in a walled-in child when the program calls [`link_helper_main`]; placeholders
//! patched for the prefix inside the image, nothing from a package executed), and emits one
//! reproducible layer per package (the smallest merged under a layer budget, named ones
//! kept separate), then a small layer with `conda-meta`.
#![deny(missing_docs)]

mod cache;
mod docker_env;
mod error;
mod fetch;
mod glibc;
mod install;
mod isolate;
mod layers;
mod lock;
mod package;
mod producer;
mod solve;
mod validate;

pub use docker_env::build_docker_environment;
pub use error::{Error, Result};
pub use glibc::base_glibc;
pub use install::install;
pub use isolate::link_helper_main;
pub use layers::group;
pub use lock::{locked_records, write_lock};
pub use package::InstalledPackage;
pub use producer::{CondaLayers, CondaSpec, DEFAULT_EXCLUDE, default_cache_dir};
pub use solve::{channel_url, conda_subdir, image_platform, load_records, parse_specs, solve, virtual_packages};
