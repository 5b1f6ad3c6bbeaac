//! Dockerfiles built without a daemon.
//!
//! [`parse`] reads the whole syntax (directives, continuations, heredocs, JSON and shell
//! forms) into [`Dockerfile`]; words keep their quotes until [`expand`] substitutes
//! variables with BuildKit's rules when the instruction runs.
#![deny(missing_docs)]

mod error;
mod parse;
mod subst;

pub use error::{Error, Result};
pub use parse::{Command, Dockerfile, Flag, Heredoc, Instruction, KEYWORDS, Kind, parse};
pub use subst::expand;
