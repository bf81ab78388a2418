use super::*;

// HTTP/1.1 client (one request per connection) and the echo backend's JSON

#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).trim().to_owned()
    }
    pub(crate) fn echo(&self) -> Option<Echo> {
        Echo::parse(&self.body)
    }
}

pub(crate) fn http_get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<Reply> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        let _ = write!(request, "{name}: {value}\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .with_context(|| format!("sending to {addr}"))?;
    // Read until the response is complete by its own framing: waiting for the close would add
    // Envoy's delayed-close timeout (1 s) to every local reply.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = stream
            .read(&mut buf)
            .with_context(|| format!("reading the answer from {addr}"))?;
        raw.extend_from_slice(buf.get(..n).unwrap_or_default());
        if n == 0 || response_complete(&raw) {
            break;
        }
    }
    parse_reply(&raw).with_context(|| format!("the answer from {addr} to GET {host}{path}"))
}

/// True when `raw` holds a whole response: the head, then `content-length` bytes, or a chunked
/// body up to its last chunk (trailers are not used by anything the demo talks to). Without
/// either, the body ends when the connection closes.
pub(crate) fn response_complete(raw: &[u8]) -> bool {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(raw.get(..split).unwrap_or_default()).to_ascii_lowercase();
    let body = raw.get(split + 4..).unwrap_or_default();
    let header = |name: &str| {
        head.split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_owned())
    };
    if header("transfer-encoding").is_some_and(|v| v == "chunked") {
        return dechunk(body).is_ok();
    }
    match header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(length) => body.len() >= length,
        None => false,
    }
}

pub(crate) fn parse_reply(raw: &[u8]) -> anyhow::Result<Reply> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("no complete response head ({} bytes)", raw.len()))?;
    let head = String::from_utf8_lossy(raw.get(..split).unwrap_or_default()).into_owned();
    let rest = raw.get(split + 4..).unwrap_or_default();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

pub(crate) fn dechunk(mut data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("truncated chunk size"))?;
        let size_text = String::from_utf8_lossy(data.get(..line_end).unwrap_or_default());
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        if size == 0 {
            return Ok(body);
        }
        let chunk = data
            .get(line_end + 2..line_end + 2 + size)
            .ok_or_else(|| anyhow!("truncated chunk"))?;
        body.extend_from_slice(chunk);
        data = data.get(line_end + 4 + size..).unwrap_or_default();
    }
}

/// What an echo backend reports: who it is and what it saw.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Echo {
    pub(crate) namespace: String,
    pub(crate) service: String,
    #[serde(default)]
    pub(crate) pod: String,
    #[serde(default)]
    pub(crate) method: String,
    pub(crate) path: String,
    #[serde(default)]
    pub(crate) host: String,
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, Vec<String>>,
}

impl Echo {
    pub(crate) fn parse(body: &[u8]) -> Option<Echo> {
        serde_json::from_slice(body).ok()
    }
    pub(crate) fn backend(&self) -> String {
        format!("{}/{}", self.namespace, self.service)
    }
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.join(","))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn reads_echo_answers() {
        let body = br#"{"path":"/a?b=1","host":"x.example","method":"GET","proto":"HTTP/1.1",
            "httpVersion":"1.1","headers":{"X-Team":["store"],"X-Two":["a","b \"q\" \u00e9\ud83d\ude00"]},
            "namespace":"store","service":"store-v1","pod":"store-v1-0","n":-1.5e3,"t":true,"z":null,"e":[]}"#;
        let echo = Echo::parse(body).unwrap();
        assert_eq!(echo.backend(), "store/store-v1");
        assert_eq!(echo.path, "/a?b=1");
        assert_eq!(echo.header("x-team").as_deref(), Some("store"));
        assert_eq!(echo.header("x-two").as_deref(), Some("a,b \"q\" é😀"));
        assert!(Echo::parse(b"no route for GET x/").is_none());
    }

    #[test]
    fn parses_replies_with_and_without_chunking() {
        let reply = parse_reply(
            b"HTTP/1.1 301 Moved Permanently\r\nLocation: http://x/b\r\ncontent-length: 0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(reply.status, 301);
        assert_eq!(reply.header("location"), Some("http://x/b"));
        let reply = parse_reply(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(reply.text(), "hello world");
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
