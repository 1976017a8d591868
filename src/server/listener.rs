//! The HTTP listener's accept loop, in place of `axum::serve`, for the limits it has no knobs for
//! (`[http]`, see [`HttpConfig`]):
//! - at most `max_connections` at once: one more is answered 503 (JSON) and closed at accept;
//! - a connection that has not sent a whole request head within `idle_timeout_ms` is closed
//!   (hyper's head timer runs from the moment a connection waits for a request, so it covers an
//!   idle keep-alive connection and one trickling its headers alike);
//! - a request body must arrive whole within `body_timeout_ms` of its head, or the request
//!   fails with 408 and the connection closes ([`DeadlineBody`], applied by the router's error
//!   middleware);
//! - heads above `max_head_bytes` get 431.
//!
//! hyper answers a request it cannot parse (a bad request line, a URI or head too long) by itself,
//! with an empty body; [`JsonErrors`] rewrites those answers on their way out into the API's
//! `{"code", "message"}` form, so that every error a client gets has it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use bytes::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};

use crate::config::HttpConfig;

/// Open HTTP connections (gauge), and connections refused at the cap (counter).
pub const CONNECTIONS: &str = "tierlog_http_connections";
pub const REFUSED: &str = "tierlog_http_connections_refused_total";

/// How long shutdown waits for requests in progress before it drops their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` until `shutdown` resolves, within `limits`; then lets requests in
/// progress finish for up to 5 s.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: HttpConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(a) => a,
                // Out of descriptors, or a connection reset before accept: the listener is fine.
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tiering::clock::real_sleep(50).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        while conns.try_join_next().is_some() {}
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::counter!(REFUSED).increment(1);
            tracing::warn!(%peer, limit = limits.max_connections, "HTTP connection limit reached; refusing");
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (app, limits, mut stop) = (app.clone(), limits.clone(), stop_rx.clone());
        conns.spawn(async move {
            metrics::gauge!(CONNECTIONS).increment(1.0);
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(Duration::from_millis(limits.idle_timeout_ms))
                .max_buf_size(limits.max_head_bytes.max(8192))
                .writev(false);
            let io = TokioIo::new(JsonErrors::new(stream));
            let conn = http.serve_connection(io, TowerToHyperService::new(app));
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = async { let _ = stop.wait_for(|s| *s).await; } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
            metrics::gauge!(CONNECTIONS).decrement(1.0);
            drop(slot);
        });
    }
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(open = conns.len(), "HTTP requests still running at shutdown; dropping their connections");
        conns.abort_all();
    }
    Ok(())
}

/// The answer to a connection over the cap.
async fn refuse(mut stream: TcpStream) {
    let body = error_body(StatusCode::SERVICE_UNAVAILABLE, "too many connections: try again later");
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&response(StatusCode::SERVICE_UNAVAILABLE, &body)).await?;
        stream.shutdown().await
    })
    .await;
}

/// `{"code", "message"}` for `status`, with the code the API uses for it.
pub(super) fn error_body(status: StatusCode, message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "code": code_for(status), "message": message }))
        .expect("invariant: a JSON value serialises")
}

/// The API's error code for a status the HTTP stack chose.
pub(super) fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "invalid",
    }
}

/// A whole HTTP/1.1 response that closes the connection.
fn response(status: StatusCode, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The message of hyper's own answer with `status` (it sends these before any route runs).
fn automatic_message(status: StatusCode) -> &'static str {
    match status {
        StatusCode::URI_TOO_LONG => "the request URI is too long",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "the request head is too large (see [http] max_head_bytes)",
        _ => "the request could not be parsed as HTTP/1.1",
    }
}

/// A connection whose automatic error answers from hyper are rewritten as JSON. hyper writes
/// such an answer as a bare head (`HTTP/1.1 4xx ...` with `content-length: 0` and no
/// content type) in one write and closes the connection after it; every answer of the router
/// has a body and a content type, so the two cannot be confused.
struct JsonErrors {
    inner: TcpStream,
    /// A rewritten answer still to be written, and how much of it was.
    pending: Option<(Vec<u8>, usize)>,
}

impl JsonErrors {
    fn new(inner: TcpStream) -> Self {
        Self { inner, pending: None }
    }

    /// The JSON form of `buf` if it is one of hyper's bare error answers.
    fn rewrite(buf: &[u8]) -> Option<Vec<u8>> {
        let head = buf.strip_prefix(b"HTTP/1.1 ")?;
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
        if end + 4 != buf.len() {
            return None;
        }
        let status = StatusCode::from_bytes(head.get(..3)?).ok()?;
        let lower = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        if !(status.is_client_error() || status.is_server_error())
            || !lower.contains("\r\ncontent-length: 0")
            || lower.contains("\r\ncontent-type:")
        {
            return None;
        }
        Some(response(status, &error_body(status, automatic_message(status))))
    }

    /// Writes what is pending; `Ready(Ok)` once nothing is.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while let Some((buf, done)) = &mut self.pending {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &buf[*done..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            *done += n;
            if *done == buf.len() {
                self.pending = None;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for JsonErrors {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for JsonErrors {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(json) = Self::rewrite(buf) {
            self.pending = Some((json, 0));
            // The caller's bytes are taken; the rewrite goes out in their place.
            let _ = self.poll_pending(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body that fails once `timeout` has passed since the request's head arrived, and
/// sets `expired` so the answer can say 408.
pub(super) struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
    expired: Arc<std::sync::atomic::AtomicBool>,
}

impl DeadlineBody {
    // A deadline on a network peer, in real time as hyper's own timers (the engine's clock is
    // for the engine's schedules).
    #[allow(clippy::disallowed_methods)]
    pub(super) fn new(inner: Body, timeout: Duration, expired: Arc<std::sync::atomic::AtomicBool>) -> Self {
        Self { inner, deadline: Box::pin(tokio::time::sleep(timeout)), timeout, expired }
    }
}

/// The error of a body that came too slowly.
#[derive(Debug)]
struct BodyTimeout(Duration);

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the request body did not arrive within {} ms (see [http] body_timeout_ms)", self.0.as_millis())
    }
}

impl std::error::Error for BodyTimeout {}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        ready!(self.deadline.as_mut().poll(cx));
        self.expired.store(true, std::sync::atomic::Ordering::SeqCst);
        Poll::Ready(Some(Err(Box::new(BodyTimeout(self.timeout)))))
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
