//! The image model of imgtool.
//!
//! Digests, descriptors, media types, references and platforms; the [`Image`] (manifest +
//! config + layers, each layer a handle to the source holding its bytes); the three traits
//! every backend implements ([`BlobSource`], [`ImageSink`], [`LayerProducer`]); edits;
//! the copy engine ([`copy_image`]); and [`validate`], which every backend's tests run.
//!
//! ```no_run
//! # async fn demo(source: imgtool_core::SharedSource, sink: Box<dyn imgtool_core::ImageSink>) -> imgtool_core::Result<()> {
//! use imgtool_core::{ConfigEdit, CopyOptions, Image, copy_image};
//! let mut image = Image::load(source, Some("latest"), None).await?;   // reads manifest + config only
//! image.remove_top_layers(1)?;
//! image.config_mut().apply(&ConfigEdit { env: vec!["FOO=BAR".into()], ..Default::default() })?;
//! copy_image(&image, sink.as_ref(), &CopyOptions { tags: vec!["this-is-a-test:latest".into()], ..Default::default() }).await?;
//! sink.finish().await?;                                                // atomic commit
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod blob;
mod cleanup;
mod compression;
mod config;
mod copy;
mod digest;
mod error;
mod image;
mod manifest;
mod media;
mod reference;
mod scratch;
mod step;
mod traits;
mod validate;

pub use blob::{FileBlob, MemoryBlobs, VerifyingReader, read_blob, verify};
pub use cleanup::{Tracked, interrupted, is_interrupted, on_interrupt, publish, track_path};
pub use compression::{decompress, decompress_sniffed};
pub use config::{ConfigEdit, History, ImageConfig, cache_dir, canonical_json, rfc3339, source_date_epoch};
pub use copy::{CopyEvent, CopyOptions, Progress, copy_blob, copy_image, copy_index, copy_manifest_tree};
pub use digest::{Algorithm, Digest, Hasher};
pub use error::{Error, Result, error_chain};
pub use image::{CONFIG_LIMIT, Image, Layer, MANIFEST_LIMIT, SharedImage, choose_platform};
pub use manifest::{Descriptor, Index, Manifest, ParsedManifest, Platform};
pub use media::{Compression, Flavor, MediaType};
pub use reference::{DOCKER_HUB, Reference};
pub use scratch::{
    DeadEntry, SCRATCH_GRACE, ScratchDir, clear_dead_beside, clear_dead_scratch, dead_scratch, dead_scratch_at, lock, output_mode,
    private_dir, publish_file, spool, temp_dir_beside, temp_file_beside, try_lock,
};
pub use step::{AddLayers, EditConfig, Rebase, RemoveLayerAt, RemoveTopLayers, Step, StepContext, StepError, StepWatcher, fold_steps};
pub use traits::{BlobSource, BlobStream, BuildContext, ImageSink, LayerProducer, NewLayer, SharedSource};
pub use validate::validate;
