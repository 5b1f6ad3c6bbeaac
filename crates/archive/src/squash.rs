//! The `squash` step (`imgtool flatten`, a pipeline's `squash = true`): every layer so far
//! flattened into one.

use async_trait::async_trait;
use imgtool_core::{Compression, History, Image, Step, StepContext, StepError, rfc3339};

use crate::{Error, LayerOptions, flatten};

/// Squash every layer into one (`Squash(false)` keeps them, and says so in plans).
#[derive(Debug)]
pub struct Squash(pub bool);

#[async_trait(?Send)]
impl Step for Squash {
    fn describe(&self) -> String {
        if self.0 { "squash every layer into one".into() } else { "no squash".into() }
    }

    fn progress(&self) -> Option<String> {
        self.0.then(|| "squashing".into())
    }

    async fn apply(&self, mut image: Image, cx: &StepContext<'_>) -> Result<Image, StepError> {
        if self.0 {
            squash(&mut image, cx.spool, cx.compression, cx.epoch).await?;
            image.config_mut().set_created(cx.epoch);
        }
        Ok(image)
    }
}

/// Replace all of `image`'s layers by one flattened layer, written under `spool`.
pub async fn squash(image: &mut Image, spool: &std::path::Path, compression: Compression, epoch: i64) -> Result<(), Error> {
    let opts = LayerOptions { compression, flavor: image.flavor(), ..Default::default() };
    let layer = flatten(image, spool, opts, epoch).await?;
    let history = History { created: Some(rfc3339(epoch)), created_by: Some("imgtool squash".into()), ..Default::default() };
    image.replace_layers(vec![(layer.into_layer(), history)]);
    Ok(())
}
