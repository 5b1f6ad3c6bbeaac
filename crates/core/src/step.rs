//! Every edit of an image is a [`Step`]: a value that says what it does and turns an image
//! into the next. A pipeline folds its steps over its source; `append`, `build` and `conda
//! build` are the same fold with the steps their flags name. Steps live in the crate that
//! knows how to do them (layers from a tree here, conda's in imgtool-conda, a Dockerfile in
//! imgtool-dockerfile); the CLI only lists them.

use std::fmt::Debug;
use std::path::Path;

use async_trait::async_trait;

use crate::{Compression, ConfigEdit, Image, LayerProducer};

/// What a step's failure carries: its own error, kept whole for the cause chain.
pub type StepError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What every step may use.
#[derive(Debug, Clone, Copy)]
pub struct StepContext<'a> {
    /// Where new layers are written; it must outlive the image.
    pub spool: &'a Path,
    /// How new layers are compressed.
    pub compression: Compression,
    /// The time new images and layers are stamped with (`SOURCE_DATE_EPOCH`).
    pub epoch: i64,
}

/// One edit of an image. Its future need not be `Send`: a build holds its state across
/// awaits on one task, and a fold runs on the task that asked for it.
#[async_trait(?Send)]
pub trait Step: Send + Sync + Debug {
    /// One line for plans (`--dry-run`).
    fn describe(&self) -> String;
    /// What to show while it runs, for a step long enough to show (none by default).
    fn progress(&self) -> Option<String> {
        None
    }
    /// The image after this step.
    async fn apply(&self, image: Image, cx: &StepContext<'_>) -> Result<Image, StepError>;
}

/// New layers on top, from a producer (a host tree, inline files, a conda environment).
#[derive(Debug)]
pub struct AddLayers(pub Box<dyn LayerProducer>);

#[async_trait(?Send)]
impl Step for AddLayers {
    fn describe(&self) -> String {
        self.0.describe()
    }

    fn progress(&self) -> Option<String> {
        Some(format!("building {}", self.0.describe()))
    }

    async fn apply(&self, image: Image, cx: &StepContext<'_>) -> Result<Image, StepError> {
        let mut image = image.add_layers(self.0.as_ref(), cx.spool, cx.epoch, cx.compression).await?;
        // New layers make a new image: its time is the build's, fixed for reproducibility.
        image.config_mut().set_created(cx.epoch);
        Ok(image)
    }
}

/// Drop the top N layers (the seeds' `remove_layer()`).
#[derive(Debug)]
pub struct RemoveTopLayers(pub usize);

#[async_trait(?Send)]
impl Step for RemoveTopLayers {
    fn describe(&self) -> String {
        format!("remove the top {} layer(s)", self.0)
    }

    async fn apply(&self, mut image: Image, _: &StepContext<'_>) -> Result<Image, StepError> {
        image.remove_top_layers(self.0)?;
        Ok(image)
    }
}

/// Drop the layer at an index (0 the base, -1 the top).
#[derive(Debug)]
pub struct RemoveLayerAt(pub isize);

#[async_trait(?Send)]
impl Step for RemoveLayerAt {
    fn describe(&self) -> String {
        format!("remove layer {}", self.0)
    }

    async fn apply(&self, mut image: Image, _: &StepContext<'_>) -> Result<Image, StepError> {
        image.remove_layer_at(self.0)?;
        Ok(image)
    }
}

/// Swap the base under the image (`crane rebase`): the old base's layers must be its
/// bottom ones; the new base's take their place.
#[derive(Debug)]
pub struct Rebase {
    /// The base the image was built on.
    pub old: Image,
    /// The base it is to be on.
    pub new: Image,
    /// How plans name the two, `OLD -> NEW`.
    pub shown: String,
}

#[async_trait(?Send)]
impl Step for Rebase {
    fn describe(&self) -> String {
        format!("rebase {}", self.shown)
    }

    async fn apply(&self, mut image: Image, _: &StepContext<'_>) -> Result<Image, StepError> {
        image.rebase(&self.old, &self.new)?;
        Ok(image)
    }
}

/// Edit the config (and the manifest's annotations).
#[derive(Debug)]
pub struct EditConfig(pub ConfigEdit);

#[async_trait(?Send)]
impl Step for EditConfig {
    fn describe(&self) -> String {
        format!("config {}", self.0.summary())
    }

    async fn apply(&self, mut image: Image, _: &StepContext<'_>) -> Result<Image, StepError> {
        image.config_mut().apply(&self.0)?;
        if !self.0.annotations.is_empty() {
            image.annotations_mut().extend(self.0.annotations.clone());
        }
        Ok(image)
    }
}

/// What hears of each step of a fold: its index, the step, and the image it made (`None`
/// before it runs).
pub type StepWatcher<'a> = dyn FnMut(usize, &dyn Step, Option<&Image>) + 'a;

/// Apply `steps` to `image` in order; `each` hears of every step before it runs and of its
/// result after (for progress). The first failure stops the fold with that step's index.
pub async fn fold_steps(
    mut image: Image,
    steps: &[Box<dyn Step + '_>],
    cx: &StepContext<'_>,
    each: &mut StepWatcher<'_>,
) -> Result<Image, (usize, StepError)> {
    for (i, step) in steps.iter().enumerate() {
        each(i, step.as_ref(), None);
        image = step.apply(image, cx).await.map_err(|e| (i, e))?;
        each(i, step.as_ref(), Some(&image));
    }
    Ok(image)
}
