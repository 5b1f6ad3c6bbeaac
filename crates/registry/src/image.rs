//! A registry repository as a lazy [`BlobSource`] and as an [`ImageSink`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use imgtool_core::{BlobSource, BlobStream, Descriptor, Digest, ImageSink, MemoryBlobs, Reference, Result, verify};
use url::Url;

use crate::api::Mount;
use crate::client::{ClientOptions, RegistryClient};

/// Clients by registry name, made on first use and shared.
#[derive(Debug, Default)]
pub struct Registries {
    opts: ClientOptions,
    clients: Mutex<HashMap<String, Arc<RegistryClient>>>,
}

impl Registries {
    /// A pool making clients with `opts`.
    pub fn new(opts: ClientOptions) -> Self {
        Self { opts, clients: Mutex::new(HashMap::new()) }
    }

    /// The client for `registry`.
    pub fn client(&self, registry: &str) -> crate::Result<Arc<RegistryClient>> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(registry) {
            return Ok(c.clone());
        }
        let c = Arc::new(RegistryClient::new(registry, &self.opts)?);
        clients.insert(registry.to_string(), c.clone());
        Ok(c)
    }

    /// A lazy source for `reference`.
    pub fn source(&self, reference: &Reference) -> crate::Result<RegistrySource> {
        Ok(RegistrySource::new(self.client(reference.registry())?, reference.clone()))
    }

    /// A sink writing into `reference`'s repository.
    pub fn sink(&self, reference: &Reference) -> crate::Result<RegistrySink> {
        Ok(RegistrySink::new(self.client(reference.registry())?, reference.clone()))
    }
}

/// A repository on a registry, read lazily: resolving fetches a manifest, and a blob's
/// bytes move only when someone opens it.
#[derive(Debug)]
pub struct RegistrySource {
    client: Arc<RegistryClient>,
    reference: Reference,
    manifests: MemoryBlobs,
}

impl RegistrySource {
    /// A source for `reference` through `client`.
    pub fn new(client: Arc<RegistryClient>, reference: Reference) -> Self {
        Self { client, reference, manifests: MemoryBlobs::default() }
    }

    /// The client (for its stats).
    pub fn client(&self) -> &Arc<RegistryClient> {
        &self.client
    }
}

#[async_trait]
impl BlobSource for RegistrySource {
    async fn resolve(&self, selector: Option<&str>) -> Result<Descriptor> {
        let wanted = selector.map_or_else(|| self.reference.tag_or_digest(), str::to_string);
        let (desc, raw) = self.client.get_manifest(self.reference.repository(), &wanted).await?;
        self.manifests.insert(raw);
        Ok(desc)
    }

    async fn open(&self, desc: &Descriptor) -> Result<BlobStream> {
        if self.manifests.exists(desc).await? {
            return self.manifests.open(desc).await;
        }
        if desc.media_type.is_manifest() || desc.media_type.is_index() || desc.media_type.is_schema1() {
            let (_, raw) = self.client.get_manifest(self.reference.repository(), &desc.digest.to_string()).await?;
            self.manifests.insert(raw.clone());
            return Ok(Box::pin(std::io::Cursor::new(raw)));
        }
        Ok(self.client.get_blob(self.reference.repository(), desc))
    }

    async fn exists(&self, desc: &Descriptor) -> Result<bool> {
        Ok(self.client.head_blob(self.reference.repository(), &desc.digest).await?.is_some())
    }

    fn describe(&self) -> String {
        format!("docker://{}", self.reference)
    }

    fn mount_origin(&self) -> Option<Reference> {
        Some(self.reference.clone())
    }
}

/// A repository on a registry being written: blobs the registry has are skipped, blobs in
/// another repository of the same registry are mounted, the rest uploaded; manifests are
/// pushed exactly as given, tags last.
#[derive(Debug)]
pub struct RegistrySink {
    client: Arc<RegistryClient>,
    reference: Reference,
    /// Upload sessions a refused mount (202) handed us, by digest.
    sessions: Mutex<HashMap<Digest, Url>>,
}

impl RegistrySink {
    /// A sink for `reference`'s repository through `client`.
    pub fn new(client: Arc<RegistryClient>, reference: Reference) -> Self {
        Self { client, reference, sessions: Mutex::new(HashMap::new()) }
    }

    /// The client (for its stats).
    pub fn client(&self) -> &Arc<RegistryClient> {
        &self.client
    }

    fn repo(&self) -> &str {
        self.reference.repository()
    }
}

#[async_trait]
impl ImageSink for RegistrySink {
    async fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        Ok(self.client.head_blob(self.repo(), &desc.digest).await?.is_some())
    }

    async fn mount_blob(&self, desc: &Descriptor, from: &dyn BlobSource) -> Result<bool> {
        let Some(origin) = from.mount_origin() else { return Ok(false) };
        if origin.registry() != self.reference.registry() || origin.repository() == self.repo() {
            return Ok(false);
        }
        match self.client.mount_blob(self.repo(), &desc.digest, origin.repository()).await {
            Ok(Mount::Mounted) => Ok(true),
            Ok(Mount::Upload(session)) => {
                self.sessions.lock().unwrap_or_else(|p| p.into_inner()).insert(desc.digest.clone(), session);
                Ok(false)
            }
            Err(e) => {
                tracing::debug!(digest = %desc.digest, "mount failed, uploading instead: {e}");
                Ok(false)
            }
        }
    }

    async fn put_blob(&self, desc: &Descriptor, data: BlobStream) -> Result<()> {
        let session = self.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(&desc.digest);
        self.client.upload_blob(self.repo(), desc, verify(desc, data), session).await?;
        Ok(())
    }

    async fn put_manifest(&self, desc: &Descriptor, raw: Bytes, tags: &[String]) -> Result<()> {
        if tags.is_empty() {
            return Ok(self.client.put_manifest(self.repo(), &desc.digest.to_string(), desc, raw).await?);
        }
        for t in tags {
            self.client.put_manifest(self.repo(), t, desc, raw.clone()).await?;
        }
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        format!("docker://{}", self.reference)
    }
}
