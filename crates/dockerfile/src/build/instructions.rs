//! One instruction of a stage: config instructions through `ConfigEdit` (the path every
//! config edit takes), the others handed to `RUN`, `COPY`/`ADD` and `WORKDIR`.

use super::*;

impl Builder<'_> {
    pub(super) fn tell(&self, event: crate::BuildEvent<'_>) {
        if let Some(p) = &self.opts.progress {
            (p.0)(event);
        }
    }

    pub(super) fn tell_step(&self, n: usize) {
        let text = self.df.instructions[n].text.lines().next().unwrap_or_default();
        self.tell(crate::BuildEvent::Step { number: n + 1, total: self.df.instructions.len(), text });
    }

    /// Instruction `n`, told before it is built, and whether it came from the cache after.
    pub(super) async fn told_step(&mut self, stage: &mut Stage, n: usize, globals: &BTreeMap<String, String>) -> Result<()> {
        self.tell_step(n);
        let i = &self.df.instructions[n];
        self.step(stage, i, globals).await?;
        if self.cached.replace(false) {
            self.tell(crate::BuildEvent::Cached);
        }
        Ok(())
    }

    pub(super) async fn step(&mut self, st: &mut Stage, i: &Instruction, globals: &BTreeMap<String, String>) -> Result<()> {
        let kw = keyword(&i.kind);
        match &i.kind {
            Kind::From { .. } => unreachable!("stages start at FROM"),
            Kind::Arg(pairs) => {
                for (name, default) in pairs {
                    let value = match (self.opts.build_args.get(name), default) {
                        (Some(v), _) => Some(v.clone()),
                        (None, Some(d)) => Some(self.expand_in(st, i, d)?),
                        (None, None) => globals.get(name).cloned().or_else(|| platform_arg(name, &st.image.platform())),
                    };
                    Self::chain(st, &format!("ARG {name}={value:?}"));
                    if let Some(v) = value {
                        st.args.insert(name.clone(), v);
                    }
                }
                return Ok(());
            }
            Kind::Env(pairs) => {
                // Every value sees the variables as they were before this instruction.
                let mut env = Vec::new();
                for (k, v) in pairs {
                    env.push(format!("{}={}", self.expand_in(st, i, k)?, self.expand_in(st, i, v)?));
                }
                edit(st, i, ConfigEdit { env, ..ConfigEdit::default() })?;
            }
            Kind::Label(pairs) => {
                // One pair at a time: labels keep the order they were written in.
                for (k, v) in pairs {
                    let labels = BTreeMap::from([(self.expand_in(st, i, k)?, self.expand_in(st, i, v)?)]);
                    edit(st, i, ConfigEdit { labels, ..ConfigEdit::default() })?;
                }
            }
            Kind::Maintainer(m) => edit(st, i, ConfigEdit { author: Some(m.clone()), ..ConfigEdit::default() })?,
            Kind::User(u) => edit(st, i, ConfigEdit { user: Some(self.expand_in(st, i, u)?), ..ConfigEdit::default() })?,
            Kind::Expose(words) => {
                let mut exposed_ports = Vec::new();
                for w in words {
                    let got = crate::subst::expand_words(w, self.df.escape, &vars(st))
                        .map_err(|m| Error::step(i.line, kw, format!("{}: {m}", shown(w))))?;
                    self.charge(i, got.iter().map(String::len).sum())?;
                    exposed_ports.extend(got);
                }
                edit(st, i, ConfigEdit { exposed_ports, ..ConfigEdit::default() })?;
            }
            Kind::Volume(vols) => {
                let volumes = vols.iter().map(|v| self.expand_in(st, i, v)).collect::<Result<Vec<_>, _>>()?;
                edit(st, i, ConfigEdit { volumes, ..ConfigEdit::default() })?;
            }
            Kind::Stopsignal(sig) => edit(st, i, ConfigEdit { stop_signal: Some(self.expand_in(st, i, sig)?), ..ConfigEdit::default() })?,
            Kind::Healthcheck(h) => {
                let value = match h {
                    None => json!({"Test": ["NONE"]}),
                    Some((flags, cmd)) => {
                        check_flags(i, flags, &["interval", "timeout", "start-period", "start-interval", "retries"])?;
                        let test = match cmd {
                            Command::Exec(args) => std::iter::once("CMD".to_string()).chain(args.iter().cloned()).collect::<Vec<_>>(),
                            Command::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
                        };
                        let mut hc = serde_json::Map::new();
                        hc.insert("Test".into(), json!(test));
                        for (flag_name, field) in [
                            ("interval", "Interval"),
                            ("timeout", "Timeout"),
                            ("start-period", "StartPeriod"),
                            ("start-interval", "StartInterval"),
                        ] {
                            if let Some(v) = flag(flags, flag_name) {
                                let ns = duration_ns(v).ok_or_else(|| {
                                    Error::step(i.line, kw, format!("--{flag_name}={v} is not a duration (like 30s, 1m30s, 500ms)"))
                                })?;
                                hc.insert(field.into(), json!(ns));
                            }
                        }
                        if let Some(r) = flag(flags, "retries") {
                            let n: u64 = r.parse().map_err(|_| Error::step(i.line, kw, format!("--retries={r} is not a number")))?;
                            hc.insert("Retries".into(), json!(n));
                        }
                        Value::Object(hc)
                    }
                };
                st.image.config_mut().container_mut().insert("Healthcheck".into(), value);
            }
            Kind::Shell(words) => st.shell = words.clone(),
            Kind::Cmd(c) => {
                let v = command_json(c, &st.shell);
                st.image.config_mut().container_mut().insert("Cmd".into(), v);
                st.cmd_set = true;
            }
            Kind::Entrypoint(c) => {
                let v = command_json(c, &st.shell);
                let cfg = st.image.config_mut().container_mut();
                cfg.insert("Entrypoint".into(), v);
                // A base image's CMD makes no sense for a new entrypoint.
                if !st.cmd_set {
                    cfg.insert("Cmd".into(), Value::Null);
                }
            }
            Kind::Onbuild(inner) => {
                let cfg = st.image.config_mut().container_mut();
                let list = cfg.entry("OnBuild").or_insert_with(|| json!([]));
                if !list.is_array() {
                    *list = json!([]);
                }
                let text = inner.text.clone();
                if let Some(l) = list.as_array_mut() {
                    l.push(json!(text));
                }
            }
            Kind::Workdir(w) => {
                let w = self.expand_in(st, i, w)?;
                let current = st.config_str("WorkingDir");
                let abs = if w.starts_with('/') { w.clone() } else { format!("{current}/{w}") };
                let abs = format!("/{}", clean(&abs).unwrap_or_default());
                edit(st, i, ConfigEdit { workdir: Some(abs.clone()), ..ConfigEdit::default() })?;
                return self.workdir(st, i, &abs).await;
            }
            Kind::Run { flags, command, heredocs: _ } => return self.run_step(st, i, flags, command).await,
            Kind::Copy { add, flags, sources, dest, heredocs } => return self.copy(st, i, *add, flags, sources, dest, heredocs).await,
        }
        // A config-only step: a history entry marked empty, and the chain moves on.
        let summary = serde_json::to_string(st.image.config().container().unwrap_or(&serde_json::Map::new())).unwrap_or_default();
        Self::chain(st, &format!("{kw} {summary}"));
        st.image.config_mut().push_history(self.history(i, true));
        Ok(())
    }
}

/// A config instruction's edit, through the one path every config edit takes (pipeline
/// `config` steps and CLI flags too): one validation, one error text.
fn edit(st: &mut Stage, i: &Instruction, e: ConfigEdit) -> Result<(), Error> {
    st.image.config_mut().apply(&e).map_err(|err| Error::step(i.line, keyword(&i.kind), err.to_string()))
}
