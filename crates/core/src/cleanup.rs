//! What an interrupted process must undo: the temporary files and directories it made and
//! the processes it started. Writers register them for as long as they exist (the
//! [`Tracked`] guard forgets them when dropped); the CLI's SIGINT/SIGTERM handler calls
//! [`interrupted`] and exits. A run that ends normally never needs it: temporary things
//! remove themselves when dropped, but an exit on a signal drops nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

type Undo = Box<dyn Fn() + Send + Sync>;

enum Item {
    Path(PathBuf),
    Undo(Undo),
}

static ITEMS: Mutex<BTreeMap<u64, Item>> = Mutex::new(BTreeMap::new());
static NEXT: AtomicU64 = AtomicU64::new(0);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Held (shared) while an output is renamed into place, and (exclusive) while the interrupt
/// flag is raised: a rename either completes before the temporaries are removed, or never
/// starts. Without it, removing a staging directory could follow it into its new name.
static PUBLISHING: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Whether the process is being interrupted: long loops (extraction, layer writing) stop
/// at their next entry, so they add nothing while their files are removed.
pub fn is_interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

fn items() -> std::sync::MutexGuard<'static, BTreeMap<u64, Item>> {
    ITEMS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A registration, forgotten when dropped: keep it beside the thing it protects.
#[must_use = "the registration ends when this is dropped"]
#[derive(Debug)]
pub struct Tracked(u64);

impl Drop for Tracked {
    fn drop(&mut self) {
        items().remove(&self.0);
    }
}

fn add(item: Item) -> Tracked {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    items().insert(id, item);
    Tracked(id)
}

/// Remove `path` (a file, or a directory with everything in it; a symlink is removed, never
/// followed) if the process is interrupted while the guard lives.
pub fn track_path(path: &Path) -> Tracked {
    add(Item::Path(path.to_path_buf()))
}

/// Run `undo` if the process is interrupted while the guard lives (end a child process).
pub fn on_interrupt(undo: impl Fn() + Send + Sync + 'static) -> Tracked {
    add(Item::Undo(Box::new(undo)))
}

/// Make an output visible (`rename` it into place) unless the process is being
/// interrupted, in which case nothing is renamed and an `Interrupted` error comes back.
pub fn publish<T>(rename: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
    let _gate = PUBLISHING.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    if is_interrupted() {
        return Err(std::io::Error::new(std::io::ErrorKind::Interrupted, "interrupted"));
    }
    rename()
}

/// Undo everything registered, newest first: processes are ended before the files they
/// may be writing are removed. Called once, by the signal handler, before it exits.
pub fn interrupted() {
    {
        let _gate = PUBLISHING.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        INTERRUPTED.store(true, Ordering::Relaxed);
    }
    let all = std::mem::take(&mut *items());
    let (undos, paths): (Vec<_>, Vec<_>) = all.into_values().rev().partition(|i| matches!(i, Item::Undo(_)));
    for item in undos.into_iter().chain(paths) {
        match item {
            Item::Undo(undo) => undo(),
            Item::Path(p) => remove(&p),
        }
    }
}

fn remove(p: &Path) {
    let Ok(meta) = std::fs::symlink_metadata(p) else { return };
    if !meta.is_dir() {
        let _ = std::fs::remove_file(p);
        return;
    }
    // A writer still running may add a file before it sees the flag: try again for a while.
    for _ in 0..50 {
        match std::fs::remove_dir_all(p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => std::thread::sleep(std::time::Duration::from_millis(20)),
            _ => return,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn interrupted_removes_what_is_tracked_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, file, kept, gone) = (tmp.path().join("d"), tmp.path().join("f"), tmp.path().join("k"), tmp.path().join("g"));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/x"), "x").unwrap();
        for f in [&file, &kept, &gone] {
            std::fs::write(f, "y").unwrap();
        }
        let ran = std::sync::Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        let _d = track_path(&dir);
        let _f = track_path(&file);
        let _u = on_interrupt(move || flag.store(true, Ordering::SeqCst));
        // A registration dropped is forgotten.
        drop(track_path(&gone));
        interrupted();
        assert!(!dir.exists() && !file.exists());
        assert!(kept.exists() && gone.exists());
        assert!(ran.load(Ordering::SeqCst));
        assert!(is_interrupted());
        let renamed = publish(|| std::fs::rename(&kept, &gone));
        assert_eq!(renamed.unwrap_err().kind(), std::io::ErrorKind::Interrupted);
        assert!(kept.exists(), "an output was published after the interrupt");
    }
}
