//! A Dockerfile as a [`Step`], the way conda exposes `CondaLayers`: without `FROM`, its
//! instructions on the image so far (a pipeline's `dockerfile` step); as a source, the
//! image its `FROM` lines build (`imgtool build`, a pipeline's Dockerfile source).

use async_trait::async_trait;
use imgtool_core::{Image, Step, StepContext, StepError};

use crate::{BuildOptions, Dockerfile, Error, Images};

/// A Dockerfile's instructions applied to the image so far, as one stage
/// ([`DockerfileStep::new`]); or the target stage of a Dockerfile with `FROM`
/// ([`DockerfileStep::source`]).
pub struct DockerfileStep<'a> {
    dockerfile: Dockerfile,
    /// How the file is named in messages.
    name: String,
    /// How plans name it (the name as the user wrote it).
    shown: String,
    images: &'a dyn Images,
    options: BuildOptions,
    /// Build the file's own image (it has FROM) rather than apply it to the image so far.
    source: bool,
}

impl std::fmt::Debug for DockerfileStep<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerfileStep").field("name", &self.name).finish_non_exhaustive()
    }
}

impl<'a> DockerfileStep<'a> {
    /// `dockerfile` (named `name` in messages; it must have no `FROM`) applied to the image
    /// so far, the images its `COPY --from` names found through `images`, built with
    /// `options` (whose spool, compression and time the step's context replaces).
    pub fn new(dockerfile: Dockerfile, name: impl Into<String>, images: &'a dyn Images, options: BuildOptions) -> Self {
        let name = name.into();
        Self { dockerfile, shown: name.clone(), name, images, options, source: false }
    }

    /// As [`DockerfileStep::new`], for a Dockerfile that makes its own image from `FROM`
    /// (`imgtool build`, a pipeline's source): the image it is applied to is not used.
    pub fn source(dockerfile: Dockerfile, name: impl Into<String>, images: &'a dyn Images, options: BuildOptions) -> Self {
        Self { source: true, ..Self::new(dockerfile, name, images, options) }
    }

    /// Images that start from `scratch` get `flavor`'s media types.
    pub fn flavor(mut self, flavor: imgtool_core::Flavor) -> Self {
        self.options.flavor = flavor;
        self
    }

    /// Tell `progress` of each instruction as it is built.
    pub fn with_progress(mut self, progress: crate::BuildProgress) -> Self {
        self.options.progress = Some(progress);
        self
    }

    /// The file's name in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Name the file `shown` in plans (as the user wrote it) and keep its full name for errors.
    pub fn shown_as(mut self, shown: impl Into<String>) -> Self {
        self.shown = shown.into();
        self
    }
}

/// A Dockerfile's error, shown with the file's own name (`app.Dockerfile:3: ...`), its
/// cause chain kept.
#[derive(Debug)]
pub struct InFile {
    /// The file's name.
    pub file: String,
    /// What went wrong.
    pub error: Error,
}

impl std::fmt::Display for InFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.error.in_file(&self.file))
    }
}

impl std::error::Error for InFile {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}

#[async_trait(?Send)]
impl Step for DockerfileStep<'_> {
    fn describe(&self) -> String {
        format!("dockerfile {}", self.shown)
    }

    async fn apply(&self, image: Image, cx: &StepContext<'_>) -> Result<Image, StepError> {
        let mut options = self.options.clone();
        options.spool_dir = cx.spool.to_path_buf();
        options.compression = cx.compression;
        options.epoch = cx.epoch;
        let built = if self.source {
            crate::build(&self.dockerfile, self.images, &options).await
        } else {
            crate::build_on(image, &self.dockerfile, self.images, &options).await
        };
        built.map_err(|error| Box::new(InFile { file: self.name.clone(), error }) as StepError)
    }
}
