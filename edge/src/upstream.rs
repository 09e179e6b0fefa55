//! Fetching from the origins: a hyper client whose host names resolve through hickory-resolver
//! (so DNS TTLs are honoured by its cache), trying each configured origin in order. HTTPS
//! origins are spoken to with rustls (SNI from the URL's host, or from the origin's configured
//! `Host` override), trusting the system's roots plus an optional CA file; a certificate that
//! does not verify is a 502 that names the origin and the reason.
//!
//! A GET goes to origin after origin: one is skipped on a connection error, a timeout before
//! headers, or a 5xx; the last origin's answer (or error) is what the edge gets (a GET whose
//! reused connection the origin closed before answering is first sent once more on another
//! connection: that is a keep-alive race, not a failure). Each failure
//! also opens that origin's breaker (`breaker`), so the next requests do not wait on it. A request with
//! a body ([`Upstream::send`]) goes to one origin only, the first whose breaker is closed: once
//! its body has started to go out it can never be sent again (RFC 9110 §9.2.2).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hickory_resolver::TokioResolver;
use http::{HeaderMap, Request, Response, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;

use crate::breaker::{Breakers, Verdict};
use crate::error::EdgeError;

/// A request body on its way to the origin.
pub type UpstreamBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// The origins and a pooled client to reach them.
#[derive(Debug, Clone)]
pub struct Upstream {
    origins: Vec<Uri>,
    /// Per origin, the `Host` sent instead of the URL's (`origin_host`).
    hosts: Vec<Option<http::HeaderValue>>,
    breakers: std::sync::Arc<Breakers>,
    client: Client<HttpsConnector<HttpConnector<DnsResolver>>, UpstreamBody>,
    first_byte_timeout: Duration,
}

impl Upstream {
    /// `origins` must be `http://host[:port][/base]` URLs (checked by the config).
    pub fn new(
        origins: &[String],
        host_overrides: &std::collections::BTreeMap<String, String>,
        ca_file: Option<&std::path::Path>,
        connect_timeout: Duration,
        first_byte_timeout: Duration,
    ) -> Result<Self, EdgeError> {
        let written = origins;
        let origins = written
            .iter()
            .map(|o| o.trim_end_matches('/').parse::<Uri>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| EdgeError::Internal(format!("origin URL: {e}").into()))?;
        let mut hosts = Vec::new();
        let mut tls_names = std::collections::HashMap::new();
        for (text, uri) in written.iter().zip(&origins) {
            let host = host_overrides.get(text);
            hosts.push(
                host.map(|h| http::HeaderValue::from_str(h))
                    .transpose()
                    .map_err(|e| EdgeError::Internal(format!("origin_host: {e}").into()))?,
            );
            if let (Some(host), Some(authority)) = (host, uri.authority()) {
                // The name without its port: a certificate names hosts.
                let name = host
                    .parse::<http::uri::Authority>()
                    .map(|a| a.host().to_owned())
                    .unwrap_or_else(|_| host.clone());
                tls_names.insert(authority.as_str().to_owned(), name);
            }
        }
        let mut connector = HttpConnector::new_with_resolver(DnsResolver::new());
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(ca_file).map_err(|e| EdgeError::Internal(e.into()))?)
            .https_or_http()
            .with_server_name_resolver(TlsNames(tls_names))
            .enable_http1()
            .wrap_connector(connector);
        // Idle connections are dropped before the origin's own keep-alive timeout would close
        // them (5 s in Node.js and Apache httpd): a request sent on a connection the origin is
        // closing fails, and one with a body cannot be sent again.
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(4))
            .build(connector);
        Ok(Self {
            breakers: std::sync::Arc::new(Breakers::new(origins.len())),
            origins,
            hosts,
            client,
            first_byte_timeout,
        })
    }

    /// True when some origin answers `HEAD /` (any status: it is up and reachable) within
    /// `timeout`. Breakers are left alone: this asks for the router, not for a viewer.
    pub async fn reachable(&self, timeout: Duration) -> bool {
        for i in 0..self.origins.len() {
            let empty = Empty::new().map_err(|never| match never {}).boxed();
            let Ok(request) = self.request_to(i, http::Method::HEAD, "/", HeaderMap::new(), empty)
            else {
                continue;
            };
            if let Ok(Ok(_)) = tokio::time::timeout(timeout, self.client.request(request)).await {
                return true;
            }
        }
        false
    }

    /// GETs `path_and_query` with `headers`, origin after origin.
    pub async fn get(
        &self,
        path_and_query: &str,
        headers: &HeaderMap,
    ) -> Result<Response<Incoming>, EdgeError> {
        let mut failures = Vec::new();
        // Origins whose breaker is open are skipped, unless every one is. A probe is claimed
        // only when the loop reaches its origin: an earlier origin's answer ends the loop, and
        // a claimed probe nobody sends would keep the origin skipped.
        let all_open = (0..self.origins.len()).all(|i| self.breakers.is_open(i));
        let chosen: Vec<usize> = (0..self.origins.len())
            .filter(|&i| all_open || !self.breakers.is_open(i))
            .collect();
        for (n, &i) in chosen.iter().enumerate() {
            let verdict = self.breakers.verdict(i);
            if verdict == Verdict::Skip && !all_open {
                // Another request claimed its probe meanwhile.
                continue;
            }
            let origin = &self.origins[i];
            let last = n + 1 == chosen.len();
            let probe = ProbeGuard {
                breakers: &self.breakers,
                origin: i,
                active: verdict == Verdict::Probe,
            };
            let answer = match tokio::time::timeout(
                self.first_byte_timeout,
                self.get_from(i, path_and_query, headers),
            )
            .await
            {
                Ok(sent) => Ok(sent?),
                Err(elapsed) => Err(elapsed),
            };
            probe.done();
            match answer {
                Ok(Ok(response)) if response.status().is_server_error() => {
                    self.breakers.failure(i);
                    if last {
                        return Ok(response);
                    }
                    tracing::warn!(origin = %origin, status = %response.status(), "origin answered 5xx; trying the next");
                    failures.push(format!("{origin}: {}", response.status()));
                }
                Ok(Ok(response)) => {
                    self.breakers.success(i);
                    return Ok(response);
                }
                Ok(Err(error)) => {
                    self.breakers.failure(i);
                    let error = describe(&error);
                    tracing::warn!(origin = %origin, %error, "origin request failed");
                    failures.push(format!("{origin}: {error}"));
                }
                Err(_) => {
                    self.breakers.failure(i);
                    tracing::warn!(origin = %origin, timeout = ?self.first_byte_timeout, "origin timed out; skipped for a while");
                    if last {
                        return Err(EdgeError::OriginTimeout);
                    }
                    failures.push(format!("{origin}: timed out"));
                }
            }
        }
        Err(EdgeError::OriginUnreachable(failures.join("; ").into()))
    }

    /// One GET to origin `i`, sent a second time when the connection it went out on was closed
    /// before any answer: a pooled keep-alive connection the origin closed just as the request
    /// left (hyper's "connection closed before message completed"; an origin's idle timeout
    /// races every reuse). The origin answered nothing, and a GET may be repeated (RFC 9110
    /// §9.2.2); a second such close is the origin's failure.
    async fn get_from(
        &self,
        i: usize,
        path_and_query: &str,
        headers: &HeaderMap,
    ) -> Result<Result<Response<Incoming>, hyper_util::client::legacy::Error>, EdgeError> {
        let send = || {
            let empty = Empty::new().map_err(|never| match never {}).boxed();
            let request =
                self.request_to(i, http::Method::GET, path_and_query, headers.clone(), empty)?;
            Ok::<_, EdgeError>(self.client.request(request))
        };
        match send()?.await {
            Err(error) if closed_before_answer(&error) => {
                tracing::debug!(origin = %self.origins[i], "origin closed the connection before answering; sent again");
                Ok(send()?.await)
            }
            answer => Ok(answer),
        }
    }

    /// Sends `method path_and_query` with `headers` and `body` to one origin, once: the first
    /// whose breaker is closed (or the first, when all are open). Its answer counts for the
    /// breaker as a GET's would.
    pub async fn send(
        &self,
        method: http::Method,
        path_and_query: &str,
        headers: HeaderMap,
        body: UpstreamBody,
    ) -> Result<Response<Incoming>, EdgeError> {
        if self.origins.is_empty() {
            return Err(EdgeError::OriginUnreachable("no origin configured".into()));
        }
        let i = (0..self.origins.len())
            .find(|&i| !self.breakers.is_open(i))
            .unwrap_or(0);
        let origin = &self.origins[i];
        let request = self.request_to(i, method, path_and_query, headers, body)?;
        match tokio::time::timeout(self.first_byte_timeout, self.client.request(request)).await {
            Ok(Ok(response)) => {
                if response.status().is_server_error() {
                    self.breakers.failure(i);
                } else {
                    self.breakers.success(i);
                }
                Ok(response)
            }
            Ok(Err(error)) => {
                self.breakers.failure(i);
                let error = describe(&error);
                tracing::warn!(origin = %origin, %error, "origin request failed");
                Err(EdgeError::OriginUnreachable(
                    format!("{origin}: {error}").into(),
                ))
            }
            Err(_) => {
                self.breakers.failure(i);
                Err(EdgeError::OriginTimeout)
            }
        }
    }
}

/// The TLS server name of each origin: its `Host` override where one is configured (keyed by
/// the URL's authority, as hyper-rustls hands it the URL), else the URL's host.
#[derive(Debug)]
struct TlsNames(std::collections::HashMap<String, String>);

impl hyper_rustls::ResolveServerName for TlsNames {
    fn resolve(
        &self,
        uri: &Uri,
    ) -> Result<rustls::pki_types::ServerName<'static>, Box<dyn std::error::Error + Sync + Send>>
    {
        let configured = uri.authority().and_then(|a| self.0.get(a.as_str()));
        let host = match configured {
            Some(name) => name.as_str(),
            None => uri.host().unwrap_or_default(),
        };
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| Box::new(e) as _)
    }
}

impl Upstream {
    /// The request for origin `i`: its base URL before `path_and_query`, and its `Host`
    /// override, if any, in place of the URL's.
    fn request_to(
        &self,
        i: usize,
        method: http::Method,
        path_and_query: &str,
        mut headers: HeaderMap,
        body: UpstreamBody,
    ) -> Result<Request<UpstreamBody>, EdgeError> {
        let uri = format!(
            "{}{}",
            self.origins[i].to_string().trim_end_matches('/'),
            path_and_query
        );
        if let Some(host) = &self.hosts[i] {
            headers.insert(http::header::HOST, host.clone());
        }
        let mut request = Request::builder().method(method).uri(&uri);
        if let Some(h) = request.headers_mut() {
            *h = headers;
        }
        request
            .body(body)
            .map_err(|e| EdgeError::BadRequest(format!("cannot build origin request: {e}").into()))
    }
}

/// Lets another request probe an origin if this one's probe is dropped before it has an
/// answer (a viewer that went away).
struct ProbeGuard<'a> {
    breakers: &'a Breakers,
    origin: usize,
    active: bool,
}

impl ProbeGuard<'_> {
    fn done(mut self) {
        self.active = false;
    }
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.active {
            self.breakers.abandon_probe(self.origin);
        }
    }
}

/// The connection a request went out on closed before any of the answer came back.
fn closed_before_answer(error: &hyper_util::client::legacy::Error) -> bool {
    !error.is_connect()
        && std::error::Error::source(error)
            .and_then(|cause| cause.downcast_ref::<hyper::Error>())
            .is_some_and(hyper::Error::is_incomplete_message)
}

/// An error with its causes, so that a viewer and a log see why (a certificate that does not
/// verify hides two levels down in hyper-util's connect error).
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Reads a PEM file of CA certificates; the error says what is wrong with it.
pub fn read_ca_file(
    path: &std::path::Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", path.display()));
    }
    Ok(certs)
}

/// The TLS client configuration for HTTPS origins: the system's roots and those of `ca_file`.
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::warn!(%error, "reading the system's trust roots");
    }
    let (added, _) = roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        for cert in read_ca_file(path)? {
            roots
                .add(cert)
                .map_err(|e| format!("origin_ca_file {}: {e}", path.display()))?;
        }
    } else if added == 0 {
        tracing::warn!(
            "no system trust roots: HTTPS origins will not verify without origin_ca_file"
        );
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS setup: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(config)
}

/// Resolves origin host names with hickory-resolver, whose cache follows record TTLs.
#[derive(Clone)]
pub struct DnsResolver {
    resolver: TokioResolver,
}

impl std::fmt::Debug for DnsResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DnsResolver")
    }
}

impl DnsResolver {
    fn new() -> Self {
        // The system configuration (/etc/resolv.conf, /etc/hosts); without one, hickory's
        // defaults, so that IP-literal origins still work on a machine with no resolver.
        let resolver = match TokioResolver::builder_tokio().and_then(|b| b.build()) {
            Ok(resolver) => resolver,
            Err(error) => {
                tracing::warn!(%error, "no system DNS configuration; using defaults");
                TokioResolver::builder_with_config(
                    hickory_resolver::config::ResolverConfig::from_name_servers(Vec::new()),
                    hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
                )
                .build()
                .unwrap_or_else(|e| panic!("hickory-resolver default configuration failed: {e}"))
            }
        };
        Self { resolver }
    }
}

impl tower_service::Service<Name> for DnsResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let resolver = self.resolver.clone();
        Box::pin(async move {
            let lookup = resolver
                .lookup_ip(name.as_str())
                .await
                .map_err(|e| std::io::Error::other(format!("resolving {}: {e}", name.as_str())))?;
            let addrs: Vec<SocketAddr> = lookup.iter().map(|ip| SocketAddr::new(ip, 0)).collect();
            Ok(addrs.into_iter())
        })
    }
}
