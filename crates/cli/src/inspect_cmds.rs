//! Reading an image on any transport: `inspect`, `manifest`, `config`, `digest` (as skopeo
//! inspect, `--raw` and `--config` do).

use anyhow::{Context, Result};
use imgtool_core::{Flavor, MANIFEST_LIMIT, ParsedManifest, Platform, read_blob};
use imgtool_registry::Registries;

use crate::commands::load;
use crate::printer::Printer;
use crate::transport::Transport;

/// `imgtool manifest IMAGE`: the manifest bytes exactly as stored (from an index, the
/// chosen platform's).
pub async fn manifest(t: &Transport, platform: Option<&str>, reg: &Registries, p: Printer) -> Result<()> {
    let (source, selector) = t.open_source(reg)?;
    let desc = source.resolve(selector.as_deref()).await.with_context(|| format!("reading {t}"))?;
    let raw = read_blob(source.as_ref(), &desc, MANIFEST_LIMIT).await.with_context(|| format!("reading {t}"))?;
    let raw = match (platform, ParsedManifest::parse(&raw, Some(&desc.media_type))?) {
        (Some(pl), ParsedManifest::Index(index)) => {
            let want: Platform = pl.parse()?;
            let d = imgtool_core::choose_platform(&index, Some(&want), &t.to_string())?;
            read_blob(source.as_ref(), d, MANIFEST_LIMIT).await.with_context(|| format!("reading {t} for {want}"))?
        }
        _ => raw,
    };
    p.result(String::from_utf8_lossy(&raw));
    Ok(())
}

/// The platforms of the index `t` names, or `None` when it names a single image.
pub async fn index_platforms(t: &Transport, reg: &Registries) -> Result<Option<Vec<String>>> {
    if *t == Transport::Scratch {
        return Ok(None);
    }
    let (source, selector) = t.open_source(reg)?;
    let desc = source.resolve(selector.as_deref()).await.with_context(|| format!("reading {t}"))?;
    if !desc.media_type.is_index() {
        return Ok(None);
    }
    let raw = read_blob(source.as_ref(), &desc, MANIFEST_LIMIT).await.with_context(|| format!("reading {t}"))?;
    let ParsedManifest::Index(index) = ParsedManifest::parse(&raw, Some(&desc.media_type))? else { return Ok(None) };
    Ok(Some(index.manifests.iter().map(|m| m.platform.as_ref().map_or_else(|| "unknown".to_string(), ToString::to_string)).collect()))
}

/// `imgtool config IMAGE`: the config blob of the image (for the chosen platform).
pub async fn config(t: &Transport, platform: Option<&str>, reg: &Registries, p: Printer) -> Result<()> {
    let img = load(t, platform, Flavor::Oci, reg).await?;
    p.result(String::from_utf8_lossy(&img.config().to_bytes()));
    Ok(())
}

/// `imgtool digest IMAGE`: the digest of the manifest (or index) the name resolves to.
pub async fn digest(t: &Transport, reg: &Registries, p: Printer) -> Result<()> {
    let (source, selector) = t.open_source(reg)?;
    let d = source.resolve(selector.as_deref()).await.with_context(|| format!("reading {t}"))?;
    p.record(
        serde_json::json!({"reference": t.to_string(), "digest": d.digest.to_string(), "mediaType": d.media_type.as_str()}),
        d.digest.to_string(),
    );
    Ok(())
}

/// `imgtool inspect IMAGE`: manifest, config and layers, as text or one JSON document.
pub async fn inspect(t: &Transport, platform: Option<&str>, p: Printer, reg: &Registries) -> Result<()> {
    let image = load(t, platform, Flavor::Oci, reg).await?;
    let (mdesc, raw) = image.manifest();
    let config: serde_json::Value = serde_json::from_slice(&image.config().to_bytes()).context("parsing the config")?;
    if p.json {
        let manifest: serde_json::Value = serde_json::from_slice(&raw).context("parsing the manifest")?;
        let mut out = serde_json::json!({
            "digest": mdesc.digest.to_string(),
            "mediaType": mdesc.media_type.as_str(),
            "manifest": manifest,
            "config": config,
        });
        // The image shown is one platform of an index: say so, and which others there are.
        if let Some(platforms) = index_platforms(t, reg).await? {
            out["index"] = serde_json::json!({ "platforms": platforms, "shown": image.platform().to_string() });
        }
        // Keys sorted, so the output is the same whatever serde_json features the build has.
        let sorted: serde_json::Value = serde_json::from_slice(&imgtool_core::canonical_json(&out))?;
        p.result(serde_json::to_string_pretty(&sorted)?);
        return Ok(());
    }
    p.result(format!("Image:      {t}"));
    if let Some(platforms) = index_platforms(t, reg).await? {
        p.result(format!("Index:      {} platforms: {} (shown: {})", platforms.len(), platforms.join(", "), image.platform()));
    }
    p.result(format!("Digest:     {}", mdesc.digest));
    p.result(format!("MediaType:  {}", mdesc.media_type));
    p.result(format!("Platform:   {}", image.platform()));
    if let Some(c) = config.get("created").and_then(|v| v.as_str()) {
        p.result(format!("Created:    {c}"));
    }
    let c = config.get("config");
    let field = |k: &str| c.and_then(|c| c.get(k)).filter(|v| !v.is_null());
    for (k, label) in
        [("Env", "Env"), ("Entrypoint", "Entrypoint"), ("Cmd", "Cmd"), ("WorkingDir", "WorkingDir"), ("User", "User"), ("Labels", "Labels")]
    {
        if let Some(v) = field(k) {
            p.result(format!("{:<12}{}", format!("{label}:"), v));
        }
    }
    let total: u64 = image.layers().iter().map(|l| l.descriptor.size).sum();
    p.result(format!("Layers:     {} ({})", image.layers().len(), indicatif::HumanBytes(total)));
    for (i, l) in image.layers().iter().enumerate() {
        p.result(format!(
            "  {i:>3}  {}  {:>10}  {}",
            l.descriptor.digest,
            indicatif::HumanBytes(l.descriptor.size).to_string(),
            l.descriptor.media_type
        ));
    }
    Ok(())
}
