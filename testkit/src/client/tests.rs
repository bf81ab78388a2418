//! Tests of the client against in-process servers (raw sockets, a rustls server, hyper h2).
use super::*;
use crate::certs::CertificateAuthority;
use crate::echo::{EchoIdentity, EchoServer};
use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::thread::JoinHandle;

/// Accepts one connection, reads the request head (and a Content-Length body), answers `response`
/// verbatim, closes, and returns the raw request bytes.
fn raw_server(response: &'static [u8]) -> (SocketAddr, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).unwrap() == 0 {
                break;
            }
            request.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&request).to_lowercase();
        if let Some(len) = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
        {
            let mut body = vec![0u8; len.trim().parse().unwrap()];
            stream.read_exact(&mut body).unwrap();
            request.extend_from_slice(&body);
        }
        stream.write_all(response).unwrap();
        request
    });
    (addr, handle)
}

#[test]
fn writes_the_request_verbatim() {
    let (addr, server) = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    let request = Request::new("PUT", "/a/./b/../c//d?x=%2f&y")
        .with_host("Foo.Example:81")
        .with_header("X-Case", "v1")
        .with_header("x-case", "v2")
        .with_body("hi");
    assert_eq!(HttpClient::http1(addr).send(&request).unwrap().status, 200);
    let sent = String::from_utf8(server.join().unwrap()).unwrap();
    assert_eq!(
        sent,
        "PUT /a/./b/../c//d?x=%2f&y HTTP/1.1\r\nHost: Foo.Example:81\r\nX-Case: v1\r\nx-case: v2\r\n\
         Content-Length: 2\r\n\r\nhi"
    );
}

#[test]
fn host_defaults_to_the_address_unless_given_as_a_header() {
    let (addr, server) = raw_server(b"HTTP/1.1 204 No Content\r\n\r\n");
    HttpClient::http1(addr).send(&Request::get("/")).unwrap();
    assert_eq!(
        String::from_utf8(server.join().unwrap()).unwrap(),
        format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n")
    );
    let (addr, server) = raw_server(b"HTTP/1.1 204 No Content\r\n\r\n");
    HttpClient::http1(addr)
        .send(&Request::get("/").with_header("host", "h.example"))
        .unwrap();
    assert_eq!(
        String::from_utf8(server.join().unwrap()).unwrap(),
        "GET / HTTP/1.1\r\nhost: h.example\r\n\r\n"
    );
}

#[test]
fn parses_chunked_bodies_repeated_headers_and_interim_responses() {
    let (addr, _server) = raw_server(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nTransfer-Encoding: chunked\r\n\
          set-cookie: b=2\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\n",
    );
    let response = HttpClient::http1(addr).send(&Request::get("/")).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.version, HttpVersion::Http11);
    assert_eq!(response.text(), "hello, world");
    assert_eq!(response.header("SET-COOKIE").as_deref(), Some("a=1,b=2"));
    assert_eq!(response.header_values("set-cookie"), ["a=1", "b=2"]);
    assert_eq!(response.header("missing"), None);
}

#[test]
fn never_follows_redirects_and_reads_bodies_to_eof() {
    let (addr, _server) =
        raw_server(b"HTTP/1.0 302 Found\r\nLocation: http://elsewhere.example/\r\n\r\nmoved");
    let response = HttpClient::http1(addr).send(&Request::get("/old")).unwrap();
    assert_eq!(response.status, 302);
    assert_eq!(response.version, HttpVersion::Http10);
    assert_eq!(
        response.header("location").as_deref(),
        Some("http://elsewhere.example/")
    );
    assert_eq!(response.text(), "moved");
}

#[test]
fn head_responses_have_no_body() {
    let (addr, _server) = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n");
    let response = HttpClient::http1(addr)
        .send(&Request::new("HEAD", "/"))
        .unwrap();
    assert_eq!(response.header("content-length").as_deref(), Some("10"));
    assert!(response.body.is_empty());
}

#[test]
fn reports_closed_refused_and_timed_out_connections() {
    let (addr, _server) = raw_server(b"");
    let err = HttpClient::http1(addr)
        .send(&Request::get("/"))
        .unwrap_err();
    assert!(err.is_connection_closed(), "{err}");

    let port = crate::ports::free_port().unwrap();
    let err = HttpClient::http1(SocketAddr::from(([127, 0, 0, 1], port)))
        .send(&Request::get("/"))
        .unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err}");

    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let err = HttpClient::http1(silent.local_addr().unwrap())
        .with_timeout(Duration::from_millis(200))
        .send(&Request::get("/"))
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&silent.local_addr().unwrap().to_string())
    );
}

#[test]
fn rejects_line_breaks_in_requests() {
    let client = HttpClient::http1("127.0.0.1:9".parse().unwrap());
    for request in [
        Request::get("/").with_header("x", "a\r\nInjected: 1"),
        Request::get("/ HTTP/1.1\r\n"),
        Request::get("/").with_host("a\nb"),
    ] {
        let err = crate::rt::block_on(async {
            let mut sink = Vec::new();
            write_h1_request(&mut sink, &request, client.addr()).await
        })
        .unwrap()
        .unwrap_err();
        assert!(matches!(err, ClientError::InvalidRequest(_)), "{err}");
    }
}

#[test]
fn h2c_and_echo_helpers() {
    let echo = EchoServer::start(
        EchoIdentity::new("ns", "svc", "pod"),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let response = HttpClient::h2c(echo.addr())
        .send(
            &Request::new("POST", "/p?q")
                .with_host("a.example")
                .with_body("x"),
        )
        .unwrap();
    assert_eq!(response.version, HttpVersion::Http2);
    let body = response.echo().unwrap();
    assert_eq!(
        (body.method.as_str(), body.path.as_str(), body.host.as_str()),
        ("POST", "/p?q", "a.example")
    );
    assert_eq!(response.json().unwrap()["proto"], "HTTP/2.0");
    assert!(
        Response {
            body: b"not json".to_vec(),
            ..response
        }
        .json()
        .is_err()
    );
}

#[tokio::test]
async fn blocking_send_works_inside_a_runtime() {
    // The server must not run on this (current-thread) runtime, which the blocking call stalls.
    let echo = EchoServer::start(EchoIdentity::default(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let response = HttpClient::http1(echo.addr())
        .send(&Request::get("/x"))
        .unwrap();
    assert_eq!(response.echo().unwrap().path, "/x");
    let err = HttpClient::http1(echo.addr())
        .websocket(&Request::get("/"))
        .unwrap_err();
    assert!(matches!(err, ClientError::Runtime(_)), "{err}");
    let mut ws = HttpClient::http1(echo.addr())
        .websocket_async(&Request::get("/"))
        .await
        .unwrap();
    ws.send(&Message::Text("a".into())).await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Message::Text("a".into()));
}

#[test]
fn websocket_refusal_returns_the_response() {
    let (addr, _server) = raw_server(b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope");
    let err = HttpClient::http1(addr)
        .websocket(&Request::get("/ws"))
        .unwrap_err();
    match err {
        ClientError::UpgradeRefused { response, .. } => {
            assert_eq!(response.status, 404);
            assert_eq!(response.text(), "nope");
        }
        other => panic!("unexpected {other}"),
    }
}

/// A TLS server answering `sni=<SNI> alpn=<ALPN> version=<HTTP version>` over HTTP/1.1 or HTTP/2.
struct TlsServer {
    addr: SocketAddr,
    ca_pem: String,
    runtime: tokio::runtime::Runtime,
}

fn tls_server(alpn: &[&[u8]]) -> TlsServer {
    use rustls::pki_types::PrivateKeyDer;
    let ca = CertificateAuthority::new("client test CA").unwrap();
    let leaf = ca.issue(&["tls.example", "*.wild.example"]).unwrap();
    let chain = CertificateDer::pem_slice_iter(leaf.chain_pem().as_bytes())
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let (_, conn) = tls.get_ref();
                let info = format!(
                    "sni={} alpn={}",
                    conn.server_name().unwrap_or("-"),
                    conn.alpn_protocol()
                        .map(|p| String::from_utf8_lossy(p).into_owned())
                        .unwrap_or("-".into())
                );
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let text = format!("{info} version={:?}", req.version());
                        async move {
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                Bytes::from(text),
                            )))
                        }
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    TlsServer {
        addr,
        ca_pem: ca.cert_pem().to_owned(),
        runtime,
    }
}

#[test]
fn tls_with_sni_alpn_and_verification() {
    let server = tls_server(&[b"h2", b"http/1.1"]);
    let trusted = TlsConfig::with_ca_pem("tls.example", server.ca_pem.as_bytes()).unwrap();
    let request = Request::get("/");

    let response = HttpClient::https1(server.addr, trusted.clone())
        .send(&request)
        .unwrap();
    assert_eq!(
        response.text(),
        "sni=tls.example alpn=http/1.1 version=HTTP/1.1"
    );
    let response = HttpClient::http2_tls(server.addr, trusted)
        .send(&request)
        .unwrap();
    assert_eq!(response.version, HttpVersion::Http2);
    assert_eq!(response.text(), "sni=tls.example alpn=h2 version=HTTP/2.0");

    let wildcard = TlsConfig::with_ca_pem("a.wild.example", server.ca_pem.as_bytes()).unwrap();
    let response = HttpClient::https1(server.addr, wildcard)
        .send(&request)
        .unwrap();
    assert!(
        response.text().starts_with("sni=a.wild.example "),
        "{}",
        response.text()
    );

    let wrong_name = TlsConfig::with_ca_pem("other.example", server.ca_pem.as_bytes()).unwrap();
    let err = HttpClient::https1(server.addr, wrong_name)
        .send(&request)
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Tls { sni, .. } if sni == "other.example"),
        "{err}"
    );

    let other_ca = CertificateAuthority::new("other").unwrap();
    let untrusted = TlsConfig::with_ca_pem("tls.example", other_ca.cert_pem().as_bytes()).unwrap();
    let err = HttpClient::https1(server.addr, untrusted)
        .send(&request)
        .unwrap_err();
    assert!(matches!(err, ClientError::Tls { .. }), "{err}");

    let insecure = TlsConfig::insecure_accept_any_cert("anything.example");
    let response = HttpClient::http2_tls(server.addr, insecure)
        .send(&request)
        .unwrap();
    assert_eq!(
        response.text(),
        "sni=anything.example alpn=h2 version=HTTP/2.0"
    );
    drop(server.runtime);
}

#[test]
fn http2_tls_requires_alpn_h2() {
    // A server without ALPN completes the handshake; the client refuses to speak h2 blindly.
    let server = tls_server(&[]);
    let tls = TlsConfig::with_ca_pem("tls.example", server.ca_pem.as_bytes()).unwrap();
    let err = HttpClient::http2_tls(server.addr, tls)
        .send(&Request::get("/"))
        .unwrap_err();
    assert!(err.to_string().contains("did not select h2"), "{err}");
    // A server with ALPN but without h2 refuses the handshake.
    let server = tls_server(&[b"http/1.1"]);
    let tls = TlsConfig::with_ca_pem("tls.example", server.ca_pem.as_bytes()).unwrap();
    let err = HttpClient::http2_tls(server.addr, tls)
        .send(&Request::get("/"))
        .unwrap_err();
    assert!(matches!(err, ClientError::Tls { .. }), "{err}");
}

#[test]
fn tls_config_rejects_empty_or_bad_pem() {
    assert!(matches!(
        TlsConfig::with_ca_pem("x", b""),
        Err(ClientError::TlsConfig(_))
    ));
    assert!(TlsConfig::with_ca_file("x", Path::new("/nonexistent/ca.pem")).is_err());
}
