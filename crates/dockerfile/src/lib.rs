//! Dockerfiles built without a daemon.
//!
//! [`parse`] reads the whole syntax (directives, continuations, heredocs, JSON and shell
//! forms) into [`Dockerfile`]; words keep their quotes until [`expand`] substitutes
//! variables with BuildKit's rules when the instruction runs. [`build`] runs it without a
//! daemon: `RUN` in a runc sandbox (see `imgtool-sandbox`) whose filesystem difference
//! becomes the layer, every layer-making step kept in a [`StepCache`] keyed by what it
//! was built from. `FROM` images come from an [`Images`] the caller provides.
//!
//! Dockerfiles can also be written from code, as docker-map does, and built directly:
//!
//! ```no_run
//! # async fn demo(images: &dyn imgtool_dockerfile::Images) -> imgtool_dockerfile::Result<()> {
//! use imgtool_dockerfile::{BuildOptions, Dockerfile, build};
//!
//! let df = Dockerfile::from_image("busybox")
//!     .run("mkdir -p /var/lib/app")
//!     .add_file("/home/user/myfiles", "/var/lib/myfiles")
//!     .env("GREETING", "hello")
//!     .cmd(["sh", "-c", "echo $GREETING"]);
//! println!("{}", df.render());
//! let image = build(&df, images, &BuildOptions::new(".", "/var/tmp")).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod build;
mod builder;
mod cache;
mod context;
mod diff;
mod error;
mod fetch;
mod parse;
mod progress;
mod step;
mod subst;

pub use build::{BuildOptions, Images, build, build_on};
pub use cache::{RepoCache, StepCache};
pub use context::{CONTEXT_FILE_LIMIT, FileHashes, read_context_file};
pub use error::{BoxError, Error, Result};
pub use parse::{Command, Dockerfile, Flag, Heredoc, Instruction, KEYWORDS, Kind, parse};
pub use progress::{BuildEvent, BuildProgress};
pub use step::{DockerfileStep, InFile};
pub use subst::{ExpandError, expand, expand_words};

/// Exercise the parser and substitution on arbitrary text (the fuzz target's body): parse,
/// expand every word the result holds, render and parse again. It must never panic.
#[doc(hidden)]
pub fn check_never_panics(text: &str) {
    let lookup = |n: &str| (n.len() % 2 == 0).then(|| n.to_string());
    let _ = expand(text, '\\', &lookup);
    let _ = subst::expand_heredoc(text, '`', &lookup);
    let Ok(df) = parse(text) else { return };
    for i in &df.instructions {
        let words: Vec<&str> = match &i.kind {
            Kind::From { image, .. } => vec![image],
            Kind::Arg(a) => a.iter().filter_map(|(_, v)| v.as_deref()).collect(),
            Kind::Env(p) | Kind::Label(p) => p.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]).collect(),
            Kind::Copy { sources, dest, .. } => sources.iter().map(String::as_str).chain([dest.as_str()]).collect(),
            Kind::Workdir(w) | Kind::User(w) | Kind::Stopsignal(w) => vec![w],
            Kind::Expose(w) | Kind::Volume(w) => w.iter().map(String::as_str).collect(),
            _ => vec![],
        };
        for w in words {
            let _ = expand(w, df.escape, &lookup);
        }
    }
    let _ = parse(&df.render());
}
