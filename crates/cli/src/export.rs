//! `imgtool export`: flatten an image into a directory or a tar.

use std::path::Path;

use anyhow::{Result, bail};
use imgtool_core::Image;

use crate::printer::Printer;

pub async fn export(_image: &Image, dest: &Path, _p: Printer) -> Result<()> {
    bail!("export to {} is not available yet", dest.display())
}
