//! One client connection. The reader takes frames one after another: it checks each frame's
//! length before reading it (and waits for room under the broker-wide budget of request bytes),
//! decodes the header, and hands the request to its API, which runs as a task of its own. The
//! writer answers in request order, so a client pipelining several requests (up to 5 by default)
//! gets its responses in order while the requests run concurrently. A Produce enqueues its batches
//! before the next request is read, so a connection's appends keep their order.
//!
//! A malformed, oversized or unsupported frame closes the connection (after the responses to the
//! requests before it), with a log line and a count by reason; nothing else is affected.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Broker;
use super::dispatch::{self, Reply};
use super::frame::Chunk;
use tiering::local::FileSpan;

/// Requests of one connection read ahead of their responses. Clients keep at most 5 in flight
/// (`max.in.flight.requests.per.connection`); more wait in the socket.
const MAX_IN_FLIGHT: usize = 16;

/// Why a connection is closed.
#[derive(Debug)]
pub(super) enum Close {
    /// The client closed it.
    Eof,
    Idle,
    Io(std::io::Error),
    /// A frame that cannot be a request (length, header); `reason` is the metric label.
    Malformed {
        reason: &'static str,
        detail: String,
    },
    /// An API key or version this broker does not serve (Kafka closes these too).
    Unsupported(String),
    /// The response side is gone.
    WriterGone,
}

impl Close {
    pub(super) fn malformed(reason: &'static str, detail: impl Into<String>) -> Self {
        Close::Malformed { reason, detail: detail.into() }
    }
}

/// Counts the connection as open while it lives.
struct Open;
impl Open {
    fn new() -> Self {
        metrics::gauge!(super::CONNECTIONS).increment(1.0);
        Open
    }
}
impl Drop for Open {
    fn drop(&mut self) {
        metrics::gauge!(super::CONNECTIONS).decrement(1.0);
    }
}

pub(super) async fn run(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr) {
    let _open = Open::new();
    let _ = stream.set_nodelay(true);
    let (mut rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT);
    let writer = tokio::spawn(write_responses(wr, rx, peer));
    let closed = read_requests(&broker, peer, &mut rd, &tx).await;
    match &closed {
        Close::Eof | Close::WriterGone => tracing::debug!(%peer, "Kafka connection closed"),
        Close::Idle => {
            tracing::debug!(%peer, "closing idle Kafka connection");
            metrics::counter!(super::CLOSED, "reason" => "idle").increment(1);
        }
        Close::Io(e) => tracing::debug!(%peer, error = %e, "Kafka connection failed"),
        Close::Malformed { reason, detail } => {
            tracing::warn!(%peer, %detail, "closing Kafka connection: bad frame");
            metrics::counter!(super::CLOSED, "reason" => *reason).increment(1);
        }
        Close::Unsupported(detail) => {
            tracing::warn!(%peer, %detail, "closing Kafka connection: unsupported request");
            metrics::counter!(super::CLOSED, "reason" => "unsupported").increment(1);
        }
    }
    drop(tx);
    let _ = writer.await;
}

async fn read_requests(
    broker: &Arc<Broker>,
    peer: SocketAddr,
    rd: &mut OwnedReadHalf,
    tx: &mpsc::Sender<JoinHandle<Reply>>,
) -> Close {
    let idle_ms = broker.config.idle_timeout_ms;
    loop {
        let mut len = [0u8; 4];
        tokio::select! {
            r = rd.read_exact(&mut len) => match r {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Close::Eof,
                Err(e) => return Close::Io(e),
            },
            () = broker.engine.clock().sleep(idle_ms) => return Close::Idle,
        }
        let len = i32::from_be_bytes(len);
        // api key, api version and correlation id: a request header is at least 8 bytes.
        if len < 8 {
            return Close::malformed("short_frame", format!("frame length {len}"));
        }
        let len = len as usize;
        if len > broker.config.max_request_bytes {
            return Close::malformed(
                "frame_too_large",
                format!("frame of {len} bytes exceeds max_request_bytes {}", broker.config.max_request_bytes),
            );
        }
        let Ok(permit) = broker.request_bytes.clone().acquire_many_owned(len as u32).await else {
            return Close::WriterGone;
        };
        let mut buf = BytesMut::with_capacity(len);
        let frame_ms = broker.config.frame_timeout_ms;
        tokio::select! {
            r = read_frame(rd, &mut buf, len) => if let Err(e) = r {
                return if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    Close::malformed("truncated_frame", format!("connection ended inside a frame of {len} bytes"))
                } else {
                    Close::Io(e)
                };
            },
            () = broker.engine.clock().sleep(frame_ms) => {
                return Close::malformed("slow_frame", format!("a frame of {len} bytes did not arrive within {frame_ms} ms"));
            }
        }
        metrics::counter!(super::BYTES_IN).increment(len as u64 + 4);
        let reply = match dispatch::request(broker, peer, buf.freeze(), permit).await {
            Ok(reply) => reply,
            Err(close) => return close,
        };
        if tx.send(tokio::spawn(reply)).await.is_err() {
            return Close::WriterGone;
        }
    }
}

/// Reads the `len` bytes of a frame into `buf`'s spare capacity (not zeroed first: a produce
/// frame is megabytes), never past the frame's end.
async fn read_frame(rd: &mut OwnedReadHalf, buf: &mut BytesMut, len: usize) -> std::io::Result<()> {
    while buf.len() < len {
        let left = (len - buf.len()) as u64;
        if (&mut *rd).take(left).read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}

async fn write_responses(mut wr: OwnedWriteHalf, mut rx: mpsc::Receiver<JoinHandle<Reply>>, peer: SocketAddr) {
    while let Some(handle) = rx.recv().await {
        let frame: Option<Vec<Chunk>> = match handle.await {
            Ok(Ok(frame)) => frame,
            Ok(Err(e)) => {
                tracing::error!(%peer, error = %e, "cannot encode a Kafka response; closing the connection");
                metrics::counter!(super::CLOSED, "reason" => "encode_error").increment(1);
                return;
            }
            Err(e) => {
                tracing::error!(%peer, error = %e, "a Kafka request task failed; closing the connection");
                metrics::counter!(super::CLOSED, "reason" => "task_failed").increment(1);
                return;
            }
        };
        if let Some(chunks) = frame {
            if let Err(e) = write_chunks(&mut wr, &chunks).await {
                // A frame cut short cannot be finished: the client reconnects and asks again.
                tracing::debug!(%peer, error = %e, "cannot send a Kafka response; closing the connection");
                return;
            }
            metrics::counter!(super::BYTES_OUT).increment(chunks.iter().map(|c| c.len() as u64).sum());
        }
    }
    let _ = wr.shutdown().await;
}

/// Writes a frame's chunks in order: runs of chunks in memory with vectored writes, file spans
/// (a Fetch's records from the hot tier) with `sendfile`, from the page cache to the socket.
async fn write_chunks(wr: &mut OwnedWriteHalf, chunks: &[Chunk]) -> std::io::Result<()> {
    let mut rest = chunks;
    while let Some(first) = rest.first() {
        if let Chunk::File(span) = first {
            send_span(wr, span).await?;
            metrics::counter!(super::BYTES_SENDFILE).increment(span.len() as u64);
            rest = &rest[1..];
            continue;
        }
        let run = rest.iter().take_while(|c| matches!(c, Chunk::Memory(_))).count();
        let memory: Vec<&Bytes> = rest[..run]
            .iter()
            .map(|c| match c {
                Chunk::Memory(b) => b,
                Chunk::File(_) => unreachable!("invariant: the run holds memory chunks only"),
            })
            .collect();
        write_memory(wr, &memory).await?;
        rest = &rest[run..];
    }
    Ok(())
}

/// Writes chunks in memory with vectored writes (a Fetch's records read from the bucket's cache
/// are chunks of the cached bytes themselves).
async fn write_memory(wr: &mut OwnedWriteHalf, chunks: &[&Bytes]) -> std::io::Result<()> {
    let (mut i, mut at) = (0usize, 0usize);
    while i < chunks.len() {
        let slices: Vec<std::io::IoSlice<'_>> = std::iter::once(&chunks[i][at..])
            .chain(chunks[i + 1..].iter().take(63).map(|c| &c[..]))
            .map(std::io::IoSlice::new)
            .collect();
        let mut n = wr.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while i < chunks.len() && n >= chunks[i].len() - at {
            n -= chunks[i].len() - at;
            (i, at) = (i + 1, 0);
        }
        at += n;
    }
    Ok(())
}

/// Makes sure a peer that closes its connection while a file span is being sent cannot end the
/// process: `sendfile` to a reset socket raises SIGPIPE, and unlike the socket writes (which pass
/// `MSG_NOSIGNAL`) it has no flag to say otherwise. Rust programs start with SIGPIPE ignored; a
/// host that embeds the broker and left it at its default gets it ignored here, once, with a log
/// line. A handler the host installed is left alone.
pub(super) fn ignore_sigpipe() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction is a valid value for sigaction(2) to fill; passing a null
        // new action only reads the current one.
        let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: `current` is a valid, writable sigaction.
        if unsafe { libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut current) } != 0 {
            return;
        }
        if current.sa_sigaction == libc::SIG_DFL {
            // SAFETY: setting a signal's disposition to SIG_IGN has no other effect.
            unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
            tracing::info!(
                "SIGPIPE was at its default, which ends the process: now ignored (the Kafka broker sends with sendfile)"
            );
        }
    });
}

/// Sends a file span with `sendfile`, waiting for room in the socket as a write does. The span's
/// reader asked the kernel to read the bytes ahead, so they are mostly in the page cache.
async fn send_span(wr: &mut OwnedWriteHalf, span: &FileSpan) -> std::io::Result<()> {
    use std::os::fd::AsFd;
    let socket: &TcpStream = wr.as_ref();
    let mut sent = 0usize;
    while sent < span.len() {
        socket.writable().await?;
        match socket.try_io(tokio::io::Interest::WRITABLE, || span.send_to(sent, socket.as_fd())) {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the segment file ended inside a span being sent",
                ));
            }
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
