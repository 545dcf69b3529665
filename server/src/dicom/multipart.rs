//! `multipart/related` as DICOMweb uses it (PS3.18 8.6): an incremental reader for STOW-RS
//! request bodies, fed chunk by chunk so a large study never sits in memory, and the
//! boundary and part framing of WADO-RS responses. Pure.

/// Longest header block of one part.
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// What the reader found in the bytes fed so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A part begins, with its headers (names lower-cased).
    Part(Vec<(String, String)>),
    /// Bytes of the current part's body.
    Data(Vec<u8>),
    /// The current part ended.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Preamble,
    AfterDelimiter,
    Headers,
    Body,
    Done,
}

pub struct MultipartReader {
    delimiter: Vec<u8>,
    buf: Vec<u8>,
    state: State,
}

/// The `boundary` parameter of a `multipart/related` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut parts = content_type.split(';');
    let media = parts.next()?.trim();
    if !media.eq_ignore_ascii_case("multipart/related") {
        return None;
    }
    parts.find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case("boundary").then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The `type` parameter of a `multipart/related` content type (e.g. `application/dicom`).
pub fn related_type(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case("type").then(|| v.trim().trim_matches('"').to_ascii_lowercase())
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl MultipartReader {
    pub fn new(boundary: &str) -> MultipartReader {
        // A body that opens with the boundary has no CRLF before it; lend it one.
        MultipartReader {
            delimiter: format!("\r\n--{boundary}").into_bytes(),
            buf: b"\r\n".to_vec(),
            state: State::Preamble,
        }
    }

    /// Feeds the next bytes of the body; returns the events they complete.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Event>, String> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        loop {
            let progressed = match self.state {
                State::Done => {
                    self.buf.clear();
                    false
                }
                State::Preamble => self.preamble(),
                State::AfterDelimiter => self.after_delimiter()?,
                State::Headers => self.headers(&mut events)?,
                State::Body => self.body(&mut events),
            };
            if !progressed {
                return Ok(events);
            }
        }
    }

    // Each step below reads what it can of `buf` in its state; `true` when it moved to
    // another state, `false` when it needs more bytes.

    fn preamble(&mut self) -> bool {
        match find(&self.buf, &self.delimiter) {
            Some(pos) => {
                self.buf.drain(..pos + self.delimiter.len());
                self.state = State::AfterDelimiter;
                true
            }
            None => {
                let keep = self.delimiter.len().min(self.buf.len());
                self.buf.drain(..self.buf.len() - keep);
                false
            }
        }
    }

    fn after_delimiter(&mut self) -> Result<bool, String> {
        if self.buf.len() < 2 {
            return Ok(false);
        }
        if self.buf.starts_with(b"--") {
            self.state = State::Done;
            return Ok(true);
        }
        // Transport padding (spaces or tabs) may follow the boundary.
        let Some(eol) = find(&self.buf, b"\r\n") else {
            if self.buf.len() > 256 {
                return Err("malformed multipart boundary line".into());
            }
            return Ok(false);
        };
        if !self.buf[..eol].iter().all(|b| *b == b' ' || *b == b'\t') {
            return Err("malformed multipart boundary line".into());
        }
        self.buf.drain(..eol + 2);
        self.state = State::Headers;
        Ok(true)
    }

    fn headers(&mut self, events: &mut Vec<Event>) -> Result<bool, String> {
        let end = if self.buf.starts_with(b"\r\n") { Some(0) } else { find(&self.buf, b"\r\n\r\n").map(|p| p + 2) };
        let Some(end) = end else {
            if self.buf.len() > MAX_HEADER_BYTES {
                return Err("multipart part headers are too long".into());
            }
            return Ok(false);
        };
        let block = String::from_utf8_lossy(&self.buf[..end]).to_string();
        self.buf.drain(..end + 2);
        let headers = block
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        events.push(Event::Part(headers));
        self.state = State::Body;
        Ok(true)
    }

    fn body(&mut self, events: &mut Vec<Event>) -> bool {
        match find(&self.buf, &self.delimiter) {
            Some(pos) => {
                if pos > 0 {
                    events.push(Event::Data(self.buf[..pos].to_vec()));
                }
                self.buf.drain(..pos + self.delimiter.len());
                events.push(Event::End);
                self.state = State::AfterDelimiter;
                true
            }
            None => {
                let safe = self.buf.len().saturating_sub(self.delimiter.len());
                if safe > 0 {
                    events.push(Event::Data(self.buf.drain(..safe).collect()));
                }
                false
            }
        }
    }

    /// Whether the closing boundary was seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }
}

/// A boundary for a response.
pub fn new_boundary() -> String {
    format!("teleconsult-{}", uuid::Uuid::new_v4().simple())
}

/// The framing before a part's body.
pub fn part_header(boundary: &str, content_type: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut s = format!("--{boundary}\r\nContent-Type: {content_type}\r\n");
    for (k, v) in extra {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// The closing delimiter (each part's body is followed by `\r\n`).
pub fn closing(boundary: &str) -> Vec<u8> {
    format!("--{boundary}--\r\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"preamble\r\n--XyZ\r\nContent-Type: application/dicom\r\n\r\n");
        b.extend_from_slice(b"first\r\n--Xy body");
        b.extend_from_slice(b"\r\n--XyZ\r\ncontent-type: application/dicom\r\nContent-Location: x\r\n\r\nsecond");
        b.extend_from_slice(b"\r\n--XyZ--\r\nepilogue");
        b
    }

    #[allow(clippy::type_complexity)]
    fn collect(chunk: usize) -> Vec<(Vec<(String, String)>, Vec<u8>)> {
        let mut r = MultipartReader::new("XyZ");
        let mut parts: Vec<(Vec<(String, String)>, Vec<u8>)> = Vec::new();
        for piece in body().chunks(chunk) {
            for e in r.feed(piece).unwrap() {
                match e {
                    Event::Part(h) => parts.push((h, Vec::new())),
                    Event::Data(d) => parts.last_mut().unwrap().1.extend_from_slice(&d),
                    Event::End => {}
                }
            }
        }
        assert!(r.is_done());
        parts
    }

    #[test]
    fn parts_are_found_whatever_the_chunking() {
        for chunk in [1, 2, 3, 7, 16, 1000] {
            let parts = collect(chunk);
            assert_eq!(parts.len(), 2, "chunk {chunk}");
            assert_eq!(parts[0].1, b"first\r\n--Xy body", "chunk {chunk}");
            assert_eq!(parts[1].1, b"second");
            assert_eq!(parts[1].0[0], ("content-type".to_string(), "application/dicom".to_string()));
        }
    }

    #[test]
    fn content_type_parameters_are_read() {
        let ct = "multipart/related; type=\"application/dicom\"; boundary=\"abc 1\"";
        assert_eq!(boundary(ct).as_deref(), Some("abc 1"));
        assert_eq!(related_type(ct).as_deref(), Some("application/dicom"));
        assert_eq!(boundary("multipart/form-data; boundary=x"), None);
    }

    #[test]
    fn a_body_without_parts_is_not_done() {
        let mut r = MultipartReader::new("b");
        assert!(r.feed(b"no boundary here").unwrap().is_empty());
        assert!(!r.is_done());
    }
}
