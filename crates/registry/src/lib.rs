//! An OCI distribution / Docker registry v2 client, written on reqwest and tokio.
//!
//! - [`RegistryClient`]: one registry: HTTPS with verification (plain HTTP only for
//!   loopback or named insecure registries, custom CAs from `certs.d`), Basic and Bearer
//!   auth with a token cache per scope, retries with backoff and `Retry-After` (capped).
//!   Credentials and tokens go only to the origin (scheme, host, port) of the registry
//!   they belong to; a token realm gets them over HTTPS, or over plain HTTP on the
//!   registry's own loopback or insecure host, and otherwise only an anonymous request.
//! - Manifests (GET/HEAD/PUT/DELETE, verified, size-capped), blobs (streamed, resumed with
//!   `Range`, redirects followed without credentials), uploads (monolithic or chunked),
//!   cross-repository mounts, tags and catalog with pagination, referrers.
//! - [`RegistrySource`] (lazy) and [`RegistrySink`] (skip, mount, upload; manifest last).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use imgtool_registry::{ClientOptions, Registries};
//! let registries = Registries::new(ClientOptions::default());
//! let reference = "localhost:5000/busybox:latest".parse()?;
//! let source = Arc::new(registries.source(&reference)?);
//! let image = imgtool_core::Image::load(source, None, None).await?; // manifest + config only
//! println!("{} layers", image.layers().len());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod api;
mod auth;
mod client;
mod credentials;
mod error;
mod image;
mod stream;
mod tls;
mod token;

pub use api::{MANIFEST_ACCEPT, Mount};
pub use auth::{Challenge, Credential, Secret};
pub use client::{ClientOptions, RegistryClient, Stats, api_host, is_loopback, strip_query};
pub use credentials::{AuthFiles, remove_login, store_login};
pub use error::{ApiError, Error, Result};
pub use image::{Registries, RegistrySink, RegistrySource};
