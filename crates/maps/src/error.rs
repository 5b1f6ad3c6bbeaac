//! What can go wrong with a map: its file, its meaning, or an engine.

use std::path::PathBuf;

/// A map's error. Each names the file, container or engine call at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The map file cannot be read or parsed (the message carries line and column).
    #[error("{file}: {why}")]
    File {
        /// The map file.
        file: PathBuf,
        /// What is wrong, and where.
        why: String,
    },
    /// The map is well-formed but means nothing consistent (an undefined alias, a cycle).
    #[error("map {map}: {why}")]
    Invalid {
        /// The map's name.
        map: String,
        /// What is wrong.
        why: String,
    },
    /// A container or instance named on the command line is not in the map.
    #[error("map {map} has no container {name}; it has: {known}")]
    UnknownContainer {
        /// The map's name.
        map: String,
        /// The name given.
        name: String,
        /// The containers it has.
        known: String,
    },
    /// An engine call failed.
    #[error("{engine}: {call} {target}: {why}")]
    Engine {
        /// How the engine is reached.
        engine: String,
        /// The API call (`create`, `start`, ...).
        call: &'static str,
        /// What it acted on (a container, a volume, an image).
        target: String,
        /// The engine's answer.
        why: String,
    },
    /// A container did not become healthy in time.
    #[error("{container} did not become healthy within {seconds} s (last state: {state})")]
    Unhealthy {
        /// The container (`map.name.instance`).
        container: String,
        /// The wait.
        seconds: u64,
        /// What the engine said last.
        state: String,
    },
    /// A step not begun because another failed first (never reported: the other is).
    #[error("not begun: an earlier step failed")]
    Skipped,
    /// A map's exec command failed.
    #[error("{container}: exec {cmd:?} exited with {code}: {output}")]
    Exec {
        /// The container.
        container: String,
        /// The command.
        cmd: Vec<String>,
        /// Its exit code.
        code: i64,
        /// Its last output.
        output: String,
    },
}
