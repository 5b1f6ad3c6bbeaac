//! The one way imgtool touches a path inside an image root.
//!
//! An image's filesystem is input written by someone else: its symlinks may point at
//! `/etc/passwd` or `../../..`, and a later entry may turn a directory into a link after we
//! looked at it. Everything that reads or writes inside a root (layer extraction,
//! squash, COPY/ADD/WORKDIR destinations, USER lookups, conda staging) goes through
//! [`Root`] and [`Dir`] here:
//!
//! - a path is resolved from a handle on the root with the kernel's `openat2`
//!   `RESOLVE_IN_ROOT` (or libpathrs's checked component walk on kernels without it): `..`
//!   stops at the root and an absolute or relative symlink is followed *inside* the root,
//!   as the container will see it;
//! - a [`Dir`] is an open handle on a directory inside the root, and every operation on
//!   it takes one path component and never follows a symlink in that component;
//! - metadata is set on the opened inode (or with the `*at` calls' no-follow flag), in the
//!   order owner, mode, extended attributes, times, so `chown` cannot strip the setuid bit
//!   or `security.capability` that come after it.
#![deny(missing_docs)]

mod dir;
mod error;
mod root;
mod walk;

pub use dir::{Dir, Kind, Meta, Node, Stat};
pub use error::{Error, Result};
pub use root::{Root, join_path};
pub use walk::Visit;
