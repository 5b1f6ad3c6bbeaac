//! Dockerfiles built without a daemon.
//!
//! [`parse`] reads the whole syntax (directives, continuations, heredocs, JSON and shell
//! forms) into [`Dockerfile`]; words keep their quotes until [`expand`] substitutes
//! variables with BuildKit's rules when the instruction runs.
#![deny(missing_docs)]

mod build;
mod cache;
mod context;
mod diff;
mod error;
mod fetch;
mod parse;
mod subst;

pub use build::{BuildOptions, Images, build, build_on};
pub use cache::StepCache;
pub use context::FileHashes;
pub use error::{Error, Result};
pub use parse::{Command, Dockerfile, Flag, Heredoc, Instruction, KEYWORDS, Kind, parse};
pub use subst::expand;
