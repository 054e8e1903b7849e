//! One connection as the poll loop (`server`) drives it: nonblocking reads into a buffer that
//! exists only while bytes are waiting, request heads parsed by `http::parse_head` under the
//! same bounds as `http::HeadReader`, answers (one of eight fixed byte strings, or a challenge
//! body built by the same `http::response`: same status, same header names in the same order)
//! written without blocking, keep-alive up to a bound. Nothing here waits: whatever would
//! (more bytes, room in the socket, a knock's outcome) is handed back to the loop as `Next`.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, TcpStream};
use std::time::{Duration, Instant};

use super::door::{self, Answer, Door, Pending, Step, Verdict};
use super::http::{self, Body, Parsed, RequestHead, MAX_BODY_SKIP, MAX_HEAD};
use super::signals;

/// Requests served on one keep-alive connection at most.
const MAX_REQUESTS_PER_CONNECTION: u16 = 1000;
/// Write budget of an answer whose knock outlasted the connection deadline.
pub(crate) const ANSWER_GRACE: Duration = Duration::from_secs(2);

/// What the loop should do with a connection after an event.
pub(crate) enum Next {
    /// Wait until it is readable, at most until the instant (the connection deadline).
    Read(Instant),
    /// Wait until it is writable, at most until the instant (the answer's write budget).
    Write(Instant),
    /// A knock to carry out on the writers; the connection waits for `Conn::verdict`.
    Park(Pending),
    /// Close it now.
    Close,
}

/// Where a connection is in its current request.
enum Phase {
    /// Waiting for or reading a request head.
    Head,
    /// A small declared body is being read and discarded before the head is judged.
    Body(Box<RequestHead>, u64),
    /// A knock waits on the firewall; the head is kept for the log line.
    Parked(Box<RequestHead>),
    /// An answer is being written.
    Writing(Box<Out>),
}

/// An answer on its way out.
struct Out {
    bytes: Bytes,
    /// Bytes of it written so far.
    at: usize,
    /// The write budget: the connection deadline, but at least ANSWER_GRACE from the start.
    until: Instant,
    keep_alive: bool,
    /// What to log once the answer is written (or could not be).
    note: Option<(Verdict, Box<RequestHead>)>,
}

/// What a complete head's body comes to.
enum Skip {
    /// No body left to read: judge the head now.
    Now(Box<RequestHead>),
    /// The rest of the body is to be read first (the Body phase).
    Later,
    /// A body we will not read, or a smuggling ambiguity: failure.
    Refused,
}

enum Bytes {
    /// One of the eight prebuilt answers: (ok, keep_alive, head_only).
    Fixed(bool, bool, bool),
    /// A challenge.
    Owned(Vec<u8>),
}

/// One open connection. Idle, it holds no buffer: the few dozen bytes below, in the loop's map.
pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    peer: IpAddr,
    /// CONNECTION_TIMEOUT after accept: nothing is read past it.
    deadline: Instant,
    /// Requests judged so far.
    served: u16,
    /// MAX_HEAD bytes while input is waiting, else empty (no allocation): see `release`.
    buf: Vec<u8>,
    /// Bytes of `buf` that hold unconsumed input.
    len: usize,
    /// The head budget left for the current request: blank lines before the request line
    /// count against it, as in `HeadReader`.
    budget: usize,
    /// Whether newly read bytes hold a line end (a head can only complete on one), or leftover
    /// input is still to be parsed.
    parse: bool,
    /// The client sent EOF.
    eof: bool,
    phase: Phase,
}

/// Spare buffers kept by the loop, so that a flood of keep-alive requests does not allocate
/// and free a buffer per request, while idle connections hold none.
pub(crate) struct Pool(Vec<Vec<u8>>);

/// Spare buffers kept at most (a few hundred KiB).
const POOL_MAX: usize = 32;

impl Pool {
    pub(crate) fn new() -> Pool {
        Pool(Vec::new())
    }

    fn take(&mut self) -> Vec<u8> {
        self.0.pop().unwrap_or_else(|| vec![0; MAX_HEAD])
    }

    fn give(&mut self, buf: Vec<u8>) {
        if self.0.len() < POOL_MAX && buf.len() == MAX_HEAD {
            self.0.push(buf);
        }
    }
}

impl Conn {
    pub(crate) fn new(stream: TcpStream, peer: IpAddr, deadline: Instant) -> Conn {
        Conn {
            stream,
            peer,
            deadline,
            served: 0,
            buf: Vec::new(),
            len: 0,
            budget: MAX_HEAD,
            parse: false,
            eof: false,
            phase: Phase::Head,
        }
    }

    /// Whether the loop should call `readable` (else `writable`) on the next event.
    pub(crate) fn reading(&self) -> bool {
        matches!(self.phase, Phase::Head | Phase::Body(..))
    }

    /// Hands the buffer back to the pool when it holds nothing: an idle connection then costs
    /// no buffer.
    pub(crate) fn release(&mut self, pool: &mut Pool) {
        if self.len == 0 && !self.buf.is_empty() {
            pool.give(std::mem::take(&mut self.buf));
        }
    }

    /// The socket is readable (or hung up): one read, then whatever it completes.
    pub(crate) fn readable(&mut self, door: &Door, id: u64, pool: &mut Pool) -> Next {
        if self.buf.is_empty() {
            self.buf = pool.take();
        }
        if let Phase::Body(_, remaining) = &mut self.phase {
            // Read no further than the body, so a pipelined request after it stays in the
            // socket: the buffer is empty here.
            let want = usize::try_from(*remaining).map_or(MAX_HEAD, |n| n.min(MAX_HEAD));
            match self.stream.read(&mut self.buf[..want]) {
                Ok(0) => return self.bad(door, id),
                Ok(n) => *remaining = remaining.saturating_sub(n as u64),
                Err(e) if retry(&e) => return Next::Read(self.deadline),
                Err(_) => return Next::Close,
            }
            return self.advance(door, id);
        }
        if self.len >= self.budget {
            return self.bad(door, id);
        }
        match self.stream.read(&mut self.buf[self.len..self.budget]) {
            Ok(0) => self.eof = true,
            Ok(n) => {
                // A head can only complete on a line end, so re-parse only when one arrived:
                // a client trickling one byte per packet then costs one parse per line.
                self.parse |= self.buf[self.len..self.len + n].contains(&b'\n');
                self.len += n;
            }
            Err(e) if retry(&e) => return Next::Read(self.deadline),
            Err(_) => return Next::Close,
        }
        self.advance(door, id)
    }

    /// The socket is writable (or broken): more of the answer.
    pub(crate) fn writable(&mut self, door: &Door, id: u64) -> Next {
        match self.write_more(door, id) {
            Some(next) => next,
            None => self.advance(door, id),
        }
    }

    /// The deadline of the current wait passed: a reader is closed without an answer (as a
    /// socket timeout did), a writer gives up on its answer.
    pub(crate) fn expired(&mut self, door: &Door, id: u64) -> Next {
        if let Phase::Writing(out) = &mut self.phase {
            let note = out.note.take();
            self.phase = Phase::Head;
            if let Some((verdict, head)) = note {
                door::answered(door, id, verdict, &head);
            }
        }
        Next::Close
    }

    /// A parked knock's outcome arrived: its answer.
    pub(crate) fn verdict(&mut self, door: &Door, id: u64, verdict: Verdict) -> Next {
        match std::mem::replace(&mut self.phase, Phase::Head) {
            Phase::Parked(head) => match self.answer(door, id, Answer::Fixed(verdict), head) {
                Some(next) => next,
                None => self.advance(door, id),
            },
            // Not parked: cannot happen (the loop parks a connection before it starts the
            // knock's waiter and never reads it meanwhile).
            _ => Next::Close,
        }
    }

    /// Parses and answers what the buffer holds, until it needs to wait.
    fn advance(&mut self, door: &Door, id: u64) -> Next {
        loop {
            match &mut self.phase {
                Phase::Body(_, 0) => {
                    let Phase::Body(head, _) = std::mem::replace(&mut self.phase, Phase::Head)
                    else {
                        return Next::Close;
                    };
                    match self.judge(door, id, head) {
                        Some(next) => return next,
                        None => continue,
                    }
                }
                Phase::Body(..) => return Next::Read(self.deadline),
                // Not reached: the loop only asks a reading connection to advance.
                Phase::Parked(_) | Phase::Writing(_) => return Next::Close,
                Phase::Head => {}
            }
            if self.parse {
                self.parse = false;
                self.budget = self.budget.saturating_sub(self.skip_blank_lines());
                match http::parse_head(&self.buf[..self.len]) {
                    Parsed::Complete(head, n) => {
                        self.consume(n);
                        let next = match self.skip_body(head) {
                            Skip::Now(head) => self.judge(door, id, head),
                            // EOF already read: the body cannot complete.
                            Skip::Later if self.eof => Some(self.bad(door, id)),
                            Skip::Later => Some(Next::Read(self.deadline)),
                            Skip::Refused => Some(self.bad(door, id)),
                        };
                        // None: answered and kept alive; pipelined input is parsed next.
                        match next {
                            Some(next) => return next,
                            None => continue,
                        }
                    }
                    Parsed::Invalid => return self.bad(door, id),
                    Parsed::Partial => {}
                }
            }
            if self.eof {
                // Clean EOF before any byte of a new request (blank lines aside) ends the
                // connection; EOF inside a head is answered failure.
                return if self.len == 0 {
                    Next::Close
                } else {
                    self.bad(door, id)
                };
            }
            if self.len >= self.budget {
                return self.bad(door, id);
            }
            return Next::Read(self.deadline);
        }
    }

    /// A complete head: its declared body (at most MAX_BODY_SKIP bytes) is dropped from the
    /// buffer; if more of it is to come, the connection reads it in the Body phase first.
    fn skip_body(&mut self, head: RequestHead) -> Skip {
        let remaining = match head.body() {
            Ok(Body::None) => 0,
            Ok(Body::Length(n)) if n <= MAX_BODY_SKIP => n,
            _ => return Skip::Refused,
        };
        let from_buf = usize::try_from(remaining).map_or(self.len, |n| n.min(self.len));
        self.consume(from_buf);
        let head = Box::new(head);
        let remaining = remaining - from_buf as u64;
        if remaining > 0 {
            self.phase = Phase::Body(head, remaining);
            return Skip::Later;
        }
        Skip::Now(head)
    }

    /// Drops leading `\n` and `\r\n` lines (a lone `\r` waits for more); returns the count.
    fn skip_blank_lines(&mut self) -> usize {
        let i = http::blank_lines(&self.buf[..self.len]);
        self.consume(i);
        i
    }

    fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.buf.copy_within(n..self.len, 0);
        self.len -= n;
        // Leftover input (a pipelined request) is parsed at once.
        self.parse = self.len > 0;
    }

    /// The request is judged: answered now, or parked while its knock waits on the writers.
    /// None: answered, and the connection is kept alive for the next request.
    fn judge(&mut self, door: &Door, id: u64, head: Box<RequestHead>) -> Option<Next> {
        self.served = self.served.saturating_add(1);
        self.budget = MAX_HEAD;
        match door::judge(door, &head, self.peer) {
            Step::Now(answer) => self.answer(door, id, answer, head),
            Step::Grant(pending) => {
                self.phase = Phase::Parked(head);
                Some(Next::Park(pending))
            }
        }
    }

    fn answer(
        &mut self,
        door: &Door,
        id: u64,
        answer: Answer,
        head: Box<RequestHead>,
    ) -> Option<Next> {
        let now = Instant::now();
        // Past the deadline, at the last request allowed, or when knockd is stopping, the
        // answer is still written (see `until`) and says `Connection: close`.
        let keep_alive = head.keep_alive()
            && self.served < MAX_REQUESTS_PER_CONNECTION
            && now < self.deadline
            && !signals::stop_requested();
        let head_only = head.method() == "HEAD";
        let (bytes, note) = match answer {
            Answer::Fixed(v) => (Bytes::Fixed(v.ok, keep_alive, head_only), Some((v, head))),
            Answer::Body(body) => (
                Bytes::Owned(http::response(&body, keep_alive, head_only)),
                None,
            ),
        };
        self.start_write(door, id, bytes, keep_alive, note, now)
    }

    /// An invalid or oversized head, EOF inside one, or a body we will not read: failure, then
    /// the connection closes.
    fn bad(&mut self, door: &Door, id: u64) -> Next {
        self.len = 0;
        let bytes = Bytes::Fixed(false, false, false);
        // Never kept alive, so never None.
        self.start_write(door, id, bytes, false, None, Instant::now())
            .unwrap_or(Next::Close)
    }

    /// Writes the answer: at once when the socket takes it all, as nearly every answer (a few
    /// hundred bytes) does, so that a flood costs no allocation per answer; otherwise the rest
    /// waits in the Writing phase for room.
    fn start_write(
        &mut self,
        door: &Door,
        id: u64,
        bytes: Bytes,
        keep_alive: bool,
        note: Option<(Verdict, Box<RequestHead>)>,
        now: Instant,
    ) -> Option<Next> {
        let mut at = 0;
        let written = match push(&self.stream, bytes.get(door), &mut at) {
            Push::Done => true,
            Push::Broken => false,
            Push::Blocked => {
                let until = write_budget(self.deadline, now);
                self.phase = Phase::Writing(Box::new(Out {
                    bytes,
                    at,
                    until,
                    keep_alive,
                    note,
                }));
                return Some(Next::Write(until));
            }
        };
        self.written(door, id, written, keep_alive, note)
    }

    /// More of an answer that did not fit the socket at once.
    fn write_more(&mut self, door: &Door, id: u64) -> Option<Next> {
        let Phase::Writing(out) = &mut self.phase else {
            return Some(Next::Close);
        };
        let written = match push(&self.stream, out.bytes.get(door), &mut out.at) {
            Push::Done => true,
            Push::Broken => false,
            Push::Blocked => return Some(Next::Write(out.until)),
        };
        let keep_alive = out.keep_alive;
        let note = out.note.take();
        self.written(door, id, written, keep_alive, note)
    }

    /// The answer is written (or cannot be): the log line, then keep-alive (None: the caller
    /// parses what is buffered, in a loop rather than by recursion, for up to 1,000 pipelined
    /// requests) or close.
    fn written(
        &mut self,
        door: &Door,
        id: u64,
        written: bool,
        keep_alive: bool,
        note: Option<(Verdict, Box<RequestHead>)>,
    ) -> Option<Next> {
        self.phase = Phase::Head;
        // The answer first, then the log line and the end of the knock's protection.
        if let Some((verdict, head)) = note {
            door::answered(door, id, verdict, &head);
        }
        if !written || !keep_alive {
            let _ = self.stream.shutdown(Shutdown::Write);
            return Some(Next::Close);
        }
        None
    }
}

impl Bytes {
    fn get<'a>(&'a self, door: &'a Door) -> &'a [u8] {
        match self {
            Bytes::Fixed(ok, ka, ho) => door.answers.get(*ok, *ka, *ho),
            Bytes::Owned(v) => v,
        }
    }
}

/// How far a nonblocking write of an answer got.
enum Push {
    /// All of it is written.
    Done,
    /// The socket is full: the rest waits for room.
    Blocked,
    /// The peer is gone or the socket failed.
    Broken,
}

/// Writes `bytes[*at..]` as far as the socket takes it, advancing `at`.
fn push(mut stream: &TcpStream, bytes: &[u8], at: &mut usize) -> Push {
    loop {
        let Some(rest) = bytes.get(*at..).filter(|r| !r.is_empty()) else {
            return Push::Done;
        };
        match stream.write(rest) {
            Ok(0) => return Push::Broken,
            Ok(n) => *at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Push::Blocked,
            Err(_) => return Push::Broken,
        }
    }
}

/// The write budget of an answer started at `now`: the time left, but at least ANSWER_GRACE,
/// since a knock may wait on the firewall past the deadline (KNOCK_TIMEOUT may exceed
/// CONNECTION_TIMEOUT) and its answer must still be written.
fn write_budget(deadline: Instant, now: Instant) -> Instant {
    now + deadline.saturating_duration_since(now).max(ANSWER_GRACE)
}

fn retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}
