//! HTTP/1.1 written and read by hand (byte-for-byte what a case says) and HTTP/2 through hyper.

use super::*;

/// Writes an HTTP/1.1 request exactly as given.
pub(super) async fn write_h1_request<W: AsyncWrite + Unpin>(
    writer: &mut W,
    request: &Request,
    addr: SocketAddr,
) -> Result<(), ClientError> {
    check_no_line_breaks("method", &request.method)?;
    check_no_line_breaks("target", &request.target)?;
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.target);
    match &request.host {
        Some(host) => {
            check_no_line_breaks("host", host)?;
            head.push_str(&format!("Host: {host}\r\n"));
        }
        None if !request.has_header("host") => head.push_str(&format!("Host: {addr}\r\n")),
        None => {}
    }
    for (name, value) in &request.headers {
        check_no_line_breaks("header name", name)?;
        check_no_line_breaks("header value", value)?;
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !request.body.is_empty()
        && !request.has_header("content-length")
        && !request.has_header("transfer-encoding")
    {
        head.push_str(&format!("Content-Length: {}\r\n", request.body.len()));
    }
    head.push_str("\r\n");
    let io = |source| ClientError::Io { addr, source };
    writer.write_all(head.as_bytes()).await.map_err(io)?;
    writer.write_all(&request.body).await.map_err(io)?;
    writer.flush().await.map_err(io)?;
    Ok(())
}

pub(super) fn is_closed_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
    )
}

/// Reads one line (up to and including `\n`), failing past `MAX_HEAD_LEN`.
pub(super) async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    out: &mut Vec<u8>,
    addr: SocketAddr,
) -> Result<usize, ClientError> {
    let n = (&mut *reader)
        .take(MAX_HEAD_LEN as u64)
        .read_until(b'\n', out)
        .await
        .map_err(|source| ClientError::Io { addr, source })?;
    if n as u64 >= MAX_HEAD_LEN as u64 {
        return Err(ClientError::Protocol {
            addr,
            message: "response line too long".into(),
        });
    }
    Ok(n)
}

/// Reads the head (status line + headers) of one response.
pub(super) async fn read_h1_head<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    addr: SocketAddr,
) -> Result<(u16, HttpVersion, Vec<(String, String)>), ClientError> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let n = match read_line(reader, &mut head, addr).await {
            Ok(n) => n,
            Err(ClientError::Io { source, .. }) if head.is_empty() && is_closed_error(&source) => {
                return Err(ClientError::ConnectionClosed {
                    addr,
                    detail: source.to_string(),
                });
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Err(if head.is_empty() {
                ClientError::ConnectionClosed {
                    addr,
                    detail: "EOF before the status line".into(),
                }
            } else {
                ClientError::ConnectionClosed {
                    addr,
                    detail: "EOF inside the response head".into(),
                }
            });
        }
        if head.len() > MAX_HEAD_LEN {
            return Err(ClientError::Protocol {
                addr,
                message: "response head too large".into(),
            });
        }
        let line = head.get(before..).unwrap_or_default();
        if line == b"\r\n" || line == b"\n" {
            break;
        }
    }
    let mut header_buf = vec![httparse::EMPTY_HEADER; 256];
    let mut parsed = httparse::Response::new(&mut header_buf);
    match parsed.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(ClientError::Protocol {
                addr,
                message: "incomplete response head".into(),
            });
        }
        Err(e) => {
            return Err(ClientError::Protocol {
                addr,
                message: format!(
                    "malformed response head ({e}): {:?}",
                    String::from_utf8_lossy(&head)
                ),
            });
        }
    }
    let status = parsed.code.unwrap_or_default();
    let version = if parsed.version == Some(0) {
        HttpVersion::Http10
    } else {
        HttpVersion::Http11
    };
    let headers = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    Ok((status, version, headers))
}

/// Reads a complete HTTP/1.x response (skipping interim 1xx responses other than 101).
pub(super) async fn read_h1_response<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    request: &Request,
    addr: SocketAddr,
) -> Result<Response, ClientError> {
    let (status, version, headers) = loop {
        let (status, version, headers) = read_h1_head(reader, addr).await?;
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        break (status, version, headers);
    };
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
        version,
    };
    let no_body = request.method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&status)
        || status == 204
        || status == 304;
    if no_body {
        return Ok(response);
    }
    let io = |source| ClientError::Io { addr, source };
    let chunked = response.header("transfer-encoding").is_some_and(|te| {
        te.split(',')
            .any(|c| c.trim().eq_ignore_ascii_case("chunked"))
    });
    if chunked {
        loop {
            let mut line = Vec::new();
            if read_line(reader, &mut line, addr).await? == 0 {
                return Err(ClientError::Protocol {
                    addr,
                    message: "EOF inside a chunked body".into(),
                });
            }
            let text = String::from_utf8_lossy(&line);
            let size_text = text.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16).map_err(|_| ClientError::Protocol {
                addr,
                message: format!("bad chunk size line {text:?}"),
            })?;
            if size == 0 {
                // Trailers until the empty line.
                loop {
                    let mut trailer = Vec::new();
                    let n = read_line(reader, &mut trailer, addr).await?;
                    if n == 0 || trailer == b"\r\n" || trailer == b"\n" {
                        break;
                    }
                }
                break;
            }
            let start = response.body.len();
            response.body.resize(start + size, 0);
            if let Some(chunk) = response.body.get_mut(start..) {
                reader.read_exact(chunk).await.map_err(io)?;
            }
            let mut crlf = Vec::new();
            read_line(reader, &mut crlf, addr).await?;
        }
    } else if let Some(length) = response.header("content-length") {
        let length: usize = length.trim().parse().map_err(|_| ClientError::Protocol {
            addr,
            message: format!("bad Content-Length {length:?}"),
        })?;
        response.body.resize(length, 0);
        reader.read_exact(&mut response.body).await.map_err(io)?;
    } else if status != 101 {
        reader.read_to_end(&mut response.body).await.map_err(io)?;
    }
    Ok(response)
}

pub(super) async fn h2_exchange(
    stream: Box<dyn AsyncStream>,
    request: &Request,
    scheme: &str,
    addr: SocketAddr,
) -> Result<Response, ClientError> {
    let protocol = |message: String| ClientError::Protocol { addr, message };
    let header_host = request
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.clone());
    let authority = request
        .host
        .clone()
        .or(header_host)
        .unwrap_or_else(|| addr.to_string());
    let uri = hyper::Uri::builder()
        .scheme(scheme)
        .authority(authority.as_str())
        .path_and_query(request.target.as_str())
        .build()
        .map_err(|e| {
            ClientError::InvalidRequest(format!(
                "HTTP/2 needs a parsable authority {authority:?} and target {:?}: {e}",
                request.target
            ))
        })?;
    let method = hyper::Method::from_bytes(request.method.as_bytes())
        .map_err(|e| ClientError::InvalidRequest(format!("method {:?}: {e}", request.method)))?;
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(uri)
        .version(hyper::Version::HTTP_2);
    for (name, value) in &request.headers {
        if name.eq_ignore_ascii_case("host") {
            continue;
        }
        let name = hyper::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| ClientError::InvalidRequest(format!("header name {name:?}: {e}")))?;
        let value = hyper::header::HeaderValue::from_str(value)
            .map_err(|e| ClientError::InvalidRequest(format!("header value {value:?}: {e}")))?;
        builder = builder.header(name, value);
    }
    let hyper_request = builder
        .body(Full::new(Bytes::from(request.body.clone())))
        .map_err(|e| ClientError::InvalidRequest(format!("building the HTTP/2 request: {e}")))?;

    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| protocol(format!("HTTP/2 handshake: {e}")))?;
    let driver = tokio::spawn(connection);
    let result = async {
        let response = sender.send_request(hyper_request).await.map_err(|e| {
            if e.is_incomplete_message() || e.is_closed() {
                ClientError::ConnectionClosed {
                    addr,
                    detail: e.to_string(),
                }
            } else {
                protocol(format!("HTTP/2 request: {e}{}", source_chain(&e)))
            }
        })?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| protocol(format!("HTTP/2 response body: {e}{}", source_chain(&e))))?
            .to_bytes()
            .to_vec();
        Ok(Response {
            status,
            headers,
            body,
            version: HttpVersion::Http2,
        })
    }
    .await;
    driver.abort();
    result
}

pub(super) fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = String::new();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(&format!(": {s}"));
        source = s.source();
    }
    out
}
