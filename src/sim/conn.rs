//! One connection of a fake region: read one request, answer it as the mode says (or
//! hang, or close), then close. Every blocking call has a timeout of [`TICK`] so the
//! thread notices the stop flag promptly.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ServerConnection, StreamOwned};

use super::{Action, Shared, TICK};

/// The most of a request that is read: probes send a few hundred bytes of headers;
/// anything longer is answered once this much has arrived.
const MAX_REQUEST: usize = 8 * 1024;

/// How long a client may take to send its request (a client that connects and sends
/// nothing, e.g. a TCP probe that does not close, is dropped after this).
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// Write timeout: the answer is tiny, so only a client that never reads can hit it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long to wait for the client to close after the answer, so that closing does
/// not reset the connection while the client still reads (see [`finish`]).
const LINGER: Duration = Duration::from_millis(500);

/// A plain or TLS connection.
enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&mut self) -> &mut TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &mut s.sock,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// Serves one accepted connection; errors just end it (the client sees the close).
pub(super) fn serve(shared: &Arc<Shared>, stream: TcpStream) {
    let _ = serve_one(shared, stream);
}

fn serve_one(shared: &Shared, stream: TcpStream) -> io::Result<()> {
    // Accepted sockets may inherit the listener's non-blocking flag on some platforms.
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(TICK))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let mut conn = match &shared.tls {
        None => Conn::Plain(stream),
        Some(config) => {
            let tls = ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
            // The handshake happens inside the first read, under the same timeouts.
            Conn::Tls(Box::new(StreamOwned::new(tls, stream)))
        }
    };
    let Some(request) = read_request(shared, &mut conn)? else {
        return Ok(());
    };
    shared
        .hits
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    match shared.next_action() {
        Action::Respond(code, body) => {
            let head_only = request.starts_with(b"HEAD ");
            conn.write_all(&response(code, body, head_only))?;
            finish(shared, conn)
        }
        Action::Hang { generation } => {
            hang(shared, conn.tcp(), generation);
            Ok(())
        }
        Action::Close => Ok(()),
    }
}

/// Reads until the end of the request head (or [`MAX_REQUEST`] bytes, or the client's
/// end of stream after some bytes). `None` when the client sent nothing, took too long,
/// or the region is stopping. A request body is not read: probes send none.
fn read_request(shared: &Shared, conn: &mut Conn) -> io::Result<Option<Vec<u8>>> {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut request = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if shared.stopping() || Instant::now() >= deadline {
            return Ok(None);
        }
        match conn.read(&mut chunk) {
            Ok(0) if request.is_empty() => return Ok(None),
            Ok(0) => return Ok(Some(request)),
            Ok(n) => {
                request.extend_from_slice(&chunk[..n]);
                if request.len() >= MAX_REQUEST || head_complete(&request) {
                    return Ok(Some(request));
                }
            }
            Err(e) if retry(&e) => {}
            Err(e) => return Err(e),
        }
    }
}

/// True once the blank line ending the head has arrived (bare `\n` line ends tolerated).
fn head_complete(request: &[u8]) -> bool {
    request.windows(4).any(|w| w == b"\r\n\r\n") || request.windows(2).any(|w| w == b"\n\n")
}

/// Read timeouts surface as `WouldBlock` on Unix and `TimedOut` on Windows.
fn retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// The whole answer. `Connection: close` because every connection serves one request.
fn response(code: u16, body: &str, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason(code),
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Ends the connection after an answer: TLS close_notify, then half-close, then wait
/// briefly for the client's close. Closing a socket with unread input makes the kernel
/// send a reset, which can destroy the answer before the client reads it, so any
/// leftover input (a body, a pipelined request) is read and discarded first.
fn finish(shared: &Shared, mut conn: Conn) -> io::Result<()> {
    if let Conn::Tls(tls) = &mut conn {
        tls.conn.send_close_notify();
    }
    conn.flush()?;
    let tcp = conn.tcp();
    tcp.shutdown(Shutdown::Write)?;
    let until = Instant::now() + LINGER;
    let mut sink = [0u8; 1024];
    while !shared.stopping() && Instant::now() < until {
        match tcp.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if retry(&e) => {}
            Err(_) => break,
        }
    }
    Ok(())
}

/// Holds a connection without answering until the client closes it, the region stops,
/// or the mode changes. Reads (and discards) raw bytes only to notice the client's close,
/// which frees this thread as soon as a timed-out probe gives up.
fn hang(shared: &Shared, tcp: &mut TcpStream, generation: u64) {
    let mut sink = [0u8; 1024];
    while !shared.hang_over(generation) {
        match tcp.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if retry(&e) => {}
            Err(_) => return,
        }
    }
}
