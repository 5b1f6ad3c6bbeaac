//! Everything tar for imgtool.
//!
//! - [`LayerWriter`]: reproducible layers (sorted entries, fixed mtimes, root owners),
//!   compressed (parallel, deterministic gzip; zstd; none) and hashed in one pass.
//! - [`PathLayer`] and [`ContentsLayer`]: layers from host files and from bytes.
//! - [`OciLayoutSource`], [`DockerArchiveSource`] and [`LayoutSink`]: OCI layouts (directory
//!   or tar) and `docker save` tarballs, read and written.
//! - [`extract_image`]: layers applied to a directory with whiteouts, never outside it.
//! - [`TarReader`]: every tar read from input, read as Go's archive/tar reads it (sparse
//!   files, GNU and PAX extensions, signed checksums, base-256 numbers), with no header
//!   able to make it hold more than 1 MiB.
#![deny(missing_docs)]

mod apply;
mod cache;
mod check;
mod error;
mod extract;
mod files;
mod filter;
mod gc;
mod holes;
mod layer;
mod pgzip;
mod read;
mod sink;
mod source;
mod squash;
mod store;

pub use cache::LayerCache;
pub use check::check_contained;
pub use error::Error;
pub use extract::{Devices, ExtractOptions, apply_layer, apply_layer_in, apply_layers, extract_image, flatten};
pub use files::{ContentsLayer, FileContents, Origin, Owner, PathLayer, entries_for_files, host_entry, image_path};
pub use filter::PathFilter;
pub use gc::{GcReport, gc, remove_tag};
pub use layer::{EntryKind, FileData, LayerOptions, LayerWriter, SpooledLayer, TarEntry, write_layer};
pub use pgzip::ParallelGzip;
pub use read::{CopyError, Defect, Fragment, Member, MemberKind, TarError, TarReader};
pub use sink::LayoutSink;
pub use source::{CONTAINERD_NAME, DockerArchiveSource, OciLayoutSource, REF_NAME};
pub use squash::{Squash, squash};

/// The README's library example, compiled by `cargo test` so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeExample;
