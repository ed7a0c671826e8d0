//! The HTTP side of `tslab serve`: a small, bounded HTTP/1.1 responder for GET requests.
//!
//! Written by hand rather than with tiny_http (0.12), which reads request heads without a size
//! limit or a timeout, gives every connection its own thread and answers one request at a time:
//! one client that pipelined requests and never read the answers stalled every other scrape,
//! and slow or huge requests grew threads and memory without bound. The exporter needs little of
//! HTTP (one GET, one answer, close), so the whole server fits here with every resource bounded:
//! - a fixed pool of [`Limits::workers`] threads answers requests; accepted connections wait in
//!   a queue of [`Limits::queue`], and a connection that finds the queue full is answered 503
//!   and closed at once;
//! - a request head may be at most [`Limits::max_head_bytes`] (431 beyond), and must arrive
//!   within [`Limits::timeout`], as must the answer be taken; after that the connection is
//!   dropped, so a slow or non-reading client ties up one worker for a bounded time;
//! - every answer says `Connection: close`: a pipelining client gets its first answer only.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The bounds of a server.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Threads answering requests.
    pub workers: usize,
    /// Accepted connections waiting for a worker.
    pub queue: usize,
    /// Largest request head (request line and headers) read.
    pub max_head_bytes: usize,
    /// Time allowed for the request head to arrive, and for each write of the answer.
    pub timeout: Duration,
}

/// What the server tells a handler about a request.
#[derive(Debug)]
pub struct Request {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The path, without the query string.
    pub path: String,
}

/// A handler's answer.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type` header value.
    pub content_type: &'static str,
    /// The body (left out for HEAD requests).
    pub body: String,
}

impl Response {
    /// A plain-text answer.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response { status, content_type: "text/plain; charset=utf-8", body: body.into() }
    }
}

/// Serves connections from `listener` until it fails; `handler` runs on the worker threads.
pub fn serve<H>(listener: TcpListener, limits: Limits, handler: H) -> io::Result<()>
where
    H: Fn(&Request) -> Response + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    let (tx, rx) = mpsc::sync_channel::<TcpStream>(limits.queue.max(1));
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..limits.workers.max(1) {
        let (rx, handler) = (Arc::clone(&rx), Arc::clone(&handler));
        std::thread::Builder::new().name(format!("tslab-http-{i}")).spawn(move || work(&rx, limits, &*handler))?;
    }
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                if let Err(TrySendError::Full(stream)) = tx.try_send(stream) {
                    refuse_busy(stream);
                }
            }
            // Out of descriptors or a connection reset before accept: keep serving the others.
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    Ok(())
}

fn work(rx: &Mutex<Receiver<TcpStream>>, limits: Limits, handler: &(dyn Fn(&Request) -> Response + Sync)) {
    loop {
        // A poisoned lock only means another worker panicked while waiting; the queue is intact.
        let next = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
        let Ok(stream) = next else { return };
        let _ = answer(stream, limits, handler);
    }
}

/// Reads one request head from `stream` and writes the handler's answer.
fn answer(mut stream: TcpStream, limits: Limits, handler: &(dyn Fn(&Request) -> Response + Sync)) -> io::Result<()> {
    stream.set_write_timeout(Some(limits.timeout))?;
    let response = match read_head(&mut stream, limits) {
        Ok(head) => match parse_request_line(&head) {
            Some(req) => {
                let mut r = handler(&req);
                if req.method == "HEAD" {
                    r.body.clear();
                }
                r
            }
            None => Response::text(400, "bad request: expected an HTTP request line such as GET /metrics HTTP/1.1\n"),
        },
        Err(HeadError::TooLarge) => Response::text(431, "request head too large\n"),
        Err(HeadError::Gone) => return Ok(()),
    };
    write_response(&mut stream, &response)?;
    let _ = stream.shutdown(Shutdown::Write);
    Ok(())
}

enum HeadError {
    TooLarge,
    /// Timed out, hung up, or failed: nobody to answer.
    Gone,
}

/// The request head (up to the blank line), read within the timeout and the size limit.
fn read_head(stream: &mut TcpStream, limits: Limits) -> Result<Vec<u8>, HeadError> {
    let deadline = Instant::now() + limits.timeout;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HeadError::Gone);
        }
        stream.set_read_timeout(Some(left)).map_err(|_| HeadError::Gone)?;
        let n = match stream.read(&mut buf) {
            Ok(0) => return Err(HeadError::Gone),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(HeadError::Gone),
        };
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = find_blank_line(&head) {
            head.truncate(end);
            return Ok(head);
        }
        if head.len() > limits.max_head_bytes {
            return Err(HeadError::TooLarge);
        }
    }
}

fn find_blank_line(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n").or_else(|| bytes.windows(2).position(|w| w == b"\n\n"))
}

/// `METHOD PATH HTTP/x.y` from the first line of `head`.
fn parse_request_line(head: &[u8]) -> Option<Request> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !version.starts_with("HTTP/1.") || method.is_empty() {
        return None;
    }
    let path = target.split('?').next().unwrap_or("").to_string();
    Some(Request { method: method.to_string(), path })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    }
}

fn write_response(stream: &mut TcpStream, r: &Response) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(r.body.as_bytes())?;
    stream.flush()
}

/// Answers 503 without reading the request, giving the client at most 100 ms to take it.
fn refuse_busy(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let _ = write_response(&mut stream, &Response::text(503, "busy: too many connections waiting; retry\n"));
    let _ = stream.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        let r = parse_request_line(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a").expect("valid");
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/metrics"));
        assert!(parse_request_line(b"GET /metrics").is_none());
        assert!(parse_request_line(b"GET /metrics SPDY/3").is_none());
        assert!(parse_request_line(b"\xff\xfe /x HTTP/1.1").is_none());
        assert_eq!(find_blank_line(b"GET / HTTP/1.1\r\nA: b\r\n\r\nrest"), Some(20));
    }
}
