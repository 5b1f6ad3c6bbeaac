//! Helpers for the end-to-end tests: the built `imgtool` binary, a busybox rootfs, a real
//! registry server, a private Docker Engine, and podman with the flags this machine needs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod conda_channel;
mod dockerd;
mod fault;
pub mod hostile;
mod hostile_cases;
mod tls;

pub use dockerd::{Dockerd, PodmanService};
pub use fault::{Fault, FaultProxy, Seen};
pub use hostile_cases::cases as hostile_cases;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A command running the `imgtool` binary at `bin` in `dir`, with a clean environment
/// for logs and build times.
pub fn imgtool_at(bin: &Path, dir: &Path) -> Command {
    let mut c = Command::new(bin);
    // Caches (conda packages, build steps) stay in the test's directory: tests do not
    // share state through the user's ~/.cache, and leave nothing behind.
    // So is the local image store.
    c.current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("SOURCE_DATE_EPOCH")
        .env("XDG_CACHE_HOME", dir.join(".cache"))
        .env("XDG_DATA_HOME", dir.join(".local/share"));
    c
}

/// A required external tool; tests that need it fail with what to install.
pub fn require(tool: &str, package: &str) {
    let found = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    assert!(found, "{tool} is needed by this test: apt-get install {package} (or run .ci/run, which installs everything)");
}

/// Run a command and insist it succeeds, returning stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Exit code, stdout and stderr in one string, for snapshots.
pub fn transcript(out: &Output) -> String {
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A busybox root filesystem from Debian's busybox-static.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    require("busybox", "busybox-static");
    let root = dir.join("rootfs");
    for d in ["bin", "etc", "tmp", "root"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let bb = ["/bin/busybox", "/usr/bin/busybox"].into_iter().find(|p| Path::new(p).exists()).unwrap();
    std::fs::copy(bb, root.join("bin/busybox")).unwrap();
    // Run the host's copy: executing the one just written can race with another test's
    // fork holding it open ("text file busy").
    let list = run_ok(Command::new(bb).arg("--list"));
    for applet in list.lines().filter(|a| *a != "busybox") {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    root
}

/// A self-signed certificate and its key, written into `dir` by openssl.
fn self_signed(dir: &Path, key: &str, cert: &str, subject: &str) {
    run_ok(
        Command::new("openssl")
            .current_dir(dir)
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", subject]),
    );
}

/// A self-signed server certificate for localhost and 127.0.0.1 as `openssl req -x509` makes
/// it (a CA certificate used as the server's own), with its key, written into `dir`.
pub fn self_signed_server_cert(dir: &Path, key: &str, cert: &str) {
    require("openssl", "openssl");
    run_ok(Command::new("openssl").current_dir(dir).args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        key,
        "-out",
        cert,
        "-days",
        "2",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
    ]));
}

/// `ca.pem` and a server certificate it signs for localhost and 127.0.0.1 (`cert.pem`,
/// `key.pem`), made in `dir` by openssl. rustls (rightly) refuses a self-signed CA
/// certificate used as the server's own, hence the two.
fn ca_signed_cert(dir: &Path) {
    require("openssl", "openssl");
    let ssl = |args: &[&str]| run_ok(Command::new("openssl").current_dir(dir).args(args));
    self_signed(dir, "ca.key", "ca.pem", "/CN=imgtool test CA");
    ssl(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "server.csr", "-subj", "/CN=localhost"]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    sign(dir, "server.csr", "server.ext", "cert.pem");
}

/// Sign the request `csr` in `dir` with the CA there (`ca.pem`, `ca.key`), extensions from
/// `ext`, for two days, into `out`.
fn sign(dir: &Path, csr: &str, ext: &str, out: &str) {
    let args =
        ["x509", "-req", "-in", csr, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", out, "-days", "2", "-extfile", ext];
    run_ok(Command::new("openssl").current_dir(dir).args(args));
}

/// A CA, a server certificate for 127.0.0.1 (`cert.pem`, `key.pem`) and a client one
/// (`client-cert.pem`, `client-key.pem`) in `dir`: a Docker Engine's `--tlsverify` set.
pub fn engine_certs(dir: &Path) {
    ca_signed_cert(dir);
    let ssl = |args: &[&str]| run_ok(Command::new("openssl").current_dir(dir).args(args));
    ssl(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client-key.pem", "-out", "client.csr", "-subj", "/CN=client"]);
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    sign(dir, "client.csr", "client.ext", "client-cert.pem");
}

/// Incompressible bytes from a seed, for blobs big enough to cut mid-way or to bench.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// How a test registry authenticates.
#[derive(Debug, Clone, Default)]
pub enum RegistryAuth {
    /// Open to all.
    #[default]
    None,
    /// htpasswd Basic auth with one user.
    Basic {
        /// User name.
        user: String,
        /// Password.
        pass: String,
    },
    /// Bearer tokens from `realm`, signed by the key of `cert` (a PEM path).
    Token {
        /// The token endpoint.
        realm: String,
        /// The certificate whose key signs tokens.
        cert: PathBuf,
    },
}

/// How to start a test registry.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// Authentication.
    pub auth: RegistryAuth,
    /// Serve HTTPS with a certificate signed by a fresh CA (see [`Registry::cert_dir`]).
    pub tls: bool,
    /// With `tls`: serve a self-signed certificate instead (a CA certificate used as the
    /// server's own, as `openssl req -x509` makes it), placed itself in the cert dir.
    pub self_signed: bool,
}

/// A real registry (Debian's docker-registry) on 127.0.0.1, stopped on drop. Its access log
/// is kept, so tests can count what was asked of it.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Start an open registry with its own storage.
    pub fn start() -> Self {
        Self::start_with(RegistryConfig::default())
    }

    /// Start a registry configured by `cfg`.
    pub fn start_with(cfg: RegistryConfig) -> Self {
        require("docker-registry", "docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut http = format!("addr: {addr}, secret: fixed");
        if cfg.tls {
            require("openssl", "openssl");
            let certs = dir.path().join("certs.d").join(&addr);
            std::fs::create_dir_all(&certs).unwrap();
            if cfg.self_signed {
                self_signed_server_cert(dir.path(), "key.pem", "cert.pem");
                std::fs::copy(dir.path().join("cert.pem"), certs.join("ca.crt")).unwrap();
            } else {
                ca_signed_cert(dir.path());
                std::fs::copy(dir.path().join("ca.pem"), certs.join("ca.crt")).unwrap();
            }
            http.push_str(&format!(
                ", tls: {{certificate: {}, key: {}}}",
                dir.path().join("cert.pem").display(),
                dir.path().join("key.pem").display()
            ));
        }
        let auth = match &cfg.auth {
            RegistryAuth::None => String::new(),
            RegistryAuth::Basic { user, pass } => {
                require("htpasswd", "apache2-utils");
                let line = run_ok(Command::new("htpasswd").args(["-Bbn", user, pass]));
                std::fs::write(dir.path().join("htpasswd"), line.trim()).unwrap();
                format!("auth: {{htpasswd: {{realm: basic-realm, path: {}}}}}\n", dir.path().join("htpasswd").display())
            }
            RegistryAuth::Token { realm, cert } => format!(
                "auth: {{token: {{realm: \"{realm}\", service: test-registry, issuer: test-issuer, rootcertbundle: {}}}}}\n",
                cert.display()
            ),
        };
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(
            &cfg_path,
            format!(
                "version: 0.1\nlog: {{level: info, formatter: text, accesslog: {{disabled: false}}}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{{http}}}\n{auth}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child =
            Command::new("docker-registry").arg("serve").arg(&cfg_path).stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, addr, dir }
    }

    /// The directory holding `HOST:PORT/ca.crt` for a TLS registry (a `--cert-dir`).
    pub fn cert_dir(&self) -> PathBuf {
        self.dir.path().join("certs.d")
    }

    /// Everything the registry logged so far (its access log included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// How many access-log lines are `METHOD` requests whose path contains `needle`.
    pub fn requests(&self, method: &str, needle: &str) -> usize {
        let m = format!("\"{method} ");
        self.log().lines().filter(|l| l.contains(&m) && l.contains(needle)).count()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `podman run` of `args` (image, then command) with the flags this machine needs.
pub fn podman_run(dir: &Path, args: &[&str]) -> Command {
    let mut c = podman(dir);
    c.args(["run", "--rm", "--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--network", "none"])
        .args(args);
    c
}

/// podman with the flags that work on this machine, storage under `dir`.
pub fn podman(dir: &Path) -> Command {
    require("podman", "podman");
    let mut c = Command::new("podman");
    c.arg("--root").arg(dir.join("storage")).arg("--runroot").arg(dir.join("run")).args([
        "--storage-driver",
        "vfs",
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "file",
    ]);
    c
}

/// A token endpoint for a registry with `auth.token`: it checks Basic credentials (when
/// configured), grants what the scope asks for, and signs RS256 JWTs with `openssl`,
/// carrying its certificate in `x5c` as distribution expects.
pub struct TokenServer {
    /// The realm URL to configure in the registry.
    pub realm: String,
    /// The certificate (PEM) to give the registry as `rootcertbundle`.
    pub cert: PathBuf,
    /// Requests seen: (query string, whether an Authorization header came).
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<(String, bool)>>>,
    _dir: tempfile::TempDir,
}

fn b64url(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    b64(data, T, false)
}

fn b64(data: &[u8], table: &[u8; 64], pad: bool) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(table[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl TokenServer {
    /// Start one; `user` and `pass` are required when given, else anyone gets tokens.
    pub fn start(user: Option<(&str, &str)>) -> Self {
        Self::start_with_refresh(user, None)
    }

    /// Like [`TokenServer::start`], also answering OAuth2 POSTs that present `refresh`
    /// as their refresh token (an identity token).
    pub fn start_with_refresh(user: Option<(&str, &str)>, refresh: Option<&str>) -> Self {
        Self::start_full(user, refresh, serde_json::json!(300))
    }

    /// Like [`TokenServer::start`], saying its tokens live `expires_in` (any JSON value).
    pub fn start_expiring(user: Option<(&str, &str)>, expires_in: serde_json::Value) -> Self {
        Self::start_full(user, None, expires_in)
    }

    fn start_full(user: Option<(&str, &str)>, refresh: Option<&str>, expires_in: serde_json::Value) -> Self {
        let refresh = refresh.map(str::to_string);
        require("openssl", "openssl");
        let dir = tempfile::tempdir().unwrap();
        self_signed(dir.path(), "tok.key", "tok.crt", "/CN=token-signer");
        let der = std::process::Command::new("openssl")
            .current_dir(dir.path())
            .args(["x509", "-in", "tok.crt", "-outform", "DER"])
            .output()
            .unwrap()
            .stdout;
        const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let x5c = b64(&der, STD, true);
        let expected_basic = user.map(|(u, p)| format!("Basic {}", b64(format!("{u}:{p}").as_bytes(), STD, true)));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let realm = format!("http://{}/token", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let key = dir.path().join("tok.key");
        let seen2 = seen.clone();
        std::thread::spawn(move || {
            use std::io::{BufRead, BufReader, Write};
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut auth = None;
                let mut length = 0usize;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("authorization") {
                            auth = Some(v.trim().to_string());
                        } else if k.eq_ignore_ascii_case("content-length") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut query =
                    line.split_whitespace().nth(1).and_then(|p| p.split_once('?')).map(|(_, q)| q.to_string()).unwrap_or_default();
                let mut refreshed = false;
                if line.starts_with("POST") {
                    let mut body = vec![0u8; length];
                    let _ = std::io::Read::read_exact(&mut reader, &mut body);
                    query = String::from_utf8_lossy(&body).into_owned();
                    seen2.lock().unwrap().push((query.clone(), auth.is_some()));
                    if !query.contains("grant_type=refresh_token") {
                        // Like many token servers: no OAuth2 password grant, only the GET.
                        let _ = write!(stream, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                        continue;
                    }
                    let presented = query.split('&').find_map(|kv| kv.strip_prefix("refresh_token=")).map(url_decode);
                    refreshed = refresh.is_some() && presented == refresh;
                } else {
                    seen2.lock().unwrap().push((query.clone(), auth.is_some()));
                }
                if expected_basic.is_some() && auth != expected_basic && !refreshed {
                    let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#;
                    let _ = write!(
                        stream,
                        "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    continue;
                }
                let mut access = Vec::new();
                for pair in query.split('&') {
                    if let Some(scope) = pair.strip_prefix("scope=") {
                        for s in url_decode(scope).split(' ') {
                            let parts: Vec<&str> = s.split(':').collect();
                            if parts.len() == 3 {
                                let actions: Vec<&str> = parts[2].split(',').collect();
                                access.push(serde_json::json!({"type": parts[0], "name": parts[1], "actions": actions}));
                            }
                        }
                    }
                }
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
                let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [x5c]});
                let claims = serde_json::json!({
                    "iss": "test-issuer", "sub": "tester", "aud": "test-registry",
                    "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", rand_id()), "access": access,
                });
                let signing_input = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
                let mut child = std::process::Command::new("openssl")
                    .args(["dgst", "-sha256", "-sign"])
                    .arg(&key)
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                child.stdin.take().unwrap().write_all(signing_input.as_bytes()).unwrap();
                let sig = child.wait_with_output().unwrap().stdout;
                let token = format!("{signing_input}.{}", b64url(&sig));
                let body = if refreshed {
                    serde_json::json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}).to_string()
                } else {
                    serde_json::json!({"token": token, "expires_in": expires_in}).to_string()
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self { realm, cert: dir.path().join("tok.crt"), seen, _dir: dir }
    }
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64);
    h.finish()
}

/// A small deterministic generator (xorshift), so every run tries the same inputs.
pub struct Rng(pub u64);
impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}
