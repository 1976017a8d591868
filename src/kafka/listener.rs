//! Accepts Kafka client connections until shutdown, at most `max_connections` at once.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::Broker;

/// Serves Kafka clients on `listener` until `shutdown` resolves; then closes every connection
/// (requests in flight are dropped: what was acknowledged is durable, and a client retries what
/// was not answered) and returns.
pub async fn serve(
    broker: Arc<Broker>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(broker.config.max_connections));
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: this connection is lost, the
                        // listener is not.
                        tracing::warn!(error = %e, "accepting a Kafka connection failed");
                        tiering::clock::real_sleep(10).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, limit = broker.config.max_connections, "Kafka connection limit reached; closing");
                    metrics::counter!(super::CLOSED, "reason" => "connection_limit").increment(1);
                    drop(stream);
                    continue;
                };
                let broker = broker.clone();
                conns.spawn(async move {
                    let _slot = slot;
                    super::conn::run(broker, stream, peer).await;
                });
            }
        }
    }
    conns.shutdown().await;
    Ok(())
}
