//! What a build tells as it goes: each instruction it reaches, which came from the cache,
//! and how many layers the image got.

use std::sync::Arc;

/// One thing a build has to tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildEvent<'a> {
    /// Instruction `number` of `total` (as the file counts them) is being built.
    Step {
        /// 1-based, in file order.
        number: usize,
        /// Instructions in the file.
        total: usize,
        /// Its first line as written.
        text: &'a str,
    },
    /// The instruction just told came from the step cache.
    Cached,
    /// The image is built, with this many layers on top of its base.
    Built {
        /// Layers the target stage added (cached or not).
        new_layers: usize,
    },
}

/// Hears of a build's events (`STEP 3/7: COPY ...`, `cached`).
#[derive(Clone)]
pub struct BuildProgress(pub Arc<dyn Fn(BuildEvent<'_>) + Send + Sync>);

impl std::fmt::Debug for BuildProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BuildProgress")
    }
}
