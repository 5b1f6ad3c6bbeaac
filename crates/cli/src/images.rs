//! Loading an image for any command: the one place that decides what a named platform means.
//! An index gives the image for it; a single image of another platform is refused, as Docker
//! refuses it, unless `--any-platform` (or a pipeline's `any_platform`) says to take it.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, anyhow};
use imgtool_core::{Image, Platform, SharedSource};

static ANY_PLATFORM: AtomicBool = AtomicBool::new(false);

/// `--any-platform`, for the whole run.
pub fn set_any_platform(yes: bool) {
    ANY_PLATFORM.store(yes, Ordering::Relaxed);
}

/// The image `selector` names in `source`, for `platform` when one is named; `any` (or
/// `--any-platform`) takes a single image of another platform, with a warning.
pub async fn load(source: SharedSource, selector: Option<&str>, platform: Option<&Platform>, any: bool) -> Result<Image> {
    let (image, mismatch) = Image::load_any_platform(source, selector, platform).await?;
    match mismatch {
        Some(imgtool_core::Error::PlatformMismatch { place, found, wanted }) => {
            if any || ANY_PLATFORM.load(Ordering::Relaxed) {
                crate::printer::warn(format!(
                    "{place}: image platform ({found}) does not match the expected platform ({wanted}); using it as it is"
                ));
                Ok(image)
            } else {
                Err(anyhow!(
                    "{place}: image platform ({found}) does not match the expected platform ({wanted}); name a source that has {wanted} (an index with it), or pass --any-platform to take this one as it is"
                ))
            }
        }
        Some(other) => Err(other.into()),
        None => Ok(image),
    }
}
