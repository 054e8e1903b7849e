//! One connection: requests read under a deadline, each answered with one of eight fixed
//! byte strings (or a challenge body built by the same `http::response`: same status, same
//! header names in the same order), keep-alive up to a bound.

use std::borrow::Cow;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::door::{self, Answer, Door};
use super::http::{self, HeadReader, ReadResult};
use super::signals;

/// Requests served on one keep-alive connection at most.
const MAX_REQUESTS_PER_CONNECTION: usize = 1000;
/// Write budget of an answer whose knock outlasted the connection deadline.
pub(crate) const ANSWER_GRACE: Duration = Duration::from_secs(2);

/// The connection's overall deadline as the socket timeout, so a client that trickles bytes
/// cannot hold a thread much past CONNECTION_TIMEOUT. The timeout is re-set at most every
/// TIMEOUT_REFRESH (a setsockopt per read halved keep-alive throughput), so a read may end up
/// to that much after the deadline.
struct Deadline<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
    read_set: Option<Instant>,
    write_set: Option<Instant>,
}

const TIMEOUT_REFRESH: Duration = Duration::from_millis(250);

fn due(set: Option<Instant>, now: Instant) -> bool {
    set.is_none_or(|t| now.duration_since(t) >= TIMEOUT_REFRESH)
}

impl Deadline<'_> {
    /// Before an answer: the time left, but at least ANSWER_GRACE, since a knock may wait on
    /// the firewall past the deadline (KNOCK_TIMEOUT may exceed CONNECTION_TIMEOUT) and its
    /// answer must still be written.
    fn arm_write(&mut self) -> io::Result<()> {
        let now = Instant::now();
        if due(self.write_set, now) {
            let left = self
                .deadline
                .saturating_duration_since(now)
                .max(ANSWER_GRACE);
            self.stream.set_write_timeout(Some(left))?;
            self.write_set = Some(now);
        }
        Ok(())
    }
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let now = Instant::now();
        let left = self.deadline.saturating_duration_since(now);
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        if due(self.read_set, now) {
            self.stream.set_read_timeout(Some(left))?;
            self.read_set = Some(now);
        }
        (&*self.stream).read(buf)
    }
}

pub(crate) fn handle(door: &Door, stream: Arc<TcpStream>, peer: SocketAddr, id: u64) {
    let deadline = Instant::now() + door.config.limits.connection_timeout;
    let _ = stream.set_nodelay(true);
    let mut reader = HeadReader::new();
    let mut io = Deadline {
        stream: &stream,
        deadline,
        read_set: None,
        write_set: None,
    };
    for n in 1..=MAX_REQUESTS_PER_CONNECTION {
        let head = match reader.next_request(&mut io) {
            ReadResult::Request(head) => head,
            ReadResult::Bad => {
                let _ = io.arm_write();
                let _ = (&*stream).write_all(door.answers.get(false, false, false));
                let _ = stream.shutdown(Shutdown::Write);
                return;
            }
            ReadResult::Closed | ReadResult::Io(_) => return,
        };
        let answer = door::answer(door, &head, peer.ip(), id);
        // Past the deadline, at the last request allowed, or when knockd is stopping, the
        // answer is still written (see arm_write) and says `Connection: close`.
        let keep_alive = head.keep_alive()
            && n < MAX_REQUESTS_PER_CONNECTION
            && Instant::now() < deadline
            && !signals::stop_requested();
        let head_only = head.method == "HEAD";
        let bytes: Cow<'_, [u8]> = match &answer {
            Answer::Fixed(v) => Cow::Borrowed(door.answers.get(v.ok, keep_alive, head_only)),
            Answer::Body(body) => Cow::Owned(http::response(body, keep_alive, head_only)),
        };
        let written = io.arm_write().is_ok() && (&*stream).write_all(&bytes).is_ok();
        // The answer first, then the log line and the end of the knock's protection.
        if let Answer::Fixed(verdict) = answer {
            door::answered(door, id, verdict, &head);
        }
        if !written || !keep_alive {
            let _ = stream.shutdown(Shutdown::Write);
            return;
        }
    }
}
