//! imgtool-maps: map files as docker-map reads them, and maps brought up on real engines.

#![allow(clippy::unwrap_used)]

mod bodies;
mod executor;
mod load;
