//! The steps that make layers from the stage's filesystem: unpacking it, the step cache,
//! writing a layer, `WORKDIR` and `RUN`.

use super::*;

impl Builder<'_> {
    /// Make the stage's filesystem current: extract what is not applied yet.
    pub(super) async fn ensure_root(opts: &BuildOptions, st: &mut Stage) -> Result<PathBuf> {
        if st.root.is_none() {
            let dir = tempfile::Builder::new()
                .prefix("stage-")
                .tempdir_in(&opts.spool_dir)
                .map_err(|e| Error::step(0, "build", format!("creating a stage directory in {}: {e}", opts.spool_dir.display())))?;
            st.root = Some(dir);
            st.applied = 0;
        }
        let root = st.root.as_ref().map(|d| d.path().to_path_buf()).unwrap_or_default();
        if st.applied < st.image.layers().len() {
            let opts = ExtractOptions { devices: imgtool_archive::Devices::Create, same_owner: true, xattrs: true, package: false };
            imgtool_archive::apply_layers(&st.image.layers()[st.applied..], &root, opts)
                .await
                .map_err(|e| Error::step_from(0, "build", "unpacking the stage's filesystem", e))?;
            st.applied = st.image.layers().len();
        }
        Ok(root)
    }

    /// Look `key` up in the caches (local, then the repository); on a hit, add its layer
    /// (or an empty history entry) and say so.
    pub(super) async fn reuse(&self, st: &mut Stage, i: &Instruction, key: &str) -> bool {
        if self.opts.no_cache {
            return false;
        }
        let mut hit = self.cache.as_ref().and_then(|c| c.lookup(key));
        if hit.is_none() {
            if let Some(repo) = &self.opts.cache_repo {
                hit = repo.lookup(key).await;
            }
        }
        let Some(hit) = hit else { return false };
        tracing::info!(line = i.line, "cached: {}", i.text.lines().next().unwrap_or_default());
        self.cached.set(true);
        match hit {
            Some(layer) => st.image.push_layer(layer, self.history(i, false)),
            None => st.image.config_mut().push_history(self.history(i, true)),
        }
        true
    }

    /// Write `entries` as the step's layer (or an empty history entry when there are none),
    /// keep it in the cache under `key`.
    pub(super) async fn commit(&self, st: &mut Stage, i: &Instruction, key: &str, entries: Vec<TarEntry>) -> Result<()> {
        if entries.is_empty() {
            if let Some(c) = &self.cache {
                c.store(key, None);
            }
            if let Some(repo) = &self.opts.cache_repo {
                repo.store(key, None, &st.image.platform()).await;
            }
            st.image.config_mut().push_history(self.history(i, true));
            return Ok(());
        }
        let opts = LayerOptions { compression: self.opts.compression, flavor: st.image.flavor(), ..Default::default() };
        let spool = self.cache.as_ref().map_or_else(|| self.opts.spool_dir.clone(), StepCache::spool_dir);
        let spooled = tokio::task::spawn_blocking(move || write_layer(entries, &spool, opts))
            .await
            .map_err(|e| Error::step_from(i.line, keyword(&i.kind), "the layer writer stopped", e))?
            .map_err(|e| Error::step_from(i.line, keyword(&i.kind), "writing the layer", e))?;
        let layer = match &self.cache {
            Some(c) => c.store_layer(key, spooled),
            None => spooled.into_layer(),
        };
        if let Some(repo) = &self.opts.cache_repo {
            repo.store(key, Some(&layer), &st.image.platform()).await;
        }
        st.image.push_layer(layer, self.history(i, false));
        Ok(())
    }

    pub(super) async fn workdir(&mut self, st: &mut Stage, i: &Instruction, abs: &str) -> Result<()> {
        let user = st.config_str("User");
        let key = Self::chain(st, &format!("WORKDIR {abs} {user}"));
        if self.reuse(st, i, &key).await {
            return Ok(());
        }
        let root = Self::ensure_root(self.opts, st).await?;
        // Only entries: the directory reaches the stage's filesystem when the layer is
        // applied, through the extractor that keeps every path inside the root.
        let rooted = imgtool_rootfs::Root::open(&root).map_err(|e| Error::step(i.line, "WORKDIR", e.to_string()))?;
        let entries = missing_dirs(&rooted, abs.trim_start_matches('/'), true, self.mtime());
        self.commit(st, i, &key, entries).await
    }

    pub(super) fn mtime(&self) -> u64 {
        self.opts.epoch.max(0) as u64
    }

    pub(super) fn env_for_run(st: &Stage) -> Vec<String> {
        let mut env = st.image.config().env();
        for (k, v) in &st.args {
            if !env.iter().any(|e| e.split('=').next() == Some(k)) {
                env.push(format!("{k}={v}"));
            }
        }
        env
    }

    pub(super) async fn run_step(&mut self, st: &mut Stage, i: &Instruction, flags: &[Flag], command: &Command) -> Result<()> {
        check_flags(i, flags, &["network"])?;
        let host_network = match flag(flags, "network") {
            None | Some("default") => self.opts.host_network,
            Some("host") => true,
            Some("none") => false,
            Some(n) => return Err(Error::step(i.line, "RUN", format!("--network={n}: expected default, none or host"))),
        };
        let args = match command {
            Command::Exec(a) => a.clone(),
            Command::Shell(s) => st.shell.iter().cloned().chain(std::iter::once(s.clone())).collect(),
        };
        let env = Self::env_for_run(st);
        let (user, cwd) = (st.config_str("User"), st.config_str("WorkingDir"));
        let key = Self::chain(
            st,
            &serde_json::to_string(&json!({"run": args, "env": env, "user": user, "cwd": cwd, "net": host_network})).unwrap_or_default(),
        );
        if self.reuse(st, i, &key).await {
            return Ok(());
        }
        can_execute(&st.image.platform()).map_err(|why| Error::step(i.line, "RUN", why))?;
        let root = Self::ensure_root(self.opts, st).await?;
        let reading = |e: String| Error::step(i.line, "RUN", format!("reading the filesystem: {e}"));
        let rooted = std::sync::Arc::new(imgtool_rootfs::Root::open(&root).map_err(|e| reading(e.to_string()))?);
        let before = crate::diff::snapshot(&rooted).map_err(|e| reading(e.to_string()))?;
        let spec =
            imgtool_sandbox::RunSpec { args, env, cwd, user, host_network, security: self.opts.sandbox.clone(), ..Default::default() };
        let root2 = root.clone();
        let outcome = tokio::task::spawn_blocking(move || imgtool_sandbox::run(&root2, &spec, imgtool_sandbox::Output::Capture))
            .await
            .map_err(|e| Error::step_from(i.line, "RUN", "the sandbox stopped", e))?
            .map_err(|e| Error::step_from(i.line, "RUN", "running the command", e))?;
        if outcome.code != 0 {
            return Err(Error::RunFailed { line: i.line, command: i.text.clone(), code: outcome.code, output: outcome.tail });
        }
        let after = crate::diff::snapshot(&rooted).map_err(|e| reading(e.to_string()))?;
        let entries =
            crate::diff::changes(&rooted, &before, &after, self.mtime()).map_err(|e| Error::step(i.line, "RUN", e.to_string()))?;
        self.commit(st, i, &key, entries).await?;
        // The filesystem already holds what the new layer says.
        st.applied = st.image.layers().len();
        Ok(())
    }
}
