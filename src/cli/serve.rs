//! `tierlog serve`: the HTTP/JSON API (see [`crate::server`]) until SIGINT or SIGTERM.

use clap::Args;

use super::Cli;
use crate::engine::Engine;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Port 0 picks a free port (printed on stdout as the first line).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
}

pub async fn run(cli: &Cli, args: &ServeArgs) -> anyhow::Result<()> {
    let engine = Engine::open(cli.engine_config()?).await?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    println!("{}", serde_json::json!({ "listening": addr.to_string() }));
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "serving on a non-loopback address: the API has no authentication");
    }
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("invariant: a SIGTERM handler can be installed");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
    };
    let res = crate::server::serve(engine.clone(), listener, shutdown).await;
    engine.close().await?;
    Ok(res?)
}
