//! Everything tar for imgtool.
//!
//! - [`LayerWriter`]: reproducible layers (sorted entries, fixed mtimes, root owners),
//!   compressed (parallel, deterministic gzip; zstd; none) and hashed in one pass.
//! - [`PathLayer`] and [`ContentsLayer`]: layers from host files and from bytes.
//! - [`OciLayoutSource`], [`DockerArchiveSource`] and [`LayoutSink`]: OCI layouts (directory
//!   or tar) and `docker save` tarballs, read and written.
#![deny(missing_docs)]

mod error;
mod files;
mod filter;
mod layer;
mod pgzip;
mod sink;
mod source;
mod store;

pub use error::Error;
pub use files::{ContentsLayer, FileContents, Owner, PathLayer, image_path};
pub use filter::PathFilter;
pub use layer::{EntryKind, FileData, LayerOptions, LayerWriter, SpooledLayer, TarEntry, write_layer};
pub use pgzip::ParallelGzip;
pub use sink::LayoutSink;
pub use source::{CONTAINERD_NAME, DockerArchiveSource, OciLayoutSource, REF_NAME};
