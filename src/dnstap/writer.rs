//! The dnstap writer thread: connects to the collector (Frame Streams handshake), takes
//! ready slots from the pool, encodes them and writes them in batches; reconnects with
//! backoff when the collector is gone; follows the destination when a reload changes
//! it; finishes the stream (STOP, FINISH) when the server stops. It logs once per change
//! of state (connected, cannot connect, connection lost), never per message.
//!
//! Blocking I/O with timeouts on a thread of its own: a collector that stops reading
//! stalls only this thread (for at most [`IO_TIMEOUT`] per write, then the connection is
//! dropped and made anew), while the query path keeps dropping into a full pool.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::pool::{self, Pool};
use super::proto::Encoder;
use super::{Inner, fstrm};
use crate::model::DnstapDest;

/// Longest wait for one connect, read or write on the collector's socket.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// First wait before connecting again after a failure; doubled per failure.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long the writer sleeps with nothing to do before looking around again (a
/// producer or a reload wakes it sooner).
const IDLE: Duration = Duration::from_millis(500);
/// Bytes of frames gathered before one write.
const BATCH: usize = 64 * 1024;

/// A connected socket, Unix or TCP.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// An open stream and what it was opened for.
struct Conn {
    stream: Box<dyn Stream>,
    dest: DnstapDest,
    /// [`Inner::generation`] when it was opened: another one means a new destination.
    generation: u64,
}

/// The thread's body; returns once the server stops (or the `Tap` is dropped).
pub(super) fn run(inner: &Inner) {
    let Some(pool) = inner.pool.get() else {
        return;
    };
    let version = format!("gslbd {}", env!("CARGO_PKG_VERSION"));
    let mut w = Writer {
        enc: Encoder::new(&hostname(), &version),
        out: Vec::with_capacity(BATCH + 2 * (pool::MAX_QUERY + pool::MAX_RESPONSE)),
    };
    let mut conn: Option<Conn> = None;
    // What was logged last: connected (true) or not (false).
    let mut logged: Option<bool> = None;
    let mut backoff = MIN_BACKOFF;
    let mut retry_at = Instant::now();
    while !inner.stop.load(Ordering::Acquire) {
        let (generation, dest) = {
            let dest = inner.dest.lock().unwrap_or_else(|e| e.into_inner());
            (inner.generation.load(Ordering::Acquire), dest.clone())
        };
        if let Some(c) = conn.take_if(|c| c.generation != generation) {
            // A reload changed the destination (or removed it): finish this stream.
            w.close(inner, pool, c);
            logged = None;
            backoff = MIN_BACKOFF;
            retry_at = Instant::now();
            continue;
        }
        if let Some(c) = &mut conn {
            match w.drain(inner, pool, c) {
                Ok(0) => sleep(inner, pool, generation),
                Ok(_) => {}
                Err(e) => {
                    warn!(
                        destination = %c.dest,
                        "dnstap: connection lost: {e}; reconnecting (messages are dropped meanwhile)"
                    );
                    logged = Some(false);
                    conn = None;
                }
            }
            continue;
        }
        let Some(dest) = dest else {
            std::thread::park_timeout(IDLE);
            continue;
        };
        let now = Instant::now();
        if now < retry_at {
            std::thread::park_timeout(retry_at - now);
            continue;
        }
        match connect(&dest) {
            Ok(stream) => {
                if logged != Some(true) {
                    info!(destination = %dest, "dnstap: connected");
                }
                logged = Some(true);
                backoff = MIN_BACKOFF;
                conn = Some(Conn {
                    stream,
                    dest,
                    generation,
                });
            }
            Err(e) => {
                if logged != Some(false) {
                    warn!(
                        destination = %dest,
                        "dnstap: cannot connect: {e}; retrying with backoff (messages are dropped meanwhile)"
                    );
                }
                logged = Some(false);
                retry_at = now + backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    match conn {
        Some(c) => w.close(inner, pool, c),
        None => {
            // Nowhere to write what is still queued.
            while let Some(i) = pool.ready.pop() {
                let events = 1 + u64::from(pool.lock(i).responded);
                inner.dropped.fetch_add(events, Ordering::Relaxed);
                pool.release(i);
            }
        }
    }
}

/// The encoder and the batch buffer, reused for every write.
struct Writer {
    enc: Encoder,
    out: Vec<u8>,
}

impl Writer {
    /// Writes every ready slot, in batches; the number of events written.
    fn drain(&mut self, inner: &Inner, pool: &Pool, c: &mut Conn) -> io::Result<u64> {
        let mut total = 0;
        loop {
            self.out.clear();
            let mut events = 0;
            while self.out.len() < BATCH {
                let Some(i) = pool.ready.pop() else {
                    break;
                };
                events += self.enc.frames(&pool.lock(i), &mut self.out);
                pool.release(i);
            }
            if events == 0 {
                return Ok(total);
            }
            if let Err(e) = c.stream.write_all(&self.out) {
                inner.dropped.fetch_add(events, Ordering::Relaxed);
                return Err(e);
            }
            inner.sent.fetch_add(events, Ordering::Relaxed);
            total += events;
        }
    }

    /// Writes what is queued, then finishes the stream: STOP, and the collector's FINISH.
    fn close(&mut self, inner: &Inner, pool: &Pool, mut c: Conn) {
        let finished = self
            .drain(inner, pool, &mut c)
            .and_then(|_| fstrm::stop(&mut c.stream));
        match finished {
            Ok(()) => info!(destination = %c.dest, "dnstap: stream finished"),
            Err(e) => debug!(destination = %c.dest, "dnstap: stream closed without FINISH: {e}"),
        }
    }
}

/// Parks until a producer queues something (or [`IDLE`] passes), unless something is
/// queued already, the server stops or the destination changed.
fn sleep(inner: &Inner, pool: &Pool, generation: u64) {
    inner.sleeping.store(true, Ordering::Relaxed);
    // Pairs with the producer's fence between queueing and looking at `sleeping`.
    fence(Ordering::SeqCst);
    if pool.ready.is_empty()
        && !inner.stop.load(Ordering::Acquire)
        && inner.generation.load(Ordering::Acquire) == generation
    {
        std::thread::park_timeout(IDLE);
    }
    inner.sleeping.store(false, Ordering::Relaxed);
}

/// Connects and opens a Frame Streams stream of dnstap.
fn connect(dest: &DnstapDest) -> io::Result<Box<dyn Stream>> {
    let mut stream: Box<dyn Stream> = match dest {
        DnstapDest::Unix(path) => {
            let s = UnixStream::connect(path)?;
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            Box::new(s)
        }
        DnstapDest::Tcp(addr) => {
            let s = TcpStream::connect_timeout(addr, IO_TIMEOUT)?;
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            s.set_nodelay(true)?;
            Box::new(s)
        }
    };
    fstrm::handshake(&mut stream)?;
    Ok(stream)
}

/// This host's name: the identity dnstap readers show.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for the length passed; gethostname writes at most that.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "gslbd".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
