//! The knock port's HTTP/1.x layer: a bounded request-head reader and the one response shape.
//!
//! The port faces the whole internet, so everything here is bounded by constants rather than by
//! anything a client declares, and nothing panics on hostile bytes. Every response is the same
//! `500` with the same headers in the same order; only the body text differs (see
//! the README, "The knock port owns its socket layer").

use crate::config::KnockConfig;
use std::io::{self, Read};

/// Request line plus headers. Real knocks (curl, iOS Shortcuts, routers) send well under 1 KiB.
pub const MAX_HEAD: usize = 8 * 1024;
/// Headers in one request head; more is refused rather than truncated, so nothing is silently
/// dropped between what a proxy saw and what we parse.
pub const MAX_HEADERS: usize = 64;
/// A knock has no body, but some clients send a small one (e.g. an empty form); reading and
/// discarding it keeps a keep-alive connection in sync. Larger bodies are refused, not read.
pub const MAX_BODY_SKIP: u64 = 4 * 1024;

/// One parsed request head. An owned copy, so the reader's buffer can be reused at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// `METHOD TARGET\n`, then `name:value\n` per header (the name lowercased, the value with
    /// surrounding spaces and tabs removed): one allocation per head, whatever its header
    /// count, where a copy per field cost a flood seven. httparse admits no CR, LF or NUL in a
    /// method, a target or a value and no `:` in a name, so the separators cannot be forged.
    /// Values stay bytes because clients do send non-UTF-8 (obs-text) and that must not be a
    /// reason to panic.
    text: Vec<u8>,
    /// Where the method, the path and the target end in `text`.
    method_end: usize,
    path_end: usize,
    target_end: usize,
    /// `0` for HTTP/1.0, `1` for HTTP/1.1 (httparse accepts no other version).
    pub minor_version: u8,
}

/// What follows the head, as far as the knock port is willing to accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    None,
    Length(u64),
}

impl RequestHead {
    /// The method (a token: ASCII).
    pub fn method(&self) -> &str {
        std::str::from_utf8(&self.text[..self.method_end]).unwrap_or("")
    }

    /// The request target up to but excluding the first `?` or `#`; not percent-decoded.
    pub fn path(&self) -> &[u8] {
        &self.text[self.method_end + 1..self.path_end]
    }

    /// The whole request target as on the request line (path and query), not
    /// percent-decoded: the key knocks' `?c=` and `?k=` live in the query.
    pub fn target(&self) -> &[u8] {
        &self.text[self.method_end + 1..self.target_end]
    }

    /// Every header as (lowercased name, value), in the order received.
    fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.text[self.target_end + 1..]
            .split(|&b| b == b'\n')
            .filter_map(|line| {
                let colon = line.iter().position(|&b| b == b':')?;
                Some((&line[..colon], &line[colon + 1..]))
            })
    }

    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.fields()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Every header line of that name, in the order received.
    pub fn headers_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The declared body. Any `Transfer-Encoding`, and any Content-Length that is repeated
    /// (even with the same value), not plain digits, or too big for u64, is an error: those are
    /// the request-smuggling ambiguities a proxy in front of us may resolve differently.
    #[allow(clippy::result_unit_err)]
    pub fn body(&self) -> Result<Body, ()> {
        if self.header("transfer-encoding").is_some() {
            return Err(());
        }
        let mut lengths = self.headers_all("content-length");
        let Some(value) = lengths.next() else {
            return Ok(Body::None);
        };
        if lengths.next().is_some() {
            return Err(());
        }
        if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
            return Err(());
        }
        // All ASCII digits, so valid UTF-8; parse still rejects overflow.
        std::str::from_utf8(value)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .map(Body::Length)
            .ok_or(())
    }

    /// Whether the client asked to keep the connection open: HTTP/1.1 unless `close`,
    /// HTTP/1.0 only with `keep-alive`. `Connection` is a token list and may be repeated.
    pub fn keep_alive(&self) -> bool {
        let mut close = false;
        let mut keep = false;
        for value in self.headers_all("connection") {
            for token in value.split(|&b| b == b',') {
                let token = trim(token);
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep = true;
                }
            }
        }
        if close {
            false
        } else {
            self.minor_version >= 1 || keep
        }
    }
}

/// Outcome of parsing whatever bytes have arrived so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A head may still complete with more bytes.
    Partial,
    /// The head and how many bytes of `buf` it took (at most `MAX_HEAD`).
    Complete(RequestHead, usize),
    /// Not HTTP/1.x as httparse reads it, more than `MAX_HEADERS` headers, or longer than
    /// `MAX_HEAD`.
    Invalid,
}

/// Parses one request head from the start of `buf`. Only the first `MAX_HEAD` bytes are looked
/// at; if they hold no complete head, no amount of further input can make it acceptable.
/// Bare-LF line endings and leading empty lines are accepted (httparse does, and some embedded
/// HTTP clients send them).
pub fn parse_head(buf: &[u8]) -> Parsed {
    let window = &buf[..buf.len().min(MAX_HEAD)];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let consumed = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Parsed::Invalid,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Invalid,
    };
    let (Some(method), Some(target), Some(minor_version)) = (req.method, req.path, req.version)
    else {
        return Parsed::Invalid;
    };
    let target = target.as_bytes();
    let path_end = target
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(target.len());
    let size = req
        .headers
        .iter()
        .fold(method.len() + target.len() + 2, |n, h| {
            n + h.name.len() + h.value.len() + 2
        });
    let mut text = Vec::with_capacity(size);
    text.extend_from_slice(method.as_bytes());
    text.push(b' ');
    text.extend_from_slice(target);
    text.push(b'\n');
    for h in req.headers.iter() {
        text.extend(h.name.bytes().map(|b| b.to_ascii_lowercase()));
        text.push(b':');
        text.extend_from_slice(trim(h.value));
        text.push(b'\n');
    }
    let head = RequestHead {
        text,
        method_end: method.len(),
        path_end: method.len() + 1 + path_end,
        target_end: method.len() + 1 + target.len(),
        minor_version,
    };
    Parsed::Complete(head, consumed)
}

/// How many bytes of leading `\n` and `\r\n` lines `buf` starts with (a lone `\r` waits for
/// more): before a request line they are skipped, as httparse and some embedded clients do.
pub(crate) fn blank_lines(buf: &[u8]) -> usize {
    let mut i = 0;
    loop {
        match buf.get(i..) {
            Some([b'\n', ..]) => i += 1,
            Some([b'\r', b'\n', ..]) => i += 2,
            _ => return i,
        }
    }
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Outcome of waiting for the next request on a connection.
#[derive(Debug)]
pub enum ReadResult {
    Request(RequestHead),
    /// Clean EOF before any byte of a new request (blank lines aside): the client is done.
    Closed,
    /// Invalid or oversized head, EOF mid-head or mid-body, or a body we will not read.
    /// Answer failure and close; the reader's state is not meant to be reused.
    Bad,
    /// From the underlying reader, e.g. the server's socket timeout. Close.
    Io(io::Error),
}

/// Reads request heads from one connection into a fixed `MAX_HEAD` buffer. Bytes after a head
/// (pipelined requests) are kept for the next call.
#[derive(Debug)]
pub struct HeadReader {
    /// Allocated once at `MAX_HEAD` bytes and never grown.
    buf: Vec<u8>,
    /// Bytes of `buf` that hold unconsumed input.
    len: usize,
}

impl Default for HeadReader {
    fn default() -> Self {
        Self::new()
    }
}

impl HeadReader {
    pub fn new() -> HeadReader {
        HeadReader {
            buf: vec![0; MAX_HEAD],
            len: 0,
        }
    }

    /// Bytes received but not yet consumed (pipelined input).
    pub fn buffered(&self) -> usize {
        self.len
    }

    /// The next request head; a declared body of at most `MAX_BODY_SKIP` bytes has been read
    /// and discarded when this returns `Request`.
    pub fn next_request<R: Read>(&mut self, r: &mut R) -> ReadResult {
        // Leftover pipelined bytes may already hold a whole head.
        let mut parse_now = self.len > 0;
        // Blank lines before the request line are dropped as they arrive (some clients send a
        // stray CRLF after a body) but still count against the head budget, so a client cannot
        // keep a reader busy forever or make every parse rescan kilobytes of them.
        let mut budget = MAX_HEAD;
        loop {
            if parse_now {
                budget = budget.saturating_sub(self.skip_blank_lines());
                match parse_head(&self.buf[..self.len]) {
                    Parsed::Complete(head, n) => {
                        self.consume(n);
                        return self.skip_body(r, head);
                    }
                    Parsed::Invalid => return self.bad(),
                    Parsed::Partial => {}
                }
            }
            if self.len >= budget {
                return self.bad();
            }
            let n = match r.read(&mut self.buf[self.len..budget]) {
                Ok(0) if self.len == 0 => return ReadResult::Closed,
                Ok(0) => return self.bad(),
                Ok(n) => n.min(budget - self.len),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    parse_now = false;
                    continue;
                }
                Err(e) => return ReadResult::Io(e),
            };
            // A head can only complete on a line end, so re-parse only when one arrived: a
            // client trickling one byte per packet then costs one parse per line, not per byte.
            parse_now = self.buf[self.len..self.len + n].contains(&b'\n');
            self.len += n;
        }
    }

    /// Drops leading `\n` and `\r\n` lines (a lone `\r` waits for more); returns the count.
    fn skip_blank_lines(&mut self) -> usize {
        let i = blank_lines(&self.buf[..self.len]);
        self.consume(i);
        i
    }

    fn skip_body<R: Read>(&mut self, r: &mut R, head: RequestHead) -> ReadResult {
        let mut remaining = match head.body() {
            Ok(Body::None) => 0,
            Ok(Body::Length(n)) if n <= MAX_BODY_SKIP => n,
            _ => return self.bad(),
        };
        let from_buf = usize::try_from(remaining).map_or(self.len, |n| n.min(self.len));
        self.consume(from_buf);
        remaining -= from_buf as u64;
        // Here the buffer is empty; read no further than the body so a pipelined request after
        // it stays in the socket for the next call.
        while remaining > 0 {
            let want = usize::try_from(remaining).map_or(MAX_HEAD, |n| n.min(MAX_HEAD));
            match r.read(&mut self.buf[..want]) {
                Ok(0) => return self.bad(),
                Ok(n) => remaining = remaining.saturating_sub(n as u64),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return ReadResult::Io(e),
            }
        }
        ReadResult::Request(head)
    }

    fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.buf.copy_within(n..self.len, 0);
        self.len -= n;
    }

    fn bad(&mut self) -> ReadResult {
        self.len = 0;
        ReadResult::Bad
    }
}

/// The only response knockd ever sends. The status, header names and header order never vary,
/// so success and failure can be told apart only by the body text (which the operator chose);
/// no `Server` or `Date` header, so nothing about the software or its clock leaks.
/// `head_only` (for HEAD requests) keeps the Content-Length of the body it leaves out.
pub fn response(body: &str, keep_alive: bool, head_only: bool) -> Vec<u8> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let mut out = format!(
        "HTTP/1.1 500 Internal Server Error\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n\
         Connection: {}\r\n\
         \r\n",
        body.len(),
        connection
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// The eight possible answers, built once: every response is one of these byte strings.
pub(crate) struct Answers([Vec<u8>; 8]);

impl Answers {
    pub(crate) fn new(config: &KnockConfig) -> Answers {
        Answers(std::array::from_fn(|i| {
            let body = if i & 4 != 0 {
                &config.message_success
            } else {
                &config.message_failure
            };
            response(body, i & 2 != 0, i & 1 != 0)
        }))
    }

    pub(crate) fn get(&self, ok: bool, keep_alive: bool, head_only: bool) -> &[u8] {
        &self.0[usize::from(ok) << 2 | usize::from(keep_alive) << 1 | usize::from(head_only)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn complete(buf: &[u8]) -> (RequestHead, usize) {
        match parse_head(buf) {
            Parsed::Complete(h, n) => (h, n),
            other => panic!("expected a complete head, got {other:?}"),
        }
    }

    fn head(buf: &[u8]) -> RequestHead {
        complete(buf).0
    }

    /// Hands out its input one byte per read, like a client trickling packets.
    struct OneByte<'a>(&'a [u8]);

    impl Read for OneByte<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            match (self.0.split_first(), out.first_mut()) {
                (Some((&b, rest)), Some(slot)) => {
                    *slot = b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    /// Returns each scripted step in turn (bytes, or an error), then EOF.
    struct Script {
        steps: VecDeque<io::Result<Vec<u8>>>,
        pending: Vec<u8>,
        total_read: usize,
    }

    impl Script {
        fn new(steps: Vec<io::Result<Vec<u8>>>) -> Script {
            Script {
                steps: steps.into(),
                pending: Vec::new(),
                total_read: 0,
            }
        }

        fn bytes(chunks: &[&[u8]]) -> Script {
            Script::new(chunks.iter().map(|c| Ok(c.to_vec())).collect())
        }
    }

    impl Read for Script {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            // An empty chunk would read as EOF, so it is skipped rather than returned.
            while self.pending.is_empty() {
                match self.steps.pop_front() {
                    None => return Ok(0),
                    Some(Err(e)) => return Err(e),
                    Some(Ok(bytes)) => self.pending = bytes,
                }
            }
            let n = self.pending.len().min(out.len());
            out[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            self.total_read += n;
            Ok(n)
        }
    }

    /// Counts what was pulled from the inner reader.
    struct Counting<R> {
        inner: R,
        total: usize,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(out)?;
            self.total += n;
            Ok(n)
        }
    }

    fn expect_request(r: ReadResult) -> RequestHead {
        match r {
            ReadResult::Request(h) => h,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    fn is_bad(r: &ReadResult) -> bool {
        matches!(r, ReadResult::Bad)
    }

    const KNOCK: &[u8] = b"GET /favico.ico?x=1#frag HTTP/1.1\r\nHost: a\r\nReferer:  s3cret \r\nLocation: Office_01\r\n\r\n";

    #[test]
    fn parses_a_knock() {
        let (h, n) = complete(KNOCK);
        assert_eq!(n, KNOCK.len());
        assert_eq!(h.method(), "GET");
        assert_eq!(h.path(), b"/favico.ico");
        assert_eq!(h.minor_version, 1);
        assert_eq!(h.header("referer"), Some(&b"s3cret"[..]));
        assert_eq!(h.header("REFERER"), Some(&b"s3cret"[..]));
        assert_eq!(h.header("location"), Some(&b"Office_01"[..]));
        assert_eq!(h.header("ip"), None);
        assert_eq!(h.body(), Ok(Body::None));
        assert!(h.keep_alive());
    }

    /// The head is kept as one text with `:` and line ends as separators: colons in the
    /// target and in values, empty values, obs-text and repeated names come back as sent.
    #[test]
    fn fields_with_separators_in_them_come_back_whole() {
        let raw =
            b"GET /a:b?k=x:y HTTP/1.1\r\nX-A: v:w \r\nEmpty:\r\nX-A:\t2\r\nObs: \xff\xfe\r\n\r\n";
        let (h, _) = complete(raw);
        assert_eq!(h.method(), "GET");
        assert_eq!(h.path(), b"/a:b");
        assert_eq!(h.target(), b"/a:b?k=x:y");
        assert_eq!(h.header("x-a"), Some(&b"v:w"[..]));
        assert_eq!(
            h.headers_all("X-A").collect::<Vec<_>>(),
            [&b"v:w"[..], b"2"]
        );
        assert_eq!(h.header("empty"), Some(&b""[..]));
        assert_eq!(h.header("obs"), Some(&b"\xff\xfe"[..]));
        assert_eq!(h.header("x"), None);
        assert_eq!(h.header("a"), None);
    }

    #[test]
    fn path_stops_at_query_or_fragment() {
        for (target, path) in [
            (&b"/a"[..], &b"/a"[..]),
            (b"/a?b?c", b"/a"),
            (b"/a#b?c", b"/a"),
            (b"?only", b""),
            (b"*", b"*"),
            (b"http://h/favico.ico?q", b"http://h/favico.ico"),
        ] {
            let mut req = b"GET ".to_vec();
            req.extend_from_slice(target);
            req.extend_from_slice(b" HTTP/1.1\r\n\r\n");
            assert_eq!(head(&req).path(), path, "{target:?}");
            // The raw target is kept whole, query included (key knocks read it).
            assert_eq!(head(&req).target(), target, "{target:?}");
        }
    }

    #[test]
    fn bare_lf_and_leading_empty_lines_are_accepted() {
        let req = b"\r\n\nGET /x HTTP/1.0\nHost: a\nReferer: s\n\nrest";
        let (h, n) = complete(req);
        assert_eq!(n, req.len() - 4);
        assert_eq!(h.path(), b"/x");
        assert_eq!(h.minor_version, 0);
        assert_eq!(h.header("referer"), Some(&b"s"[..]));
    }

    #[test]
    fn partial_until_the_blank_line() {
        for end in 0..KNOCK.len() {
            assert_eq!(parse_head(&KNOCK[..end]), Parsed::Partial, "prefix {end}");
        }
    }

    #[test]
    fn headers_repeat_in_order_and_keep_raw_bytes() {
        let h = head(b"GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\nx-forwarded-for: 2.2.2.2 \r\nV: caf\xc3\xa9 \xff\r\n\r\n");
        let all: Vec<&[u8]> = h.headers_all("X-Forwarded-For").collect();
        assert_eq!(all, vec![&b"1.1.1.1"[..], b"2.2.2.2"]);
        assert_eq!(h.header("x-forwarded-for"), Some(&b"1.1.1.1"[..]));
        assert_eq!(h.header("v"), Some(&b"caf\xc3\xa9 \xff"[..]));
        assert_eq!(h.headers_all("none").count(), 0);
    }

    #[test]
    fn invalid_heads() {
        let cases: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\0b\r\n\r\n",
            b"GET /\0 HTTP/1.1\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"G\xffT / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\n folded: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        ];
        for case in cases {
            assert_eq!(parse_head(case), Parsed::Invalid, "{case:?}");
        }
    }

    #[test]
    fn non_utf8_path_does_not_panic() {
        // httparse refuses a target that is not UTF-8; either outcome is fine, a panic is not.
        let r = parse_head(b"GET /\xff\xfe HTTP/1.1\r\n\r\n");
        assert!(matches!(r, Parsed::Invalid | Parsed::Complete(..)));
        let h = head("GET /é HTTP/1.1\r\n\r\n".as_bytes());
        assert_eq!(h.path(), "/é".as_bytes());
    }

    #[test]
    fn header_count_limit() {
        let mut ok = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            ok.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
        }
        let mut over = ok.clone();
        ok.extend_from_slice(b"\r\n");
        assert!(matches!(parse_head(&ok), Parsed::Complete(..)));
        over.extend_from_slice(b"one-more: v\r\n\r\n");
        assert_eq!(parse_head(&over), Parsed::Invalid);
        // Detected as soon as the 65th header line ends, before the head is complete.
        over.truncate(over.len() - 2);
        assert_eq!(parse_head(&over), Parsed::Invalid);
    }

    #[test]
    fn head_size_limit() {
        let line = |total: usize| {
            let mut req = b"GET / HTTP/1.1\r\nX: ".to_vec();
            let fill = total - req.len() - 4;
            req.extend(std::iter::repeat_n(b'a', fill));
            req.extend_from_slice(b"\r\n\r\n");
            assert_eq!(req.len(), total);
            req
        };
        let exact = line(MAX_HEAD);
        assert!(matches!(parse_head(&exact), Parsed::Complete(_, n) if n == MAX_HEAD));
        assert_eq!(parse_head(&line(MAX_HEAD + 1)), Parsed::Invalid);
        // A full window that is still partial can never become acceptable.
        assert_eq!(parse_head(&exact[..MAX_HEAD - 1]), Parsed::Partial);
        let mut long = exact[..MAX_HEAD - 1].to_vec();
        long.extend_from_slice(b"a\r\n\r\n");
        assert_eq!(parse_head(&long), Parsed::Invalid);
        assert_eq!(parse_head(&vec![b'a'; 1 << 20]), Parsed::Invalid);
    }

    #[test]
    fn body_rules() {
        let body =
            |headers: &str| head(format!("POST / HTTP/1.1\r\n{headers}\r\n").as_bytes()).body();
        assert_eq!(body(""), Ok(Body::None));
        assert_eq!(body("Content-Length: 0\r\n"), Ok(Body::Length(0)));
        assert_eq!(body("content-length:  12 \r\n"), Ok(Body::Length(12)));
        assert_eq!(
            body("Content-Length: 100000000000000\r\n"),
            Ok(Body::Length(100_000_000_000_000))
        );
        for bad in [
            "Transfer-Encoding: chunked\r\n",
            "Transfer-Encoding: identity\r\n",
            "Transfer-Encoding: \r\n",
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "Content-Length: 5\r\nContent-Length: 5\r\n",
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "Content-Length: 5, 5\r\n",
            "Content-Length: +5\r\n",
            "Content-Length: -1\r\n",
            "Content-Length: 0x10\r\n",
            "Content-Length: 1 2\r\n",
            "Content-Length: \r\n",
            "Content-Length: 99999999999999999999999\r\n",
        ] {
            assert_eq!(body(bad), Err(()), "{bad:?}");
        }
    }

    #[test]
    fn keep_alive_rules() {
        let ka = |version: &str, headers: &str| {
            head(format!("GET / HTTP/1.{version}\r\n{headers}\r\n").as_bytes()).keep_alive()
        };
        assert!(ka("1", ""));
        assert!(ka("1", "Connection: keep-alive\r\n"));
        assert!(!ka("1", "Connection: close\r\n"));
        assert!(!ka("1", "Connection: CLOSE\r\n"));
        assert!(!ka("1", "Connection: keep-alive, close\r\n"));
        assert!(!ka("1", "Connection: upgrade\r\nConnection: close\r\n"));
        assert!(ka("1", "Connection: closed\r\n"));
        assert!(!ka("0", ""));
        assert!(ka("0", "Connection: Keep-Alive\r\n"));
        assert!(ka("0", "Connection: foo ,keep-alive\r\n"));
        assert!(!ka("0", "Connection: keep-alive\r\nConnection: close\r\n"));
    }

    #[test]
    fn reads_one_byte_at_a_time() {
        let mut input = KNOCK.to_vec();
        input.extend_from_slice(b"HEAD /2 HTTP/1.0\r\n\r\n");
        let mut r = OneByte(&input);
        let mut reader = HeadReader::new();
        let h = expect_request(reader.next_request(&mut r));
        assert_eq!(h.path(), b"/favico.ico");
        let h = expect_request(reader.next_request(&mut r));
        assert_eq!((h.method(), h.path()), ("HEAD", &b"/2"[..]));
        assert!(matches!(reader.next_request(&mut r), ReadResult::Closed));
    }

    #[test]
    fn pipelined_requests_in_one_read() {
        let mut input = Vec::new();
        for i in 0..3 {
            input.extend_from_slice(format!("GET /{i} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
        }
        input.extend_from_slice(b"GET /3 HTTP/1.1\r\n");
        let mut r = Script::bytes(&[&input, b"Host: h\r\n\r\n"]);
        let mut reader = HeadReader::new();
        for i in 0..4 {
            let h = expect_request(reader.next_request(&mut r));
            assert_eq!(h.path(), format!("/{i}").as_bytes());
        }
        assert_eq!(reader.buffered(), 0);
        assert!(matches!(reader.next_request(&mut r), ReadResult::Closed));
    }

    #[test]
    fn blank_lines_before_a_request() {
        // A stray CRLF after a body, then the next request.
        let input = b"\r\n\nGET /a HTTP/1.1\r\n\r\n\r\nGET /b HTTP/1.1\r\n\r\n\r\n";
        for chunked in [false, true] {
            let mut reader = HeadReader::new();
            let mut r: Box<dyn Read> = if chunked {
                Box::new(OneByte(input))
            } else {
                Box::new(Script::bytes(&[input]))
            };
            assert_eq!(expect_request(reader.next_request(&mut r)).path(), b"/a");
            assert_eq!(expect_request(reader.next_request(&mut r)).path(), b"/b");
            assert!(matches!(reader.next_request(&mut r), ReadResult::Closed));
        }
        // A lone CR is not a line end.
        let mut reader = HeadReader::new();
        let r = reader.next_request(&mut Script::bytes(&[b"\rGET / HTTP/1.1\r\n\r\n"]));
        assert!(is_bad(&r));
        // Endless blank lines use up the head budget like any other bytes.
        let mut r = Counting {
            inner: io::repeat(b'\n'),
            total: 0,
        };
        assert!(is_bad(&HeadReader::new().next_request(&mut r)));
        assert!(r.total <= MAX_HEAD, "read {}", r.total);
        let mut input = b"\r\n".repeat(MAX_HEAD / 4);
        input.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        assert!(matches!(
            HeadReader::new().next_request(&mut OneByte(&input)),
            ReadResult::Request(_)
        ));
        let mut input = b"\r\n".repeat(MAX_HEAD / 2);
        input.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        assert!(is_bad(
            &HeadReader::new().next_request(&mut OneByte(&input))
        ));
    }

    #[test]
    fn eof_cases() {
        let mut reader = HeadReader::new();
        assert!(matches!(
            reader.next_request(&mut Script::bytes(&[])),
            ReadResult::Closed
        ));
        for cut in [1, 10, KNOCK.len() - 1] {
            let mut reader = HeadReader::new();
            let r = reader.next_request(&mut Script::bytes(&[&KNOCK[..cut]]));
            assert!(is_bad(&r), "cut at {cut}: {r:?}");
        }
        // Leftover bytes of a next request count as a started request.
        let mut input = KNOCK.to_vec();
        input.extend_from_slice(b"GE");
        let mut r = Script::bytes(&[&input]);
        let mut reader = HeadReader::new();
        expect_request(reader.next_request(&mut r));
        assert!(is_bad(&reader.next_request(&mut r)));
    }

    #[test]
    fn io_errors_pass_through_and_interrupts_retry() {
        let mut r = Script::new(vec![
            Ok(KNOCK[..5].to_vec()),
            Err(io::Error::from(io::ErrorKind::Interrupted)),
            Ok(KNOCK[5..].to_vec()),
            Err(io::Error::from(io::ErrorKind::WouldBlock)),
        ]);
        let mut reader = HeadReader::new();
        expect_request(reader.next_request(&mut r));
        match reader.next_request(&mut r) {
            ReadResult::Io(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
            other => panic!("expected Io, got {other:?}"),
        }
    }

    #[test]
    fn megabyte_header_line_is_bad_without_reading_past_the_limit() {
        let prefix: &[u8] = b"GET / HTTP/1.1\r\nX: ";
        let mut r = Counting {
            inner: prefix.chain(io::repeat(b'a').take(1 << 20)),
            total: 0,
        };
        let mut reader = HeadReader::new();
        assert!(is_bad(&reader.next_request(&mut r)));
        assert!(r.total <= MAX_HEAD, "read {}", r.total);
        assert_eq!(reader.buf.len(), MAX_HEAD);
        assert!(reader.buf.capacity() <= MAX_HEAD);
        // Same with a line that ends: the head as a whole is still too long.
        let mut r = Counting {
            inner: prefix
                .chain(io::repeat(b'a').take(1 << 20))
                .chain(&b"\r\n\r\n"[..]),
            total: 0,
        };
        let mut reader = HeadReader::new();
        assert!(is_bad(&reader.next_request(&mut r)));
        assert!(r.total <= MAX_HEAD);
    }

    #[test]
    fn ten_thousand_headers_are_bad() {
        let mut input = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..10_000 {
            input.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
        }
        input.extend_from_slice(b"\r\n");
        let mut reader = HeadReader::new();
        let mut r = Script::bytes(&[&input]);
        assert!(is_bad(&reader.next_request(&mut r)));
        assert!(r.total_read <= MAX_HEAD);
        let mut reader = HeadReader::new();
        assert!(is_bad(&reader.next_request(&mut OneByte(&input))));
    }

    #[test]
    fn small_bodies_are_skipped() {
        let req = b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\n\r\n";
        // Body entirely in the buffer, then split across reads at every point.
        for split in 0..req.len() {
            let mut r = Script::bytes(&[&req[..split], &req[split..]]);
            let mut reader = HeadReader::new();
            assert_eq!(expect_request(reader.next_request(&mut r)).path(), b"/a");
            assert_eq!(expect_request(reader.next_request(&mut r)).path(), b"/b");
            assert!(matches!(reader.next_request(&mut r), ReadResult::Closed));
        }
        let mut reader = HeadReader::new();
        let mut r = OneByte(req);
        assert_eq!(expect_request(reader.next_request(&mut r)).path(), b"/a");
        assert_eq!(expect_request(reader.next_request(&mut r)).path(), b"/b");
    }

    #[test]
    fn largest_skippable_body_does_not_eat_the_next_request() {
        let mut input =
            format!("POST /a HTTP/1.1\r\nContent-Length: {MAX_BODY_SKIP}\r\n\r\n").into_bytes();
        input.extend(std::iter::repeat_n(b'x', MAX_BODY_SKIP as usize));
        let head_len = input.len() - MAX_BODY_SKIP as usize;
        input.extend_from_slice(b"GET /b HTTP/1.1\r\n\r\n");
        // Head alone first, so the body must come from the reader.
        let mut r = Script::bytes(&[&input[..head_len], &input[head_len..]]);
        let mut reader = HeadReader::new();
        assert_eq!(expect_request(reader.next_request(&mut r)).path(), b"/a");
        assert_eq!(expect_request(reader.next_request(&mut r)).path(), b"/b");
    }

    #[test]
    fn refused_bodies() {
        for headers in [
            format!("Content-Length: {}\r\n", MAX_BODY_SKIP + 1),
            "Content-Length: 100000000000000\r\n".to_string(),
            "Content-Length: 99999999999999999999999\r\n".to_string(),
            "Transfer-Encoding: chunked\r\n".to_string(),
            "Content-Length: 1\r\nContent-Length: 1\r\n".to_string(),
        ] {
            let req = format!("POST / HTTP/1.1\r\n{headers}\r\n");
            // The reader would hand out endless body bytes; Bad must come without reading any.
            let mut r = Counting {
                inner: req.as_bytes().chain(io::repeat(b'x')),
                total: 0,
            };
            let mut reader = HeadReader::new();
            assert!(is_bad(&reader.next_request(&mut r)), "{headers:?}");
            assert!(r.total <= MAX_HEAD, "{headers:?}");
        }
        // EOF inside a small body.
        let mut reader = HeadReader::new();
        let mut r = Script::bytes(&[b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"]);
        assert!(is_bad(&reader.next_request(&mut r)));
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let inputs: Vec<Vec<u8>> = vec![
            b"GET /\0 HTTP/1.1\r\n\r\n".to_vec(),
            b"GET / HTTP/1.1\r\nX: \0\r\n\r\n".to_vec(),
            b"GET /\xc3\x28 HTTP/1.1\r\nX: \xc3\x28\xff\r\n\r\n".to_vec(),
            b"\0\0\0\0\r\n\r\n".to_vec(),
            b"\r\n\r\n\r\n\r\n".to_vec(),
            vec![b'\n'; MAX_HEAD * 2],
            vec![0xff; MAX_HEAD * 2],
            (0..=255u8).cycle().take(3 * MAX_HEAD).collect(),
        ];
        for input in inputs {
            for mut r in [
                Box::new(Script::bytes(&[&input])) as Box<dyn Read>,
                Box::new(OneByte(&input)),
            ] {
                let mut reader = HeadReader::new();
                for _ in 0..4 {
                    match reader.next_request(&mut r) {
                        ReadResult::Request(_) => continue,
                        ReadResult::Closed | ReadResult::Bad | ReadResult::Io(_) => break,
                    }
                }
                assert!(reader.buf.len() == MAX_HEAD && reader.len <= MAX_HEAD);
            }
        }
    }

    /// Deterministic xorshift, so the random tests need no extra crate and always replay.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Random HTTP-ish input: one to three plausible requests (some with small bodies), then a
    /// few random byte mutations, so cases reach every branch of parser and reader.
    fn random_input(rng: &mut Rng) -> Vec<u8> {
        const METHODS: &[&str] = &["GET", "HEAD", "POST", "G\0T"];
        const TARGETS: &[&str] = &["/favico.ico", "/a?b#c", "*", "/\u{e9}", "/%00"];
        const EOLS: &[&str] = &["\r\n", "\n", "\r\n", "\r"];
        const HEADERS: &[&str] = &[
            "Host: h",
            "Referer: s3cret",
            "Connection: close",
            "Connection: keep-alive",
            "X-Forwarded-For: 203.0.113.9, 10.0.0.1",
            "Transfer-Encoding: chunked",
            "Content-Length: 99999999999",
            "Content-Length: x",
            "Bad Name: v",
            "V: \u{fffd}",
        ];
        let mut out = Vec::new();
        for _ in 0..rng.below(3) + 1 {
            let eol = EOLS[rng.below(EOLS.len())];
            let version = if rng.below(2) == 0 { "1.1" } else { "1.0" };
            let method = METHODS[rng.below(METHODS.len())];
            let target = TARGETS[rng.below(TARGETS.len())];
            out.extend_from_slice(format!("{method} {target} HTTP/{version}{eol}").as_bytes());
            for _ in 0..rng.below(6) {
                out.extend_from_slice(HEADERS[rng.below(HEADERS.len())].as_bytes());
                out.extend_from_slice(eol.as_bytes());
            }
            let body = rng.below(3) * 7;
            if body > 0 {
                out.extend_from_slice(format!("Content-Length: {body}{eol}").as_bytes());
            }
            out.extend_from_slice(eol.as_bytes());
            out.extend(std::iter::repeat_n(b'x', body));
        }
        for _ in 0..rng.below(4) {
            if out.is_empty() {
                break;
            }
            let at = rng.below(out.len());
            match rng.below(3) {
                0 => out[at] = rng.next() as u8,
                1 => out.insert(at, rng.next() as u8),
                _ => {
                    out.remove(at);
                }
            }
        }
        out
    }

    /// Hands out its input in random-sized reads.
    struct RandomChunks<'a> {
        data: &'a [u8],
        rng: Rng,
    }

    impl Read for RandomChunks<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = (self.rng.below(64) + 1).min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// Every outcome until the connection would close, in a comparable form.
    fn outcomes<R: Read>(mut r: R) -> Vec<String> {
        let mut reader = HeadReader::new();
        let mut seen = Vec::new();
        loop {
            assert!(reader.len <= MAX_HEAD && reader.buf.len() == MAX_HEAD);
            match reader.next_request(&mut r) {
                ReadResult::Request(h) => seen.push(format!("{h:?}")),
                other => {
                    seen.push(format!("{other:?}"));
                    return seen;
                }
            }
        }
    }

    #[test]
    fn random_inputs_keep_the_invariants() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..3000 {
            let input = random_input(&mut rng);
            if let Parsed::Complete(h, n) = parse_head(&input) {
                assert!(n <= input.len() && n <= MAX_HEAD);
                assert!(!h.path().contains(&b'?') && !h.path().contains(&b'#'));
                let _ = (h.body(), h.keep_alive());
            }
            // How the bytes are split across reads must never change what is read.
            let whole = outcomes(Script::bytes(&[&input]));
            let chunks = RandomChunks {
                data: &input,
                rng: Rng(rng.next() | 1),
            };
            assert_eq!(outcomes(chunks), whole, "{input:?}");
            assert_eq!(outcomes(OneByte(&input)), whole, "{input:?}");
        }
    }

    #[test]
    fn response_bytes_exactly() {
        assert_eq!(
            response("500 Internal Server Error.", true, false),
            b"HTTP/1.1 500 Internal Server Error\r\n\
              Content-Type: text/plain; charset=utf-8\r\n\
              Content-Length: 26\r\n\
              Connection: keep-alive\r\n\
              \r\n\
              500 Internal Server Error."
                .to_vec()
        );
        assert_eq!(
            response("500 Internal Server Error", false, false),
            b"HTTP/1.1 500 Internal Server Error\r\n\
              Content-Type: text/plain; charset=utf-8\r\n\
              Content-Length: 25\r\n\
              Connection: close\r\n\
              \r\n\
              500 Internal Server Error"
                .to_vec()
        );
        // HEAD: same headers and length, no body.
        assert_eq!(
            response("ok", false, true),
            b"HTTP/1.1 500 Internal Server Error\r\n\
              Content-Type: text/plain; charset=utf-8\r\n\
              Content-Length: 2\r\n\
              Connection: close\r\n\
              \r\n"
                .to_vec()
        );
        // Length counts bytes, not characters.
        let r = response("拒绝", true, false);
        assert!(
            r.ends_with("\r\nContent-Length: 6\r\nConnection: keep-alive\r\n\r\n拒绝".as_bytes())
        );
    }

    #[test]
    fn success_and_failure_share_every_header_name() {
        let names = |r: Vec<u8>| -> Vec<String> {
            let text = String::from_utf8(r).unwrap_or_default();
            let head = text
                .split("\r\n\r\n")
                .next()
                .unwrap_or_default()
                .to_string();
            head.lines()
                .skip(1)
                .filter_map(|l| l.split(':').next().map(str::to_string))
                .collect()
        };
        let expected = vec!["Content-Type", "Content-Length", "Connection"];
        // The third is a challenge: the one other body, same status and headers.
        for (body, ka, ho) in [
            ("ok", true, false),
            ("a much longer failure", false, true),
            (
                "1760000000.0102030405060708.d7cdcd4b037f0d64a50783fceedfa74f",
                true,
                false,
            ),
        ] {
            assert_eq!(names(response(body, ka, ho)), expected);
            let text = String::from_utf8(response(body, ka, ho)).unwrap_or_default();
            assert!(text.starts_with("HTTP/1.1 500 Internal Server Error\r\n"));
            assert!(text.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));
        }
    }
}
