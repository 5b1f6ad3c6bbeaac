//! TLS trust for one registry. Certificates found in its cert directories are trusted as CAs
//! and, as Docker and skopeo do, a self-signed server certificate placed there is trusted for
//! that registry exactly (webpki alone refuses a CA certificate presented as the server's own).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The `*.crt` certificates of `registry` under each of `dirs` (`DIR/HOST[:PORT]/*.crt`), with
/// the files they came from.
pub(crate) fn load(dirs: &[PathBuf], registry: &str) -> Result<(Vec<CertificateDer<'static>>, Vec<PathBuf>), String> {
    let (mut certs, mut files) = (Vec::new(), Vec::new());
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir.join(registry)) else { continue };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "crt")).collect();
        paths.sort();
        for p in paths {
            certs.extend(read_pem(&p)?);
            tracing::debug!(registry, cert = %p.display(), "trusting certificate");
            files.push(p);
        }
    }
    Ok((certs, files))
}

fn read_pem(p: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    use std::io::Read;
    // A cert dir is the user's own configuration, but a link in it to /dev/zero or a FIFO
    // must not hang every command: a regular file, read up to a limit.
    const LIMIT: u64 = 16 << 20;
    let reading = |e: std::io::Error| format!("reading {}: {e}", p.display());
    let file = std::fs::File::open(p).map_err(reading)?;
    if !file.metadata().map_err(reading)?.is_file() {
        return Err(format!("{} is not a regular file; a cert dir holds PEM certificate files", p.display()));
    }
    let mut pem = Vec::new();
    file.take(LIMIT + 1).read_to_end(&mut pem).map_err(reading)?;
    if pem.len() as u64 > LIMIT {
        return Err(format!("{} is larger than 16 MiB: not a certificate file", p.display()));
    }
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not a PEM certificate: {e}", p.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", p.display()));
    }
    Ok(certs)
}

/// A client TLS configuration for one registry: the system's roots plus `certs` as CAs, and
/// each of `certs` accepted as the server's own certificate when presented exactly.
pub(crate) fn pinned_config(certs: Vec<CertificateDer<'static>>) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let inner = rustls_platform_verifier::Verifier::new_with_extra_roots(certs.clone(), provider.clone())
        .map_err(|e| format!("cannot use the certificates: {e}"))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { certs, inner: Arc::new(inner) }))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[derive(Debug)]
struct Pinned {
    certs: Vec<CertificateDer<'static>>,
    inner: Arc<dyn ServerCertVerifier>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The user put this very certificate in this registry's directory: that is the trust,
        // as far as Go's verifier gives it (Docker, skopeo): it must still name the host and
        // be within its dates. The handshake signature is checked against its key below.
        if self.certs.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
            let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_name(&parsed, server_name)?;
            within_dates(end_entity, now)?;
            return Ok(ServerCertVerified::assertion());
        }
        self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn within_dates(cert: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    use rustls::CertificateError;
    use x509_cert::der::Decode;
    let parsed =
        x509_cert::Certificate::from_der(cert.as_ref()).map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let validity = &parsed.tbs_certificate.validity;
    let now = now.as_secs();
    if now < validity.not_before.to_unix_duration().as_secs() {
        return Err(rustls::Error::InvalidCertificate(CertificateError::NotValidYet));
    }
    if now > validity.not_after.to_unix_duration().as_secs() {
        return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
    }
    Ok(())
}
