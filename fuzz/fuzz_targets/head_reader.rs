//! The knock port's request-head reader over a reader that hands out the input in arbitrary
//! pieces. Properties: no panic; the buffer never exceeds MAX_HEAD; every result is the same
//! whether the bytes arrive all at once, one per read, or in the fuzzer's chosen pieces (a
//! client splitting its request must not change what it gets).
#![no_main]

use std::io::{self, Read};

use knockd::knock::http::{parse_head, HeadReader, Parsed, ReadResult, RequestHead, MAX_HEAD};
use libfuzzer_sys::fuzz_target;

/// Hands out `data` in pieces whose sizes cycle through `sizes` (0 means 1).
struct Split<'a> {
    data: &'a [u8],
    sizes: &'a [u8],
    i: usize,
}

impl Read for Split<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.data.is_empty() || out.is_empty() {
            return Ok(0);
        }
        let want = if self.sizes.is_empty() {
            usize::MAX
        } else {
            let s = self.sizes[self.i % self.sizes.len()];
            self.i += 1;
            usize::from(s.max(1)) * if s > 200 { 64 } else { 1 }
        };
        let n = want.min(out.len()).min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[derive(Debug, PartialEq)]
enum Seen {
    Request(RequestHead, Result<(), ()>, bool),
    Closed,
    Bad,
}

fn run(data: &[u8], sizes: &[u8]) -> Vec<Seen> {
    let mut reader = HeadReader::new();
    let mut input = Split { data, sizes, i: 0 };
    let mut out = Vec::new();
    // At most one request per 16 bytes of input can be complete (`GET / HTTP/1.1\n\n`).
    for _ in 0..=data.len() / 16 + 2 {
        let r = reader.next_request(&mut input);
        assert!(reader.buffered() <= MAX_HEAD);
        match r {
            ReadResult::Request(head) => {
                assert!(!head.path.contains(&b'?') && !head.path.contains(&b'#'));
                assert!(head.minor_version <= 1);
                let body = head.body().map(|_| ());
                let keep = head.keep_alive();
                out.push(Seen::Request(head, body, keep));
            }
            ReadResult::Closed => {
                out.push(Seen::Closed);
                return out;
            }
            ReadResult::Bad => {
                out.push(Seen::Bad);
                return out;
            }
            ReadResult::Io(e) => panic!("in-memory reader cannot fail: {e}"),
        }
    }
    out
}

fuzz_target!(|input: &[u8]| {
    // First byte: how many piece sizes follow; the rest is what the client sends.
    let Some((&k, rest)) = input.split_first() else {
        return;
    };
    let k = usize::from(k % 16).min(rest.len());
    let (sizes, data) = rest.split_at(k);

    if let Parsed::Complete(head, n) = parse_head(data) {
        assert!(n <= data.len() && n <= MAX_HEAD);
        let _ = head.body();
        let _ = head.keep_alive();
    }

    let whole = run(data, &[]);
    let bytewise = run(data, &[1]);
    assert_eq!(whole, bytewise, "one read vs one byte per read");
    if !sizes.is_empty() {
        let pieces = run(data, sizes);
        assert_eq!(whole, pieces, "one read vs pieces {sizes:?}");
    }
});
