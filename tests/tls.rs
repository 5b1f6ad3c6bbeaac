//! One port answering both HTTPS and plain HTTP, so a test can redirect from `https://H:P`
//! to `http://H:P`: a change of scheme alone, on the same host and port.

use std::path::Path;
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;

/// What the handler learns about a connection.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// Whether it spoke TLS.
    pub tls: bool,
}

impl Connected<IncomingStream<'_, Sniffing>> for Peer {
    fn connect_info(stream: IncomingStream<'_, Sniffing>) -> Self {
        *stream.remote_addr()
    }
}

/// A listener that looks at each connection's first byte: a TLS handshake record (0x16)
/// is answered with TLS, anything else as plain HTTP.
pub struct Sniffing {
    pub tcp: TcpListener,
    pub tls: Option<TlsAcceptor>,
}

impl Listener for Sniffing {
    type Io = Either<TcpStream, TlsStream<TcpStream>>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Peer) {
        // Accepting is serial: a client that connects and says nothing (a pooled or
        // abandoned connection) must not hold up every later one, so plain listeners never
        // wait for a byte, and TLS ones wait briefly.
        let wait = std::time::Duration::from_secs(2);
        loop {
            let Ok((stream, _)) = self.tcp.accept().await else { continue };
            let Some(tls) = &self.tls else { return (Either::Left(stream), Peer { tls: false }) };
            let mut first = [0u8; 1];
            match tokio::time::timeout(wait, stream.peek(&mut first)).await {
                Ok(Ok(1)) if first[0] == 0x16 => match tokio::time::timeout(wait, tls.accept(stream)).await {
                    Ok(Ok(s)) => return (Either::Right(s), Peer { tls: true }),
                    _ => continue,
                },
                Ok(Ok(_)) | Err(_) => return (Either::Left(stream), Peer { tls: false }),
                Ok(Err(_)) => continue,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Peer> {
        Ok(Peer { tls: self.tls.is_some() })
    }
}

/// A CA and a server certificate for 127.0.0.1 made in `dir`, the CA also written as
/// `dir/ADDR/ca.crt` (a `--cert-dir` for `addr`); the acceptor serving that certificate.
pub fn acceptor(dir: &Path, addr: &str) -> TlsAcceptor {
    crate::ca_signed_cert(dir);
    let trust = dir.join(addr);
    std::fs::create_dir_all(&trust).unwrap();
    std::fs::copy(dir.join("ca.pem"), trust.join("ca.crt")).unwrap();
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(dir.join("cert.pem")).unwrap().collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}
