//! docker-map's housekeeping on a whole engine, maps or not: `cleanup_containers` (exited
//! containers), `cleanup_images` (images no tag names) and `remove_all_containers`.

use crate::Error;
use crate::engine::{Engine, RunState};

/// Remove every container that ran and exited (not those created and never started); the
/// names removed.
pub async fn cleanup_containers(engine: &dyn Engine) -> Result<Vec<String>, Error> {
    let mut gone = Vec::new();
    for c in engine.all_containers().await? {
        if matches!(c.state, RunState::Exited(_)) {
            engine.remove(&c.id).await?;
            gone.push(c.name);
        }
    }
    Ok(gone)
}

/// Remove every image no tag names; the ids removed.
pub async fn cleanup_images(engine: &dyn Engine) -> Result<Vec<String>, Error> {
    let mut gone = Vec::new();
    for id in engine.dangling_images().await? {
        engine.remove_image(&id).await?;
        gone.push(id);
    }
    Ok(gone)
}

/// Stop (waiting `timeout` seconds) and remove every container; the names removed.
pub async fn remove_all_containers(engine: &dyn Engine, timeout: Option<i64>) -> Result<Vec<String>, Error> {
    let mut gone = Vec::new();
    for c in engine.all_containers().await? {
        if c.state == RunState::Running {
            engine.stop(&c.id, timeout).await?;
        }
        engine.remove(&c.id).await?;
        gone.push(c.name);
    }
    Ok(gone)
}
