//! Just enough HTTP/1.1 for the API: heads parsed by httparse, bodies by Content-Length, and
//! keep-alive, because ureq pools connections and a real client reuses them.

use std::io::{self, Read, Write};
use std::net::TcpStream;

/// The API takes up to 10 MB (docs/lighthouse-api.md, transport); no knockd request comes anywhere near 1 MiB.
pub(crate) const MAX_BODY: usize = 1 << 20;
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;

pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    /// Lowercased names, values as received (lossy UTF-8).
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    pub(crate) keep_alive: bool,
}

impl Request {
    /// The `Host` the client sent, lowercase, which is what decides the access region at the
    /// real API (docs/lighthouse-api.md#rate-limits): `-` when absent, `?` when it is not a
    /// plausible `host[:port]` (so a hostile header cannot add odd keys to the state dump).
    pub(crate) fn host(&self) -> String {
        match self.header("host").map(str::trim) {
            None | Some("") => "-".to_string(),
            Some(h)
                if h.len() <= 255
                    && h.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                    }) =>
            {
                h.to_ascii_lowercase()
            }
            Some(_) => "?".to_string(),
        }
    }

    /// The first header of that (lowercase) name.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

pub(crate) enum ReadError {
    /// Clean end of stream between requests (or an idle timeout).
    Closed,
    /// The stream failed or ended mid-request; nothing sensible can be sent.
    Io,
    /// A request the server answers with this status and reason, then closes.
    Reject(u16, &'static str),
    /// Content-Length over the cap: answered with `RequestSizeLimitExceeded`, then closed.
    TooLarge,
}

/// Reads one request; `buf` carries bytes already received past the previous request.
pub(crate) fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<Request, ReadError> {
    let head = read_head(stream, buf)?;
    let get = |name: &str| {
        head.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim().to_string())
    };
    if get("transfer-encoding").is_some() {
        return Err(ReadError::Reject(411, "Length Required"));
    }
    let len = match get("content-length") {
        None => 0,
        Some(v) => match v.parse::<usize>() {
            Ok(n) => n,
            Err(_) => return Err(ReadError::Reject(400, "Bad Request")),
        },
    };
    if len > MAX_BODY {
        return Err(ReadError::TooLarge);
    }
    read_to(stream, buf, head.len + len)?;
    let body = buf[head.len..head.len + len].to_vec();
    buf.drain(..head.len + len);
    let connection = get("connection").map(|v| v.to_ascii_lowercase());
    let keep_alive = match head.minor {
        0 => connection.as_deref() == Some("keep-alive"),
        _ => connection.as_deref() != Some("close"),
    };
    Ok(Request {
        method: head.method,
        path: head.path,
        headers: head.headers,
        body,
        keep_alive,
    })
}

/// A request head as parsed: its length in the buffer, and what it says.
struct Head {
    len: usize,
    method: String,
    path: String,
    /// Lowercase names.
    headers: Vec<(String, String)>,
    /// HTTP/1.x's x.
    minor: u8,
}

/// Reads until `buf` holds a whole request head, and parses it.
fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Head, ReadError> {
    let mut chunk = [0u8; 8192];
    loop {
        if !buf.is_empty() {
            if let Some(head) = parse_head(buf)? {
                return Ok(head);
            }
            if buf.len() > MAX_HEAD {
                return Err(ReadError::Reject(431, "Request Header Fields Too Large"));
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Err(ReadError::Closed),
            Ok(0) => return Err(ReadError::Io),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) if buf.is_empty() => return Err(ReadError::Closed),
            Err(_) => return Err(ReadError::Io),
        }
    }
}

/// The head at the start of `buf`; None while it is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, ReadError> {
    let mut hdrs = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut hdrs);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => {
            let headers: Vec<(String, String)> = req
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            Ok(Some(Head {
                len: n,
                method: req.method.unwrap_or("").to_string(),
                path: req.path.unwrap_or("").to_string(),
                headers,
                minor: req.version.unwrap_or(1),
            }))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            Err(ReadError::Reject(431, "Request Header Fields Too Large"))
        }
        Err(_) => Err(ReadError::Reject(400, "Bad Request")),
    }
}

/// Reads until `buf` holds at least `want` bytes.
fn read_to(stream: &mut TcpStream, buf: &mut Vec<u8>, want: usize) -> Result<(), ReadError> {
    let mut chunk = [0u8; 8192];
    while buf.len() < want {
        match stream.read(&mut chunk) {
            Ok(0) => return Err(ReadError::Io),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(ReadError::Io),
        }
    }
    Ok(())
}

pub(crate) fn write_response(
    stream: &mut TcpStream,
    status: u16,
    reason: &str,
    date: Option<&str>,
    body: &[u8],
    keep_alive: bool,
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(d) = date {
        head.push_str(&format!("Date: {d}\r\n"));
    }
    if !keep_alive {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out)?;
    stream.flush()
}
