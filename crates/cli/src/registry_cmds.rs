//! Commands that talk to a registry directly: tags, catalog, delete, tag, login, logout.

use std::io::{IsTerminal, Read};

use futures::StreamExt;

use anyhow::{Context, Result, anyhow, bail};
use imgtool_core::Reference;
use imgtool_registry::{AuthFiles, ClientOptions, Credential, Registries, RegistryClient, Secret};

use crate::printer::Printer;

fn reference(s: &str) -> Result<Reference> {
    let s = crate::transport::strip_docker(s);
    s.parse::<Reference>().with_context(|| format!("{s:?} is not an image reference"))
}

/// `imgtool tags REPO`
pub async fn tags(repo: &str, reg: &Registries, p: Printer) -> Result<()> {
    let r = reference(repo)?;
    let client = reg.client(r.registry())?;
    let tags = client.tags(r.repository(), 1000).await.with_context(|| format!("listing tags of {}", r.name()))?;
    if p.json {
        p.result(serde_json::to_string(&tags)?);
    } else {
        for t in tags {
            p.result(t);
        }
    }
    Ok(())
}

/// `imgtool catalog REGISTRY`
pub async fn catalog(registry: &str, reg: &Registries, p: Printer) -> Result<()> {
    let registry = crate::transport::strip_docker(registry).trim_end_matches('/');
    let repos = reg.client(registry)?.catalog(1000).await.with_context(|| format!("listing the catalog of {registry}"))?;
    if p.json {
        p.result(serde_json::to_string(&repos)?);
    } else {
        for r in repos {
            p.result(r);
        }
    }
    Ok(())
}

/// The most tags `delete` looks at (one HEAD each) for the ones on the same manifest.
const TAGS_CHECKED: usize = 100;

/// `imgtool delete REF`: delete the manifest (by its digest; every tag on it goes too, and
/// they are named first).
pub async fn delete(image: &str, dry_run: bool, reg: &Registries, p: Printer) -> Result<()> {
    let r = reference(image)?;
    let client = reg.client(r.registry())?;
    let d = client.head_manifest(r.repository(), &r.tag_or_digest()).await?.ok_or_else(|| anyhow!("{r} not found"))?;
    // A registry deletes manifests, not tags: say which tags go with this one. Best effort,
    // and bounded: an account may delete without listing, and a repository hold many tags.
    let listed = client.tags(r.repository(), TAGS_CHECKED).await.unwrap_or_default();
    let checked = listed.len().min(TAGS_CHECKED);
    let same = futures::stream::iter(listed.into_iter().take(TAGS_CHECKED))
        .map(|t| {
            let (client, digest, repo) = (&client, &d.digest, r.repository());
            async move { client.head_manifest(repo, &t).await.ok().flatten().is_some_and(|m| m.digest == *digest).then_some(t) }
        })
        .buffered(8)
        .collect::<Vec<_>>()
        .await;
    let tags: Vec<String> = same.into_iter().flatten().collect();
    let mut shown = if tags.is_empty() { "no tag found".to_string() } else { format!("tags {}", tags.join(", ")) };
    if checked == TAGS_CHECKED {
        shown.push_str(&format!(", of the first {TAGS_CHECKED} tags"));
    }
    if dry_run {
        p.record(
            serde_json::json!({"wouldDelete": r.to_string(), "digest": d.digest.to_string(), "tags": tags}),
            format!("would delete {} {} ({shown})", r.name(), d.digest),
        );
        return Ok(());
    }
    client.delete_manifest(r.repository(), &d.digest).await.with_context(|| format!("deleting {r}"))?;
    p.record(
        serde_json::json!({"deleted": r.to_string(), "digest": d.digest.to_string(), "tags": tags}),
        format!("deleted {} {} ({shown})", r.name(), d.digest),
    );
    Ok(())
}

/// `imgtool tag REF NEWTAG`: put the same manifest under another tag; no blob moves.
pub async fn tag(image: &str, new_tag: &str, reg: &Registries, p: Printer) -> Result<()> {
    let r = reference(image)?;
    let target = if new_tag.contains('/') || new_tag.contains(':') { reference(new_tag)? } else { r.with_tag(new_tag)? };
    if target.registry() != r.registry() || target.repository() != r.repository() {
        bail!("{target} is in another repository; use `imgtool copy docker://{r} docker://{target}` (blobs are mounted, not downloaded)");
    }
    let client = reg.client(r.registry())?;
    let (desc, raw) = client.get_manifest(r.repository(), &r.tag_or_digest()).await?;
    let t = target.tag().unwrap_or("latest");
    client.put_manifest(r.repository(), t, &desc, raw).await?;
    p.record(serde_json::json!({"tagged": target.to_string(), "digest": desc.digest.to_string()}), format!("{target} {}", desc.digest));
    Ok(())
}

/// `imgtool login REGISTRY`: check the credentials against the registry, then store them.
pub async fn login(
    registry: &str,
    username: Option<String>,
    password_stdin: bool,
    password: Option<String>,
    opts: &ClientOptions,
    p: Printer,
) -> Result<()> {
    let registry = crate::transport::strip_docker(registry).trim_end_matches('/');
    let username = username.ok_or_else(|| anyhow!("give a user name with -u USER"))?;
    let password = match (password, password_stdin) {
        (Some(pw), false) => pw,
        (None, true) => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).context("reading the password from standard input")?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        // As docker login: asked for on a terminal, never echoed.
        (None, false) if std::io::stdin().is_terminal() => {
            rpassword::prompt_password(format!("Password for {username}@{registry}: ")).context("reading the password")?
        }
        (None, false) => bail!("give the password with --password-stdin (or -p, which shows it to other users of this machine)"),
        (Some(_), true) => bail!("-p and --password-stdin cannot be used together"),
    };
    let secret = Secret::new(password);
    // The command line's TLS settings, and only the credentials being checked.
    let mut check = ClientOptions { auth_files: AuthFiles::default(), credentials: Default::default(), ..opts.clone() };
    check.credentials.insert(registry.to_string(), Credential::Basic { username: username.clone(), password: secret.clone() });
    let client = RegistryClient::new(registry, &check)?;
    // A catalog-less ping: /v2/ with the credentials, through whatever auth the registry asks for.
    match client.ensure_auth(&[]).await {
        Ok(()) => {}
        Err(imgtool_registry::Error::Unauthorized { .. }) => bail!("{registry} refused the user name and password of {username}"),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("logging in to {registry}"))),
    }
    let file = opts.auth_files.write_file();
    imgtool_registry::store_login(&file, registry, &username, &secret)?;
    p.status(format!("credentials for {registry} stored in {}", file.display()));
    p.record(serde_json::json!({"registry": registry, "file": file.display().to_string()}), "Login Succeeded");
    Ok(())
}

/// `imgtool logout REGISTRY`
pub async fn logout(registry: &str, opts: &ClientOptions, p: Printer) -> Result<()> {
    let registry = crate::transport::strip_docker(registry).trim_end_matches('/');
    let file = opts.auth_files.write_file();
    if !imgtool_registry::remove_login(&file, registry)? {
        bail!("not logged in to {registry} (no entry in {})", file.display());
    }
    p.result(format!("Removed login credentials for {registry}"));
    if opts.auth_files.lookup(registry).ok().flatten().is_some() {
        crate::printer::warn(format!(
            "another credentials file (podman's or skopeo's auth.json) still has a login for {registry}; it is used until it is removed there"
        ));
    }
    Ok(())
}
