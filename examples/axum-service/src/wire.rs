//! Just enough HTTP/1.1 for a keep-alive load generator: write a request, read one response
//! (Content-Length or chunked). Written by hand because the load generator must cost the same
//! under every allocator it measures and never be the bottleneck: blocking sockets, one buffer
//! per connection reused for every response, nothing else allocated per request.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// Largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Largest response body accepted.
const MAX_BODY: usize = 16 * 1024 * 1024;

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// One keep-alive connection.
pub struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    line: String,
    body: Vec<u8>,
    out: Vec<u8>,
}

impl Connection {
    /// Connects to `addr`, with Nagle off (small requests would otherwise wait for ACKs).
    pub fn open(addr: std::net::SocketAddr) -> io::Result<Connection> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
        Ok(Connection {
            reader: BufReader::with_capacity(64 * 1024, stream.try_clone()?),
            writer: stream,
            line: String::with_capacity(256),
            body: Vec::with_capacity(64 * 1024),
            out: Vec::with_capacity(4096),
        })
    }

    /// Sends `method path` with `body` (and a JSON content type when `json`), reads the
    /// response; returns its status. The body read is in [`Connection::body`].
    pub fn request(&mut self, method: &str, path: &str, body: &[u8], json: bool) -> io::Result<u16> {
        // Head and body in one write: one segment for a small request.
        self.out.clear();
        write!(
            self.out,
            "{method} {path} HTTP/1.1\r\nhost: localhost\r\ncontent-length: {}\r\n{}\r\n",
            body.len(),
            if json { "content-type: application/json\r\n" } else { "" }
        )?;
        self.out.extend_from_slice(body);
        self.writer.write_all(&self.out)?;
        self.read_response()
    }

    /// The body of the last response.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    fn read_line(&mut self) -> io::Result<&str> {
        self.line.clear();
        let n = (&mut self.reader).take(MAX_HEAD as u64).read_line(&mut self.line)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed by the server"));
        }
        if !self.line.ends_with('\n') {
            return Err(bad("response line too long"));
        }
        Ok(self.line.trim_end())
    }

    fn read_response(&mut self) -> io::Result<u16> {
        let status = {
            let line = self.read_line()?;
            let mut parts = line.splitn(3, ' ');
            let (Some(version), Some(code)) = (parts.next(), parts.next()) else { return Err(bad("bad status line")) };
            if !version.starts_with("HTTP/1.") {
                return Err(bad("not an HTTP/1.x response"));
            }
            code.parse::<u16>().map_err(|_| bad("bad status code"))?
        };
        let (mut length, mut chunked, mut head) = (None, false, 0);
        loop {
            let line = self.read_line()?;
            head += line.len();
            if head > MAX_HEAD {
                return Err(bad("response head too long"));
            }
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else { return Err(bad("bad header line")) };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().map_err(|_| bad("bad content-length"))?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
        self.body.clear();
        if chunked {
            loop {
                let size = {
                    let line = self.read_line()?;
                    let hex = line.split(';').next().unwrap_or("");
                    usize::from_str_radix(hex.trim(), 16).map_err(|_| bad("bad chunk size"))?
                };
                if size == 0 {
                    // Trailers, up to the empty line.
                    while !self.read_line()?.is_empty() {}
                    break;
                }
                self.read_body(size)?;
                if !self.read_line()?.is_empty() {
                    return Err(bad("chunk not followed by CRLF"));
                }
            }
        } else if let Some(n) = length {
            self.read_body(n)?;
        }
        Ok(status)
    }

    fn read_body(&mut self, n: usize) -> io::Result<()> {
        if self.body.len() + n > MAX_BODY {
            return Err(bad("response body too large"));
        }
        let start = self.body.len();
        self.body.resize(start + n, 0);
        self.reader.read_exact(&mut self.body[start..])
    }
}
