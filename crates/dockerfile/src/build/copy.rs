//! `COPY` and `ADD`: sources from the context, a stage or an image, heredocs and URLs,
//! written as one layer onto the stage.

use super::*;

impl Builder<'_> {
    /// The stage or image `COPY --from` names, with its filesystem ready.
    pub(super) async fn source_tree(&mut self, st: &Stage, i: &Instruction, word: &str) -> Result<(Tree, String)> {
        let name = self.expand_in(st, i, word)?;
        let lower = name.to_ascii_lowercase();
        let idx = self.stages.iter().position(|s| s.name.as_deref() == Some(lower.as_str())).or_else(|| lower.parse::<usize>().ok());
        let stage: &mut Stage = match idx {
            Some(n) if n < self.stages.len() => &mut self.stages[n],
            Some(n) => return Err(Error::step(i.line, "COPY", format!("--from={name}: stage {n} is not built before this one"))),
            None => {
                if !self.external.contains_key(&name) {
                    let img = self
                        .images
                        // The stage's platform picks from an index; a single image is
                        // held to it only when the build named a platform.
                        .load(&name, self.opts.platform.as_ref().map(|_| st.image.platform()).as_ref())
                        .await
                        .map_err(|e| Error::step_from(i.line, "COPY", format!("--from={name}"), e))?;
                    let key = format!("image {}", img.digest());
                    let s = Stage::new(None, img, key);
                    self.external.insert(name.clone(), s);
                }
                self.external.get_mut(&name).expect("just inserted")
            }
        };
        let root = Self::ensure_root(self.opts, stage).await?;
        let key = stage.key.clone();
        let tree = Tree::open(&root, format!("stage {name}")).map_err(|m| Error::step(i.line, "COPY", format!("--from={name}: {m}")))?;
        Ok((tree, key))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn copy(
        &mut self,
        st: &mut Stage,
        i: &Instruction,
        add: bool,
        flags: &[Flag],
        sources: &[String],
        dest: &str,
        heredocs: &[crate::parse::Heredoc],
    ) -> Result<()> {
        let kw = if add { "ADD" } else { "COPY" };
        let allowed: &[&str] = if add { &["from", "chown", "chmod", "link", "checksum"] } else { &["from", "chown", "chmod", "link"] };
        check_flags(i, flags, allowed)?;
        let err = |m: String| Error::step(i.line, kw, m);
        let dest_word = self.expand_in(st, i, dest)?;
        let workdir = st.config_str("WorkingDir");
        let dest_abs = if dest_word.starts_with('/') { dest_word.clone() } else { format!("{workdir}/{dest_word}") };
        let dest_rel = clean(&dest_abs).unwrap_or_default();
        let dest_says_dir = dest_word.ends_with('/') || dest_word == "." || dest_word.ends_with("/.") || dest_rel.is_empty();
        let chown = flag(flags, "chown").map(|c| self.expand_in(st, i, c)).transpose()?;
        let chmod = match flag(flags, "chmod") {
            Some(m) => Some(u32::from_str_radix(m, 8).map_err(|_| err(format!("--chmod={m}: expected an octal mode like 755")))?),
            None => None,
        };
        // Where the files come from, and what identifies them for the cache.
        let (tree, tree_key) = match flag(flags, "from") {
            Some(f) => {
                let (t, k) = self.source_tree(st, i, f).await?;
                (t, Some(k))
            }
            None => (self.context.clone(), None),
        };
        let mut heredoc_files: Vec<(String, String)> = Vec::new();
        let mut resolved: Vec<Source> = Vec::new();
        let mut urls: Vec<String> = Vec::new();
        for s in sources {
            if let Some(name) = s.strip_prefix("<<") {
                let name = name.trim_start_matches('-').trim_matches(|c| c == '"' || c == '\'');
                let h = heredocs.iter().find(|h| h.name == name).ok_or_else(|| err(format!("heredoc {name} has no body")))?;
                let body = if h.expand { self.expand_heredoc_in(st, i, &h.body)? } else { h.body.clone() };
                heredoc_files.push((name.to_string(), body));
                continue;
            }
            let word = self.expand_in(st, i, s)?;
            if add && (word.starts_with("http://") || word.starts_with("https://")) {
                urls.push(word);
                continue;
            }
            resolved.extend(tree.sources(&word).map_err(err)?);
        }
        let many = resolved.len() + heredoc_files.len() + urls.len() > 1;
        let content_key = tree.hash(&resolved, &mut self.hashes).map_err(err)?;
        let key = Self::chain(
            st,
            &serde_json::to_string(&json!({
                "copy": kw, "from": tree_key, "sources": resolved.iter().map(|s| s.rel.to_string_lossy()).collect::<Vec<_>>(), "content": content_key,
                "heredocs": heredoc_files, "urls": urls, "dest": dest_abs, "dir": dest_says_dir, "chown": chown, "chmod": chmod,
            }))
            .unwrap_or_default(),
        );
        if self.reuse(st, i, &key).await {
            return Ok(());
        }
        let root = Self::ensure_root(self.opts, st).await?;
        let owner = match &chown {
            Some(c) => {
                let (ids, _) = imgtool_sandbox::resolve_user(&root, c).map_err(|e| err(format!("--chown={c}: {e}")))?;
                // A user without a group means that number as the group too (Docker's rule).
                if c.contains(':') { Owner::Fixed(ids.uid, ids.gid) } else { Owner::Fixed(ids.uid, ids.uid) }
            }
            None => Owner::Root,
        };
        let rooted = imgtool_rootfs::Root::open(&root).map_err(|e| err(e.to_string()))?;
        let is_dir_in_root = |rel: &str| rooted.stat(rel, true).ok().flatten().is_some_and(|st| st.kind == imgtool_rootfs::Kind::Dir);
        let dest_is_dir = dest_says_dir || many || is_dir_in_root(&dest_rel);
        if many && !dest_says_dir {
            return Err(err(format!("with several sources the destination must be a directory ending in /: write {dest_word}/")));
        }
        let mtime = self.mtime();
        let mut entries: BTreeMap<Vec<Vec<u8>>, TarEntry> = BTreeMap::new();
        let mut links = HashMap::new();
        let put = |e: TarEntry, entries: &mut BTreeMap<Vec<Vec<u8>>, TarEntry>| {
            entries.insert(components(&e.path), e);
        };
        let fix = |mut e: TarEntry| -> TarEntry {
            if let Some(m) = chmod {
                if !matches!(e.kind, EntryKind::Symlink(_)) {
                    e.mode = m;
                }
            }
            e.mtime = mtime;
            e
        };
        let join = |base: &str, rel: &OsStr| imgtool_rootfs::join_path(&[OsStr::new(base), rel]);
        let archive_kind = |s: &Source| add && !s.link && !s.is_dir && is_archive(&tree.root, &s.at);
        let mut extracted: Vec<tempfile::TempDir> = Vec::new();
        for s in &resolved {
            let shown = s.rel.to_string_lossy();
            if archive_kind(s) {
                // ADD of a local archive: its contents land in the destination directory.
                let dir = tempfile::tempdir_in(&self.opts.spool_dir).map_err(|e| err(e.to_string()))?;
                let f = tree.root.open_file(&s.at).map_err(|e| err(format!("{shown}: {e}")))?;
                let f = f.ok_or_else(|| err(format!("{shown}: no longer a regular file")))?;
                let r = imgtool_core::decompress_sniffed(f).map_err(|e| err(format!("{shown}: {e}")))?;
                imgtool_archive::apply_layer(dir.path(), r, ExtractOptions { same_owner: true, ..Default::default() }, &shown)
                    .map_err(|e| err(format!("extracting {shown}: {e}")))?;
                let t = Tree::open(dir.path(), shown.clone()).map_err(err)?;
                for (rel, at, st) in t.walk(OsStr::new("")).map_err(err)? {
                    let e = host_entry(Origin::Rooted(&t.root, &at), &st, join(&dest_rel, &rel), mtime, Owner::Preserve, &mut links)
                        .map_err(|e| err(e.to_string()))?;
                    put(fix(e), &mut entries);
                }
                extracted.push(dir);
                continue;
            }
            if s.is_dir {
                // A directory's contents go into the destination.
                for (rel, at, st) in tree.walk(&s.rel).map_err(err)? {
                    let within =
                        if s.rel.is_empty() { rel.clone() } else { OsStr::from_bytes(&rel.as_bytes()[s.rel.len() + 1..]).to_owned() };
                    let e = host_entry(Origin::Rooted(&tree.root, &at), &st, join(&dest_rel, &within), mtime, owner, &mut links)
                        .map_err(|e| err(e.to_string()))?;
                    put(fix(e), &mut entries);
                }
                if !dest_rel.is_empty() && rooted.stat(&dest_rel, false).ok().flatten().is_none() {
                    let st = tree.root.stat(&s.at, true).map_err(|e| err(e.to_string()))?;
                    let st = st.ok_or_else(|| err(format!("{shown}: no longer in {}", tree.name)))?;
                    let e = host_entry(Origin::Rooted(&tree.root, &s.at), &st, dest_rel.clone().into(), mtime, owner, &mut links)
                        .map_err(|e| err(e.to_string()))?;
                    put(fix(e), &mut entries);
                }
                continue;
            }
            let name = OsStr::from_bytes(s.rel.as_bytes().rsplit(|b| *b == b'/').next().unwrap_or_default());
            let target = if dest_is_dir { join(&dest_rel, name) } else { dest_rel.clone().into() };
            // A symlink named as a source was followed inside its tree already (`at` is
            // where it leads); one that leads nowhere inside is copied as a link.
            let st = tree.root.stat(&s.at, false).map_err(|e| err(format!("{shown}: {e}")))?;
            let st = st.ok_or_else(|| err(format!("{shown}: no longer in {}", tree.name)))?;
            let e = host_entry(Origin::Rooted(&tree.root, &s.at), &st, target, mtime, owner, &mut links).map_err(|e| err(e.to_string()))?;
            put(fix(e), &mut entries);
        }
        for (name, body) in &heredoc_files {
            let target = if dest_is_dir { join(&dest_rel, OsStr::new(name)) } else { dest_rel.clone().into() };
            let (uid, gid) = match owner {
                Owner::Fixed(u, g) => (u as u64, g as u64),
                _ => (0, 0),
            };
            let e = TarEntry {
                path: target,
                kind: EntryKind::File { data: FileData::Bytes(body.clone().into_bytes().into()), size: body.len() as u64 },
                mode: 0o644,
                uid,
                gid,
                mtime,
                xattrs: Vec::new(),
            };
            put(fix(e), &mut entries);
        }
        let mut downloads = Vec::new();
        for url in &urls {
            let (file, name, got) = crate::fetch::download(url, &self.opts.spool_dir).await.map_err(err)?;
            if let Some(want) = flag(flags, "checksum") {
                if got.to_string() != want {
                    return Err(err(format!("{url}: --checksum={want} does not match what was downloaded ({got})")));
                }
            }
            let target = if dest_is_dir { join(&dest_rel, OsStr::new(&name)) } else { dest_rel.clone().into() };
            let meta = std::fs::metadata(file.path()).map_err(|e| err(e.to_string()))?;
            let mut e =
                host_entry(Origin::Host(file.path()), &(&meta).into(), target, mtime, owner, &mut links).map_err(|e| err(e.to_string()))?;
            e.mode = 0o600;
            put(fix(e), &mut entries);
            downloads.push(file);
        }
        let paths: Vec<OsString> = entries.values().map(|e| e.path.clone()).collect();
        for p in paths {
            for d in missing_dirs(&rooted, &p, false, mtime) {
                entries.entry(components(&d.path)).or_insert(d);
            }
        }
        let entries: Vec<TarEntry> = entries.into_values().collect();
        self.commit(st, i, &key, entries).await?;
        drop(extracted);
        drop(downloads);
        Ok(())
    }
}

/// The directories on the way to `rel` (and `rel` itself when `inclusive`) that `root`
/// does not have, as root-owned 0755 entries, outermost first.
pub(super) fn missing_dirs(root: &imgtool_rootfs::Root, rel: impl AsRef<OsStr>, inclusive: bool, mtime: u64) -> Vec<TarEntry> {
    let comps: Vec<&[u8]> = rel.as_ref().as_bytes().split(|b| *b == b'/').filter(|c| !c.is_empty()).collect();
    let upto = if inclusive { comps.len() } else { comps.len().saturating_sub(1) };
    (1..=upto)
        .map(|n| OsString::from_vec(comps[..n].join(&b'/')))
        .filter(|dir| root.stat(dir, false).ok().flatten().is_none())
        .map(|dir| TarEntry::dir(dir, 0o755, mtime))
        .collect()
}

/// A path's components, as bytes (the order of a tar's entries).
pub(super) fn components(path: &OsStr) -> Vec<Vec<u8>> {
    path.as_bytes().split(|b| *b == b'/').map(<[u8]>::to_vec).collect()
}

/// Whether a file is a tar archive, compressed or not (ADD extracts those; any other
/// file, a lone `.gz` included, is copied as it is).
pub(super) fn is_archive(root: &imgtool_rootfs::Root, at: &OsStr) -> bool {
    let Ok(Some(f)) = root.open_file(at) else { return false };
    let Ok(r) = imgtool_core::decompress_sniffed(f) else { return false };
    // As BuildKit decides: an archive is what Go's tar reader reads a first member from
    // (a V7 tar, with no magic, included; an empty one not).
    matches!(imgtool_archive::TarReader::new(r).next_member(), Ok(Some(_)))
}

/// Copy a host file or tree (modes and symlinks kept) to `to`.
pub(super) fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    for item in walkdir::WalkDir::new(from).follow_links(false) {
        let item = item.map_err(|e| e.into_io_error().unwrap_or_else(|| std::io::Error::other("filesystem loop")))?;
        let rel = item.path().strip_prefix(from).unwrap_or(Path::new(""));
        let dest = if rel.as_os_str().is_empty() { to.to_path_buf() } else { to.join(rel) };
        let ft = item.file_type();
        if ft.is_dir() {
            std::fs::create_dir_all(&dest)?;
            std::fs::set_permissions(&dest, item.metadata()?.permissions())?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(item.path())?, &dest)?;
        } else {
            std::fs::copy(item.path(), &dest)?;
        }
    }
    Ok(())
}
