//! One keep-alive HTTP/1.1 connection, plain or TLS, that times each response and reads its
//! `X-Cache`. HTTP/1.1 on purpose: the peers are measured the same way (wrk speaks it too).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::ServerName};

/// Where requests go: `http://host:port` or `https://host:port` (then `ca` is trusted).
#[derive(Clone)]
pub struct Target {
    pub authority: String,
    pub addr: SocketAddr,
    pub tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("authority", &self.authority)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Target {
    pub fn parse(base: &str, ca: Option<&std::path::Path>) -> Result<Self> {
        let uri: Uri = base
            .parse()
            .with_context(|| format!("{base:?} is not a URL"))?;
        let host = uri.host().ok_or_else(|| anyhow!("{base:?} has no host"))?;
        let https = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let addr = format!("{host}:{port}")
            .parse()
            .with_context(|| format!("{base:?}: the host must be an IP address"))?;
        let tls = if https {
            let ca = ca.ok_or_else(|| anyhow!("https needs --ca"))?;
            let mut roots = rustls::RootCertStore::empty();
            let pem = std::fs::read(ca).with_context(|| format!("read {}", ca.display()))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                roots.add(cert?)?;
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            let name = ServerName::try_from(host.to_owned())?;
            Some((TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        Ok(Self {
            authority: format!("{host}:{port}"),
            addr,
            tls,
        })
    }
}

/// What one response was.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: u16,
    pub hit: bool,
    pub bytes: u64,
    pub ttfb: Duration,
    pub total: Duration,
}

#[derive(Debug)]
pub struct Connection {
    sender: SendRequest<Empty<Bytes>>,
}

impl Connection {
    pub async fn open(target: &Target) -> Result<Self> {
        Self::open_from(target, None).await
    }

    /// A connection from `source` (a local address of this machine), if given.
    pub async fn open_from(target: &Target, source: Option<std::net::IpAddr>) -> Result<Self> {
        let tcp = match source {
            None => TcpStream::connect(target.addr).await?,
            Some(source) => {
                let socket = match source {
                    std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                    std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
                };
                socket.bind(std::net::SocketAddr::new(source, 0))?;
                socket.connect(target.addr).await?
            }
        };
        tcp.set_nodelay(true)?;
        let sender = match &target.tls {
            None => {
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
                tokio::spawn(conn);
                sender
            }
            Some((connector, name)) => {
                let tls = connector.connect(name.clone(), tcp).await?;
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
                tokio::spawn(conn);
                sender
            }
        };
        Ok(Self { sender })
    }

    /// GETs `path`, reading the whole body. `since` is when the request counts from (its
    /// scheduled time in an open-loop run, so queueing is part of the latency).
    pub async fn get(&mut self, target: &Target, path: &str, since: Instant) -> Result<Outcome> {
        self.sender.ready().await?;
        let request = Request::get(path)
            .header(http::header::HOST, &target.authority)
            .body(Empty::<Bytes>::new())?;
        let response = self.sender.send_request(request).await?;
        let ttfb = since.elapsed();
        let status = response.status().as_u16();
        let hit = response
            .headers()
            .get("x-cache")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_uppercase().starts_with("HIT"));
        let mut body = response.into_body();
        let mut bytes = 0u64;
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame?.data_ref() {
                bytes += data.len() as u64;
            }
        }
        Ok(Outcome {
            status,
            hit,
            bytes,
            ttfb,
            total: since.elapsed(),
        })
    }
}
