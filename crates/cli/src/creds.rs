//! Which registry each credential given on the command line goes to. A credential is
//! bound to one registry (`HOST[:PORT]`) before any client exists: `--creds` to the
//! registry the command names as its target, `--src-creds` / `--dest-creds` to the source
//! and destination of `copy` and `pipe`. Every other registry a command touches (a
//! Dockerfile's `FROM`, a base image elsewhere) uses the stored logins or none.

use anyhow::{Result, anyhow, bail};
use imgtool_core::Reference;
use imgtool_registry::{ClientOptions, Credential, Registries, Secret};

use crate::args::SecretArg;
use crate::transport::Transport;

/// The credentials given on the command line, not yet bound to a registry.
#[derive(Debug, Default, Clone)]
pub struct CliCreds {
    /// `--creds` / `IMGTOOL_CREDS`.
    pub creds: Option<Credential>,
    /// `--src-creds`.
    pub src: Option<Credential>,
    /// `--dest-creds`.
    pub dest: Option<Credential>,
}

/// `USER:PASSWORD` as a credential; the error names the flag, never the value.
pub fn parse(flag: &str, value: Option<&SecretArg>) -> Result<Option<Credential>> {
    let Some(SecretArg(v)) = value else { return Ok(None) };
    let (user, pass) = v.split_once(':').ok_or_else(|| anyhow!("{flag} needs USER:PASSWORD"))?;
    if user.is_empty() {
        bail!("{flag} needs USER:PASSWORD (the user name is empty)");
    }
    Ok(Some(Credential::Basic { username: user.into(), password: Secret::new(pass) }))
}

/// The registry of a reference as written on the command line (`docker://` optional).
pub fn registry_of_ref(s: &str) -> Option<String> {
    crate::transport::strip_docker(s).parse::<Reference>().ok().map(|r| r.registry().to_string())
}

/// The registry a transport names, if it is one.
pub fn registry_of(t: &Transport) -> Option<String> {
    match t {
        Transport::Registry(r) => registry_of_ref(r),
        _ => None,
    }
}

/// The one registry among `names`, or `None`; several different ones are an error, since
/// one credential for several registries is exactly what must not happen.
fn one<'a>(flag: &str, names: &'a [String]) -> Result<Option<&'a String>> {
    let mut distinct: Vec<&String> = names.iter().collect();
    distinct.sort();
    distinct.dedup();
    match distinct.as_slice() {
        [] => Ok(None),
        [r] => Ok(Some(r)),
        many => bail!(
            "{flag} would go to {} registries ({}); give it for one, and `imgtool login` to the others",
            many.len(),
            many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        ),
    }
}

impl CliCreds {
    /// Client options with each credential bound to its registry: `--src-creds` to the
    /// `sources`, `--dest-creds` to the `targets`, and `--creds` to the targets, or to
    /// the sources when the command writes to no registry.
    pub fn bind(&self, base: &ClientOptions, sources: &[String], targets: &[String]) -> Result<ClientOptions> {
        let mut opts = base.clone();
        if self.creds.is_some() && (self.src.is_some() || self.dest.is_some()) {
            bail!("--creds cannot be combined with --src-creds or --dest-creds: say which side each is for");
        }
        let mut put = |flag: &str, registry: &String, c: &Credential| -> Result<()> {
            match opts.credentials.insert(registry.clone(), c.clone()) {
                Some(old) if old != *c => bail!("{flag}: {registry} was given other credentials too; give one set per registry"),
                _ => Ok(()),
            }
        };
        if let Some(c) = &self.src {
            let r = one("--src-creds", sources)?.ok_or_else(|| anyhow!("--src-creds: the source is not a registry"))?;
            put("--src-creds", r, c)?;
        }
        if let Some(c) = &self.dest {
            let r = one("--dest-creds", targets)?.ok_or_else(|| anyhow!("--dest-creds: the destination is not a registry"))?;
            put("--dest-creds", r, c)?;
        }
        if let Some(c) = &self.creds {
            let target = match one("--creds", targets)? {
                Some(r) => Some(r),
                None => one("--creds", sources)?,
            };
            match target {
                Some(r) => put("--creds", r, c)?,
                None => tracing::warn!("--creds is not used: this command names no registry (base images use `imgtool login`)"),
            }
        }
        Ok(opts)
    }

    /// A registry pool for a command reading `sources` and writing `targets`.
    pub fn registries(&self, base: &ClientOptions, sources: &[String], targets: &[String]) -> Result<Registries> {
        Ok(Registries::new(self.bind(base, sources, targets)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(u: &str) -> Option<Credential> {
        Some(Credential::Basic { username: u.into(), password: Secret::new("pw") })
    }

    fn bound(c: &CliCreds, sources: &[&str], targets: &[&str]) -> Result<Vec<(String, String)>> {
        let s: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
        let t: Vec<String> = targets.iter().map(|s| s.to_string()).collect();
        let opts = c.bind(&ClientOptions { auth_files: Default::default(), ..Default::default() }, &s, &t)?;
        let mut out: Vec<(String, String)> = opts
            .credentials
            .into_iter()
            .map(|(r, c)| match c {
                Credential::Basic { username, .. } => (r, username),
                other => (r, format!("{other:?}")),
            })
            .collect();
        out.sort();
        Ok(out)
    }

    #[test]
    fn creds_go_to_the_target_only() {
        let c = CliCreds { creds: basic("me"), ..Default::default() };
        assert_eq!(bound(&c, &["127.0.0.2:5000"], &["127.0.0.1:5000"]).unwrap(), [("127.0.0.1:5000".into(), "me".into())]);
        assert_eq!(bound(&c, &["127.0.0.2:5000"], &[]).unwrap(), [("127.0.0.2:5000".into(), "me".into())], "a pull's target is its source");
        assert!(bound(&c, &[], &[]).unwrap().is_empty());
        assert!(bound(&c, &[], &["a.example", "b.example"]).unwrap_err().to_string().contains("2 registries"));
        assert_eq!(bound(&c, &[], &["a.example", "a.example"]).unwrap().len(), 1);
    }

    #[test]
    fn src_and_dest_creds_go_to_their_side() {
        let c = CliCreds { src: basic("reader"), dest: basic("writer"), ..Default::default() };
        assert_eq!(
            bound(&c, &["src.example"], &["dst.example"]).unwrap(),
            [("dst.example".into(), "writer".into()), ("src.example".into(), "reader".into())]
        );
        assert!(bound(&c, &["same.example"], &["same.example"]).unwrap_err().to_string().contains("other credentials"));
        assert!(bound(&c, &[], &["dst.example"]).unwrap_err().to_string().contains("source is not a registry"));
        let both = CliCreds { creds: basic("x"), dest: basic("y"), ..Default::default() };
        assert!(bound(&both, &[], &["d.example"]).is_err());
    }

    #[test]
    fn parsing_never_shows_the_password() {
        let arg = |s: &str| s.parse::<SecretArg>().unwrap();
        let err = parse("--creds", Some(&arg("no-colon-secret"))).unwrap_err().to_string();
        assert!(!err.contains("no-colon-secret"), "{err}");
        assert!(!format!("{:?}", arg("u:hunter2")).contains("hunter2"));
        assert!(parse("--creds", Some(&arg(":pw"))).is_err());
        assert_eq!(parse("--creds", None).unwrap(), None);
        assert!(parse("--creds", Some(&arg("u:p:with:colons"))).unwrap().is_some());
    }
}
