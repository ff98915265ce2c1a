//! SMTP on the wire: command lines and the DATA phase, framed strictly. Only `<CR><LF>` ends a line,
//! and only `<CR><LF>.<CR><LF>` ends DATA. A bare `<LF>` or `<CR>` anywhere (in a command or in the
//! message) is refused, the way Postfix's `smtpd_forbid_bare_newline` does: otherwise a sender whose
//! mail passes authentication for its own domain could end the message where the relay sees no end
//! (`<LF>.<LF>`, `<CR><LF>.<LF>`, `<LF>.<CR><LF>`), and smuggle a second message, with another
//! organisation's sender, in the first one's data.
//!
//! The framing is done by two pure parsers (`next_command` and `DataParser`) that work on a buffer,
//! so they are tested and fuzzed without sockets; `Wire` only moves bytes.

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Longest command line (RFC 5321 allows 512; extensions make real ones longer).
pub const MAX_COMMAND_LINE: usize = 4096;

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// What the next command line in a buffer is.
#[derive(Debug, PartialEq, Eq)]
pub enum CommandLine {
    /// A line ended by CRLF, without it.
    Line(Vec<u8>),
    /// A line ended by a bare LF, or holding a bare CR.
    BareNewline,
    /// A line longer than `MAX_COMMAND_LINE` (consumed up to its end).
    TooLong,
}

/// Takes the next complete command line from `input`; `None` when no line has ended yet. A line
/// that grows past `MAX_COMMAND_LINE` without ending is dropped as it arrives (`discarding` remembers
/// that, so its end is reported as `TooLong`).
pub fn next_command(input: &mut Vec<u8>, discarding: &mut bool) -> Option<CommandLine> {
    let Some(lf) = input.iter().position(|b| *b == b'\n') else {
        if input.len() > MAX_COMMAND_LINE {
            input.clear();
            *discarding = true;
        }
        return None;
    };
    let line: Vec<u8> = input.drain(..=lf).collect();
    if std::mem::take(discarding) || line.len() > MAX_COMMAND_LINE + 2 {
        return Some(CommandLine::TooLong);
    }
    let Some(content) = line.strip_suffix(b"\r\n") else {
        return Some(CommandLine::BareNewline);
    };
    if content.contains(&b'\r') {
        return Some(CommandLine::BareNewline);
    }
    Some(CommandLine::Line(content.to_vec()))
}

/// Why a message was not taken at the end of DATA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataRefusal {
    /// A bare LF or CR inside the message.
    BareNewline,
    /// Longer than the limit.
    TooBig,
    /// The shared memory budget for messages being received ran out.
    NoMemory,
}

/// The end of the DATA phase.
#[derive(Debug, PartialEq, Eq)]
pub enum DataEnd {
    /// The message, dot-unstuffed, with CRLF line ends.
    Complete(Vec<u8>),
    Refused(DataRefusal),
}

/// Reads the DATA phase from a buffer as it fills, line by line.
pub struct DataParser {
    max: usize,
    message: Vec<u8>,
    /// The bytes consumed so far end with CRLF (true at the start: the DATA command's own CRLF).
    after_crlf: bool,
    /// Part of the current line was consumed already (an over-long line is dropped as it arrives).
    mid_line: bool,
    refused: Option<DataRefusal>,
}

impl DataParser {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            message: Vec::with_capacity(8 * 1024),
            after_crlf: true,
            mid_line: false,
            refused: None,
        }
    }

    /// Bytes of message held right now.
    pub fn held(&self) -> usize {
        self.message.len()
    }

    /// Refuses the message (the bytes held are dropped at once); reading goes on to its end.
    pub fn refuse(&mut self, why: DataRefusal) {
        // A framing error outweighs a size or memory refusal: it is answered differently.
        if self.refused.is_none() || why == DataRefusal::BareNewline {
            self.refused = Some(why);
        }
        self.message = Vec::new();
    }

    /// Consumes the complete lines in `input`; `Some` once `<CR><LF>.<CR><LF>` was consumed (whatever
    /// follows it stays in `input`: pipelined commands).
    pub fn feed(&mut self, input: &mut Vec<u8>) -> Option<DataEnd> {
        let mut consumed = 0;
        let mut end = None;
        while let Some(lf) = input[consumed..].iter().position(|b| *b == b'\n') {
            let line = &input[consumed..consumed + lf + 1];
            consumed += lf + 1;
            let starts_line = !std::mem::take(&mut self.mid_line);
            let crlf = line.ends_with(b"\r\n");
            let content = &line[..line.len() - if crlf { 2 } else { 1 }];
            if starts_line && self.after_crlf && crlf && content == b"." {
                end = Some(match self.refused {
                    Some(why) => DataEnd::Refused(why),
                    None => DataEnd::Complete(std::mem::take(&mut self.message)),
                });
                break;
            }
            self.after_crlf = crlf;
            if !crlf || content.contains(&b'\r') {
                self.refuse(DataRefusal::BareNewline);
            }
            if self.refused.is_some() {
                continue;
            }
            let unstuffed = match line.strip_prefix(b".") {
                Some(rest) if starts_line => rest,
                _ => line,
            };
            if self.message.len() + unstuffed.len() > self.max {
                self.refuse(DataRefusal::TooBig);
                continue;
            }
            self.message.extend_from_slice(unstuffed);
        }
        input.drain(..consumed);
        if end.is_none() && input.len() > self.max {
            // A line that never ends counts against the limit too. Its last byte stays: it may be
            // the CR of the CRLF that ends it.
            self.refuse(DataRefusal::TooBig);
            let last = input.pop();
            input.clear();
            input.extend(last);
            self.mid_line = true;
            self.after_crlf = false;
        }
        end
    }
}

/// The connection: the stream, what was read but not yet used, and replies not yet written.
pub struct Wire {
    pub io: Box<dyn Stream>,
    pub input: Vec<u8>,
    output: Vec<u8>,
    command_timeout: Duration,
    data_timeout: Duration,
}

/// What reading a command line gave.
pub enum Read<T> {
    Got(T),
    Closed,
    TimedOut,
}

impl Wire {
    pub fn new(io: Box<dyn Stream>, command_timeout: Duration, data_timeout: Duration) -> Self {
        Self {
            io,
            input: Vec::new(),
            output: Vec::new(),
            command_timeout,
            data_timeout,
        }
    }

    /// Reads more; `Some(false)` when the client closed, `None` on timeout.
    async fn fill(&mut self, timeout: Duration) -> Option<bool> {
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout(timeout, self.io.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => Some(false),
            Ok(Ok(n)) => {
                self.input.extend_from_slice(&chunk[..n]);
                Some(true)
            }
            Err(_) => None,
        }
    }

    /// The next command line. Pending replies are written first when no further command is buffered
    /// (PIPELINING: replies to a batch go out together).
    pub async fn read_command(&mut self) -> Read<CommandLine> {
        let mut discarding = false;
        loop {
            if let Some(line) = next_command(&mut self.input, &mut discarding) {
                return Read::Got(line);
            }
            if !self.flush().await {
                return Read::Closed;
            }
            match self.fill(self.command_timeout).await {
                Some(true) => {}
                Some(false) => return Read::Closed,
                None => return Read::TimedOut,
            }
        }
    }

    /// The DATA phase, through `parser`; `held` is told how many message bytes are held after each
    /// read and answers whether the memory budget allows them (or the message is refused).
    pub async fn read_data(
        &mut self,
        parser: &mut DataParser,
        mut held: impl FnMut(usize) -> bool,
    ) -> Read<DataEnd> {
        let started = Instant::now();
        loop {
            let end = parser.feed(&mut self.input);
            if !held(parser.held()) {
                parser.refuse(DataRefusal::NoMemory);
            }
            if let Some(end) = end {
                return Read::Got(end);
            }
            let left = self.data_timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Read::TimedOut;
            }
            match self.fill(left).await {
                Some(true) => {}
                Some(false) => return Read::Closed,
                None => return Read::TimedOut,
            }
        }
    }

    /// Queues a reply (one or more lines, without line ends).
    pub fn reply(&mut self, text: &str) {
        for line in text.split('\n') {
            self.output.extend_from_slice(line.as_bytes());
            self.output.extend_from_slice(b"\r\n");
        }
    }

    /// Writes pending replies; `false` when the client is gone.
    pub async fn flush(&mut self) -> bool {
        if self.output.is_empty() {
            return true;
        }
        let ok = self.io.write_all(&self.output).await.is_ok() && self.io.flush().await.is_ok();
        self.output.clear();
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commands(bytes: &[u8]) -> Vec<CommandLine> {
        let mut input = bytes.to_vec();
        let mut discarding = false;
        std::iter::from_fn(|| next_command(&mut input, &mut discarding)).collect()
    }

    fn data(bytes: &[u8]) -> (Option<DataEnd>, Vec<u8>) {
        let mut input = bytes.to_vec();
        let mut parser = DataParser::new(1 << 20);
        let end = parser.feed(&mut input);
        (end, input)
    }

    #[test]
    fn only_crlf_ends_a_command() {
        assert_eq!(
            commands(b"EHLO a\r\nNOOP\r\n"),
            [
                CommandLine::Line(b"EHLO a".to_vec()),
                CommandLine::Line(b"NOOP".to_vec())
            ]
        );
        assert_eq!(commands(b"EHLO a\n"), [CommandLine::BareNewline]);
        assert_eq!(
            commands(b"MAIL FROM:<a@b>\rRCPT TO:<c@d>\r\n"),
            [CommandLine::BareNewline]
        );
        assert_eq!(commands(b"NOOP"), []);
        let long = [vec![b'A'; MAX_COMMAND_LINE + 10], b"\r\nNOOP\r\n".to_vec()].concat();
        assert_eq!(
            commands(&long),
            [CommandLine::TooLong, CommandLine::Line(b"NOOP".to_vec())]
        );
    }

    #[test]
    fn only_crlf_dot_crlf_ends_data() {
        let (end, rest) = data(b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n");
        assert_eq!(
            end,
            Some(DataEnd::Complete(b"Subject: x\r\n\r\nbody\r\n".to_vec()))
        );
        assert_eq!(rest, b"QUIT\r\n");
        // Every smuggling terminator is data (and makes the message refused), never an end.
        for smuggled in [
            &b"body\n.\nMAIL FROM:<x@gi.example>\r\n"[..],
            b"body\r\n.\nMAIL FROM:<x@gi.example>\r\n",
            b"body\n.\r\nMAIL FROM:<x@gi.example>\r\n",
            b"body\r.\r\nMAIL FROM:<x@gi.example>\r\n",
            b"body\r\n.\rMAIL FROM:<x@gi.example>\r\n",
        ] {
            let (end, rest) = data(smuggled);
            assert_eq!(end, None, "{smuggled:?}");
            assert!(rest.is_empty(), "{smuggled:?}");
            let mut input = [smuggled, b"more\r\n.\r\n"].concat();
            let mut parser = DataParser::new(1 << 20);
            assert_eq!(
                parser.feed(&mut input),
                Some(DataEnd::Refused(DataRefusal::BareNewline)),
                "{smuggled:?}"
            );
        }
    }

    #[test]
    fn data_split_anywhere_reads_the_same() {
        let message = b"From: a@b.example\r\n\r\n..dotted\r\nline\r\n.\r\nNOOP\r\n";
        for split in 0..message.len() {
            let mut parser = DataParser::new(1 << 20);
            let mut input = message[..split].to_vec();
            let mut end = parser.feed(&mut input);
            input.extend_from_slice(&message[split..]);
            if end.is_none() {
                end = parser.feed(&mut input);
            }
            assert_eq!(
                end,
                Some(DataEnd::Complete(
                    b"From: a@b.example\r\n\r\n.dotted\r\nline\r\n".to_vec()
                )),
                "split at {split}"
            );
            assert_eq!(input, b"NOOP\r\n", "split at {split}");
        }
    }

    #[test]
    fn too_big_is_read_to_its_end_and_refused() {
        let mut parser = DataParser::new(10);
        let mut input = b"0123456789abcdef\r\n.\r\n".to_vec();
        assert_eq!(
            parser.feed(&mut input),
            Some(DataEnd::Refused(DataRefusal::TooBig))
        );
        // A line that never ends is dropped as it arrives; the end is still found.
        let mut parser = DataParser::new(10);
        let mut input = vec![b'x'; 100];
        assert_eq!(parser.feed(&mut input), None);
        assert!(input.len() <= 1);
        input.extend_from_slice(b"\n.\r\n");
        assert_eq!(
            parser.feed(&mut input),
            None,
            "an LF after the long line is bare"
        );
        input.extend_from_slice(b"tail\r\n.\r\n");
        assert_eq!(
            parser.feed(&mut input),
            Some(DataEnd::Refused(DataRefusal::BareNewline))
        );
        let mut parser = DataParser::new(10);
        let mut input = vec![b'x'; 100];
        parser.feed(&mut input);
        input.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(
            parser.feed(&mut input),
            Some(DataEnd::Refused(DataRefusal::TooBig))
        );
    }
}
