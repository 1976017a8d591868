//! `tierlog serve`: the HTTP/JSON API (see [`crate::server`]) and the Kafka-compatible broker
//! (see [`crate::kafka`]) until SIGINT or SIGTERM.

use clap::Args;

use super::Cli;
use crate::engine::Engine;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// HTTP address to listen on, or `off`. Port 0 picks a free port. The first line on stdout
    /// is JSON naming the addresses listened on: {"listening": HTTP, "kafka": KAFKA}.
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = listen_addr)]
    pub listen: Listen,
    /// Kafka listener address, or `off`. Default: `[kafka] listen` of the config
    /// (127.0.0.1:9092); port 0 picks a free port.
    #[arg(long, value_parser = listen_addr)]
    pub kafka_listen: Option<Listen>,
}

/// An address to listen on, or off.
#[derive(Debug, Clone, Copy)]
pub struct Listen(pub Option<std::net::SocketAddr>);

fn listen_addr(s: &str) -> Result<Listen, String> {
    if s == "off" {
        return Ok(Listen(None));
    }
    s.parse()
        .map(|a| Listen(Some(a)))
        .map_err(|e| format!("{s:?} is not an address like 127.0.0.1:9092, nor `off`: {e}"))
}

pub async fn run(cli: &Cli, args: &ServeArgs) -> anyhow::Result<()> {
    let cfg = cli.engine_config()?;
    let kafka_addr = match args.kafka_listen {
        Some(Listen(a)) => a,
        None => cfg.kafka.enabled.then_some(cfg.kafka.listen),
    };
    let engine = Engine::open(cfg.clone()).await?;
    let http = match args.listen.0 {
        Some(a) => Some(tokio::net::TcpListener::bind(a).await?),
        None => None,
    };
    let kafka = match kafka_addr {
        Some(a) => Some(tokio::net::TcpListener::bind(a).await?),
        None => None,
    };
    if http.is_none() && kafka.is_none() {
        anyhow::bail!("both listeners are off: nothing to serve");
    }
    let http_addr = http.as_ref().map(|l| l.local_addr()).transpose()?;
    let kafka_addr = kafka.as_ref().map(|l| l.local_addr()).transpose()?;
    for a in http_addr.iter().chain(&kafka_addr) {
        if !a.ip().is_loopback() {
            tracing::warn!(addr = %a, "serving on a non-loopback address: there is no authentication");
        }
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let signal = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut servers = tokio::task::JoinSet::new();
    // One group coordinator for both listeners: groups seen over Kafka are listed over HTTP.
    let groups = crate::groups::Coordinator::open(engine.clone(), cfg.groups.clone()).await?;
    groups.start_timers();
    if let Some(l) = kafka {
        let broker =
            crate::kafka::Broker::new(engine.clone(), cfg.kafka.clone(), groups.clone(), l.local_addr()?).await?;
        servers.spawn(crate::kafka::serve(broker, l, signal(stopped.clone())));
    }
    if let Some(l) = http {
        servers.spawn(crate::server::serve_with(engine.clone(), groups.clone(), l, signal(stopped.clone())));
    }
    println!(
        "{}",
        serde_json::json!({
            "listening": http_addr.map(|a| a.to_string()),
            "kafka": kafka_addr.map(|a| a.to_string()),
        })
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut failed = None;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        Some(done) = servers.join_next() => {
            failed = Some(match done {
                Ok(Ok(())) => anyhow::anyhow!("a listener stopped"),
                Ok(Err(e)) => anyhow::Error::from(e).context("a listener failed"),
                Err(e) => anyhow::Error::from(e).context("a listener task failed"),
            });
        }
    }
    tracing::info!("shutting down");
    let _ = stop.send(true);
    while servers.join_next().await.is_some() {}
    engine.close().await?;
    failed.map_or(Ok(()), Err)
}
