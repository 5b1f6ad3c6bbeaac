//! What an interrupted process must undo: the temporary files and directories it made and
//! the processes it started. Writers register them for as long as they exist (the
//! [`Tracked`] guard forgets them when dropped); the CLI's SIGINT/SIGTERM handler calls
//! [`interrupted`] and exits. A run that ends normally never needs it: temporary things
//! remove themselves when dropped, but an exit on a signal drops nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

type Undo = Box<dyn Fn() + Send + Sync>;

enum Item {
    Path(PathBuf),
    Undo(Undo),
}

/// What the process must undo, and whether it is undoing it. One per process; tests make
/// their own.
struct Registry {
    items: Mutex<BTreeMap<u64, Item>>,
    next: AtomicU64,
    interrupted: AtomicBool,
    /// Held (shared) while an output is renamed into place, and (exclusive) while the
    /// interrupt flag is raised: a rename either completes before the temporaries are
    /// removed, or never starts. Without it, removing a staging directory could follow it
    /// into its new name.
    publishing: RwLock<()>,
}

static PROCESS: Registry = Registry::new();

impl Registry {
    const fn new() -> Self {
        Self {
            items: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(0),
            interrupted: AtomicBool::new(false),
            publishing: RwLock::new(()),
        }
    }

    fn items(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Item>> {
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&'static self, item: Item) -> Tracked {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut all = self.items();
        if !self.interrupted.load(Ordering::Relaxed) {
            all.insert(id, item);
            return Tracked(id, self);
        }
        // Made while the interrupt undoes everything else (the command's thread runs on
        // until the process exits): undone at once.
        drop(all);
        undo(item);
        Tracked(id, self)
    }

    fn publish<T>(&self, rename: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
        let _gate = self.publishing.read().unwrap_or_else(PoisonError::into_inner);
        if self.interrupted.load(Ordering::Relaxed) {
            return Err(std::io::Error::new(std::io::ErrorKind::Interrupted, "interrupted"));
        }
        rename()
    }

    fn interrupt(&self) {
        let all = {
            let _gate = self.publishing.write().unwrap_or_else(PoisonError::into_inner);
            // Under the items' lock too: whatever is registered after this is undone by `add`.
            let mut items = self.items();
            self.interrupted.store(true, Ordering::Relaxed);
            std::mem::take(&mut *items)
        };
        let (undos, paths): (Vec<_>, Vec<_>) = all.into_values().rev().partition(|i| matches!(i, Item::Undo(_)));
        undos.into_iter().chain(paths).for_each(undo);
    }
}

/// Whether the process is being interrupted: long loops (extraction, layer writing) stop
/// at their next entry, so they add nothing while their files are removed.
pub fn is_interrupted() -> bool {
    PROCESS.interrupted.load(Ordering::Relaxed)
}

/// A registration, forgotten when dropped: keep it beside the thing it protects.
#[must_use = "the registration ends when this is dropped"]
pub struct Tracked(u64, &'static Registry);

impl std::fmt::Debug for Tracked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Tracked").field(&self.0).finish()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.1.items().remove(&self.0);
    }
}

/// Remove `path` (a file, or a directory with everything in it; a symlink is removed, never
/// followed) if the process is interrupted while the guard lives.
pub fn track_path(path: &Path) -> Tracked {
    PROCESS.add(Item::Path(path.to_path_buf()))
}

/// Run `undo` if the process is interrupted while the guard lives (end a child process).
pub fn on_interrupt(undo: impl Fn() + Send + Sync + 'static) -> Tracked {
    PROCESS.add(Item::Undo(Box::new(undo)))
}

/// Make an output visible (`rename` it into place) unless the process is being
/// interrupted, in which case nothing is renamed and an `Interrupted` error comes back.
pub fn publish<T>(rename: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
    PROCESS.publish(rename)
}

/// Undo everything registered, newest first: processes are ended before the files they
/// may be writing are removed. Called once, by the signal handler, before it exits.
pub fn interrupted() {
    PROCESS.interrupt();
}

fn undo(item: Item) {
    match item {
        Item::Undo(undo) => undo(),
        Item::Path(p) => remove(&p),
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
        // A registry of its own: the process's flag, once raised, stays raised.
        let reg: &'static Registry = Box::leak(Box::new(Registry::new()));
        let tmp = tempfile::tempdir().unwrap();
        let (dir, file, kept, gone) = (tmp.path().join("d"), tmp.path().join("f"), tmp.path().join("k"), tmp.path().join("g"));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/x"), "x").unwrap();
        for f in [&file, &kept, &gone] {
            std::fs::write(f, "y").unwrap();
        }
        let ran = std::sync::Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        let _d = reg.add(Item::Path(dir.clone()));
        let _f = reg.add(Item::Path(file.clone()));
        let _u = reg.add(Item::Undo(Box::new(move || flag.store(true, Ordering::SeqCst))));
        // A registration dropped is forgotten.
        drop(reg.add(Item::Path(gone.clone())));
        reg.interrupt();
        assert!(!dir.exists() && !file.exists());
        assert!(kept.exists() && gone.exists());
        assert!(ran.load(Ordering::SeqCst));
        let renamed = reg.publish(|| std::fs::rename(&kept, &gone));
        assert_eq!(renamed.unwrap_err().kind(), std::io::ErrorKind::Interrupted);
        assert!(kept.exists(), "an output was published after the interrupt");
        // Registered after the interrupt: undone at once.
        let late = tmp.path().join("late");
        std::fs::write(&late, "z").unwrap();
        let _l = reg.add(Item::Path(late.clone()));
        assert!(!late.exists(), "a temporary made during the interrupt was left");
        assert!(!is_interrupted(), "the test raised the process's own flag");
    }
}
