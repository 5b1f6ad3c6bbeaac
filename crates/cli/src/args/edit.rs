//! crane's edits: `mutate`, `flatten`, `rebase`.

use clap::Args;

#[derive(Debug, Args)]
pub struct MutateArgs {
    /// The image to edit (any transport; a registry reference as crane reads it).
    pub image: String,
    /// Where to write the result (default: over IMAGE, as crane does).
    #[arg(short = 't', long = "tag", value_name = "DEST")]
    pub tag: Option<String>,
    /// An environment variable to set, KEY=VALUE (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// A label to set, KEY=VALUE (repeatable).
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// A manifest annotation to set, KEY=VALUE (repeatable).
    #[arg(short = 'a', long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// The entrypoint: comma-separated words, as crane takes them, or a JSON array; "" clears it.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// The default command, as --entrypoint.
    #[arg(long)]
    pub cmd: Option<String>,
    /// The working directory.
    #[arg(long)]
    pub workdir: Option<String>,
    /// The user (`name`, `uid`, `uid:gid`).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Ports to expose, PORT[/PROTO] (comma-separated or repeated).
    #[arg(long = "exposed-ports", value_name = "PORT[/PROTO]", value_delimiter = ',')]
    pub exposed_ports: Vec<String>,
    /// The platform to pick from a multi-platform image.
    #[arg(long)]
    pub platform: Option<String>,
}

#[derive(Debug, Args)]
pub struct FlattenArgs {
    /// The image to flatten (any transport; a registry reference as crane reads it).
    pub image: String,
    /// Where to write the result (default: over IMAGE, as crane does).
    #[arg(short = 't', long = "tag", value_name = "DEST")]
    pub tag: Option<String>,
    /// The platform to pick from a multi-platform image.
    #[arg(long)]
    pub platform: Option<String>,
}

#[derive(Debug, Args)]
pub struct RebaseArgs {
    /// The image whose base is swapped (any transport; a registry reference as crane reads it).
    pub image: String,
    /// The base the image was built on: its layers must be the image's bottom ones.
    #[arg(long = "old-base", alias = "old_base", value_name = "IMAGE")]
    pub old_base: String,
    /// The base to put under the image instead.
    #[arg(long = "new-base", alias = "new_base", value_name = "IMAGE")]
    pub new_base: String,
    /// Where to write the result (default: over IMAGE, as crane does).
    #[arg(short = 't', long = "tag", value_name = "DEST")]
    pub tag: Option<String>,
    /// The platform to pick from multi-platform images.
    #[arg(long)]
    pub platform: Option<String>,
}
