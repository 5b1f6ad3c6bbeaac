//! Credentials from the files docker and podman keep: `~/.docker/config.json` (`auths`,
//! `credsStore`, `credHelpers`) and containers' `auth.json`; and writing them for
//! `imgtool login` / `logout`.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::auth::{Credential, Secret};
use crate::error::{Error, Result};

/// Where credentials are looked up, in order.
#[derive(Debug, Clone, Default)]
pub struct AuthFiles {
    /// Files in `auths` format, first match wins.
    pub paths: Vec<PathBuf>,
    /// The one file named by the user (`--authfile`): looked up alone, and where `login`
    /// writes.
    pub named: Option<PathBuf>,
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

impl AuthFiles {
    /// The places skopeo and podman read: `REGISTRY_AUTH_FILE`; then the file `login`
    /// writes (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`), so what it stores
    /// is what is used; then `$XDG_RUNTIME_DIR/containers/auth.json` and
    /// `$XDG_CONFIG_HOME/containers/auth.json` (or `~/.config/containers/auth.json`).
    pub fn from_env() -> Self {
        let mut paths = Vec::new();
        if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE") {
            paths.push(PathBuf::from(p));
        }
        paths.push(Self::docker_config());
        if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
            paths.push(PathBuf::from(d).join("containers/auth.json"));
        }
        match std::env::var_os("XDG_CONFIG_HOME") {
            Some(d) => paths.push(PathBuf::from(d).join("containers/auth.json")),
            None => paths.extend(home().map(|h| h.join(".config/containers/auth.json"))),
        }
        Self { paths, named: None }
    }

    /// Only `path` (`--authfile`, as skopeo takes it): read alone, written by `login`.
    pub fn only(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        Self { paths: vec![path.clone()], named: Some(path) }
    }

    /// The file `login` and `logout` change: the named one, else [`AuthFiles::login_file`].
    pub fn write_file(&self) -> PathBuf {
        self.named.clone().unwrap_or_else(Self::login_file)
    }

    fn docker_config() -> PathBuf {
        match std::env::var_os("DOCKER_CONFIG") {
            Some(d) => PathBuf::from(d).join("config.json"),
            None => home().unwrap_or_else(|| PathBuf::from("/root")).join(".docker/config.json"),
        }
    }

    /// The file `login` writes: `REGISTRY_AUTH_FILE` when set, else docker's config.
    pub fn login_file() -> PathBuf {
        std::env::var_os("REGISTRY_AUTH_FILE").map_or_else(Self::docker_config, PathBuf::from)
    }

    /// The credential for `registry`, if any file (or helper) has one.
    pub fn lookup(&self, registry: &str) -> Result<Option<Credential>> {
        for p in &self.paths {
            let Ok(text) = std::fs::read_to_string(p) else { continue };
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| Error::Config { registry: registry.into(), why: format!("{} is not valid JSON: {e}", p.display()) })?;
            if let Some(helper) = v.get("credHelpers").and_then(|h| h.get(registry)).and_then(Value::as_str) {
                return helper_get(helper, registry);
            }
            if let Some(entry) = keys(registry).iter().find_map(|k| v.get("auths").and_then(|a| a.get(k))) {
                if let Some(c) = parse_entry(entry, registry, p)? {
                    return Ok(Some(c));
                }
            }
            if let Some(store) = v.get("credsStore").and_then(Value::as_str)
                && let Some(c) = helper_get(store, registry)?
            {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }
}

/// The keys a registry may be stored under.
fn keys(registry: &str) -> Vec<String> {
    let mut k = vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
        format!("https://{registry}/v1/"),
        format!("https://{registry}/v2/"),
    ];
    if registry == imgtool_core::DOCKER_HUB {
        k.extend(["https://index.docker.io/v1/".to_string(), "index.docker.io".into(), "registry-1.docker.io".into()]);
    }
    k
}

fn parse_entry(entry: &Value, registry: &str, file: &Path) -> Result<Option<Credential>> {
    if let Some(t) = entry.get("identitytoken").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        return Ok(Some(Credential::IdentityToken(Secret::new(t))));
    }
    if let Some(t) = entry.get("registrytoken").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        return Ok(Some(Credential::Bearer(Secret::new(t))));
    }
    let Some(auth) = entry.get("auth").and_then(Value::as_str).filter(|a| !a.is_empty()) else { return Ok(None) };
    let bad =
        || Error::Config { registry: registry.into(), why: format!("the auth entry in {} is not base64 of USER:PASSWORD", file.display()) };
    let raw = base64::engine::general_purpose::STANDARD.decode(auth.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (user, pass) = text.split_once(':').ok_or_else(bad)?;
    Ok(Some(Credential::Basic { username: user.into(), password: Secret::new(pass) }))
}

/// Ask `docker-credential-HELPER get` for `registry`.
fn helper_get(helper: &str, registry: &str) -> Result<Option<Credential>> {
    let program = format!("docker-credential-{helper}");
    let mut child = match std::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return Err(Error::Config { registry: registry.into(), why: format!("cannot run the credential helper {program}: {e}") }),
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(registry.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| Error::Config { registry: registry.into(), why: format!("{program}: {e}") })?;
    if !out.status.success() {
        // Helpers say "credentials not found" with a failure status.
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::Config { registry: registry.into(), why: format!("{program} answered something other than JSON: {e}") })?;
    let user = v.get("Username").and_then(Value::as_str).unwrap_or_default();
    let secret = v.get("Secret").and_then(Value::as_str).unwrap_or_default();
    Ok(match (user, secret) {
        (_, "") => None,
        ("<token>", s) => Some(Credential::IdentityToken(Secret::new(s))),
        (u, s) => Some(Credential::Basic { username: u.into(), password: Secret::new(s) }),
    })
}

fn read_object(file: &Path) -> Result<Map<String, Value>> {
    match std::fs::read_to_string(file) {
        Ok(t) if !t.trim().is_empty() => match serde_json::from_str(&t) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(Error::Config { registry: String::new(), why: format!("{} is not a JSON object; fix or remove it", file.display()) }),
        },
        Ok(_) => Ok(Map::new()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        // Unreadable is not empty: writing now would drop every login in it.
        Err(e) => Err(Error::Config { registry: String::new(), why: format!("reading {}: {e}", file.display()) }),
    }
}

fn write_object(file: &Path, m: &Map<String, Value>) -> Result<()> {
    let io = |e: std::io::Error| Error::Config { registry: String::new(), why: format!("writing {}: {e}", file.display()) };
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let (path, mut f) = tempfile_in(dir).map_err(io)?;
    let _tracked = imgtool_core::track_path(&path);
    let text = serde_json::to_string_pretty(&Value::Object(m.clone())).unwrap_or_default();
    let written = f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).and_then(|()| std::fs::rename(&path, file));
    if written.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    written.map_err(io)
}

/// A new file beside the target, readable by its owner only (it will hold secrets).
fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::os::unix::fs::OpenOptionsExt;
    for i in 0..100u32 {
        let p = dir.join(format!(".auth.json.{}.{i}", std::process::id()));
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&p) {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free temporary name"))
}

/// Read, change and replace `file` while holding an `flock` on its directory, so logins
/// and logouts side by side each keep their change (the file itself is replaced, so it
/// cannot carry the lock). `change` says whether it changed anything.
fn update(file: &Path, change: impl FnOnce(&mut Map<String, Value>) -> bool) -> Result<bool> {
    let fail = |why: String| Error::Config { registry: String::new(), why };
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| fail(format!("creating {}: {e}", dir.display())))?;
    let lock = std::fs::File::open(dir).map_err(|e| fail(format!("opening {}: {e}", dir.display())))?;
    // Logins take milliseconds: a lock held for long is someone else's doing.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while let Err(e) = imgtool_core::try_lock(&lock) {
        if e.kind() != std::io::ErrorKind::WouldBlock || std::time::Instant::now() > deadline {
            return Err(fail(format!(
                "cannot lock {} to change {}: {e}; another process holds it (keep the auth file in a directory of your own)",
                dir.display(),
                file.display()
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut m = read_object(file)?;
    let changed = change(&mut m);
    if changed {
        write_object(file, &m)?;
    }
    Ok(changed)
}

/// Store `username`/`password` for `registry` in `file` (keeping everything else in it).
pub fn store_login(file: &Path, registry: &str, username: &str, password: &Secret) -> Result<()> {
    let key = if registry == imgtool_core::DOCKER_HUB { "https://index.docker.io/v1/" } else { registry };
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{}", password.expose()));
    update(file, |m| {
        let auths = m.entry("auths").or_insert_with(|| json!({}));
        if !auths.is_object() {
            *auths = json!({});
        }
        auths.as_object_mut().expect("made an object above").insert(key.into(), json!({ "auth": auth }));
        true
    })?;
    Ok(())
}

/// Remove `registry` from `file`; `Ok(false)` when it was not there.
pub fn remove_login(file: &Path, registry: &str) -> Result<bool> {
    update(file, |m| {
        let Some(auths) = m.get_mut("auths").and_then(Value::as_object_mut) else { return false };
        let mut removed = false;
        for k in keys(registry) {
            removed |= auths.remove(&k).is_some();
        }
        removed
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_lookup_logout() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth.json");
        std::fs::write(&file, r#"{"auths": {"other.example": {"auth": "eDp5"}}, "HttpHeaders": {"X": "1"}}"#).unwrap();
        store_login(&file, "localhost:5000", "alice", &Secret::new("pw:with:colons")).unwrap();
        store_login(&file, "docker.io", "bob", &Secret::new("hub")).unwrap();
        let files = AuthFiles { paths: vec![file.clone()], named: None };
        assert_eq!(
            files.lookup("localhost:5000").unwrap(),
            Some(Credential::Basic { username: "alice".into(), password: Secret::new("pw:with:colons") })
        );
        assert_eq!(files.lookup("docker.io").unwrap(), Some(Credential::Basic { username: "bob".into(), password: Secret::new("hub") }));
        assert_eq!(files.lookup("other.example").unwrap(), Some(Credential::Basic { username: "x".into(), password: Secret::new("y") }));
        assert_eq!(files.lookup("nowhere.example").unwrap(), None);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        let kept: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(kept["HttpHeaders"]["X"], "1", "other settings survive");
        assert!(remove_login(&file, "localhost:5000").unwrap());
        assert!(!remove_login(&file, "localhost:5000").unwrap());
        assert_eq!(files.lookup("localhost:5000").unwrap(), None);
    }

    #[test]
    fn identity_tokens_and_helpers() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        std::fs::write(&file, r#"{"auths": {"ghcr.io": {"auth": "", "identitytoken": "refresh-me"}}, "credHelpers": {"helped.example": "imgtool-test-missing"}}"#).unwrap();
        let files = AuthFiles { paths: vec![file], named: None };
        assert_eq!(files.lookup("ghcr.io").unwrap(), Some(Credential::IdentityToken(Secret::new("refresh-me"))));
        let err = files.lookup("helped.example").unwrap_err().to_string();
        assert!(err.contains("docker-credential-imgtool-test-missing"), "{err}");
    }

    #[test]
    fn logins_side_by_side_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth.json");
        store_login(&file, "gone.example", "u", &Secret::new("p")).unwrap();
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let file = file.clone();
                std::thread::spawn(move || {
                    store_login(&file, &format!("r{i}.example"), "u", &Secret::new("p")).unwrap();
                    if i == 0 {
                        assert!(remove_login(&file, "gone.example").unwrap());
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let files = AuthFiles { paths: vec![file.clone()], named: None };
        for i in 0..16 {
            assert!(files.lookup(&format!("r{i}.example")).unwrap().is_some(), "the login to r{i} was lost");
        }
        assert_eq!(files.lookup("gone.example").unwrap(), None);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["auth.json"], "temporary files left");
    }
}
