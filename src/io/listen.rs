//! The HTTP server's door: at most so many connections at once (more are closed at once, so the process never runs out of files), request headers within a few seconds, a graceful stop.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, warn};

/// A request's headers must arrive within this long (also the longest a kept-alive connection
/// waits for its next request): a half-sent request does not hold a file for ever.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Files kept aside from the HTTP connections: sockets, the database, the model, logs.
const RESERVED_FILES: u64 = 256;

/// HTTP connections to hold at once under a limit of `files` open files: half of what is left
/// after [`RESERVED_FILES`] (ICE-TCP connections get a share of the rest).
pub fn connection_limit(files: u64) -> usize {
    (files.saturating_sub(RESERVED_FILES) / 2).max(16) as usize
}

/// Counts a connection while it lives.
struct Held(Arc<AtomicUsize>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection's socket with its place in the count: a WebSocket keeps the socket after the
/// HTTP exchange ends, and with it the place.
struct Counted {
    stream: TcpStream,
    _held: Held,
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Serves `router` on `listener` until `stop` resolves: each connection in its own task,
/// HTTP/1 with upgrades (WebSockets), at most `limit` at once.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limit: usize,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let open = Arc::new(AtomicUsize::new(0));
    let (closing, closed) = watch::channel(false);
    let mut refused = 0u64;
    tokio::pin!(stop);
    loop {
        let (stream, from) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of files (or a connection reset before it was taken): wait, not spin.
                    warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if open.load(Ordering::Relaxed) >= limit {
            // Full: closed at once, so that it costs a moment rather than a file; the
            // connections held are freed by their timeouts (headers, joining) or their end.
            refused += 1;
            if refused.is_power_of_two() {
                warn!(limit, refused, "HTTP connection limit reached: new connections are closed");
            }
            drop(stream);
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let stream = Counted { stream, _held: Held(open.clone()) };
        let service = TowerToHyperService::new(router.clone());
        let mut closed = closed.clone();
        tokio::spawn(async move {
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        debug!(%from, "connection ended: {e}");
                    }
                    return;
                }
                _ = closed.changed() => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    let _ = closing.send(true);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_leaves_files_for_everything_else() {
        assert_eq!(connection_limit(1024), 384);
        assert_eq!(connection_limit(65_536), 32_640);
        assert_eq!(connection_limit(100), 16, "never none");
    }
}
