//! `keel server` (the MLflow-compatible tracking/registry API) and
//! `keel token create` (credentials for it).

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{block_on, print_json, Global};

/// `keel server [--host 127.0.0.1] [--port 5000] [--auth] [--sync]`.
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Address to listen on. A non-loopback address requires --auth.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 5000)]
    port: u16,
    /// Require a token (`keel token create`) on every request.
    #[arg(long)]
    auth: bool,
    /// Extra host name clients may address the server by (repeatable);
    /// without --auth only loopback names are accepted.
    #[arg(long = "allowed-host", value_name = "NAME")]
    allowed_hosts: Vec<String>,
    /// Answer tracking writes only once fsynced (they survive a power cut).
    /// Default: once written to SQLite's WAL (they survive a kill of the
    /// server), with the WAL fsynced every 100 ms. PostgreSQL: its own
    /// setting decides.
    #[arg(long)]
    sync: bool,
}

/// Runs `keel server` until Ctrl-C.
pub fn run(g: &Global, args: ServerArgs) -> anyhow::Result<ExitCode> {
    let store = g.store()?;
    if args.sync {
        store.db.set_durability(keel_store::Durability::Disk)?;
    }
    let addr = SocketAddr::new(args.host, args.port);
    let require_auth = args.auth || !args.host.is_loopback();
    block_on(async move {
        if require_auth && keel_store::tracking::tokens::all(&store).await?.is_empty() {
            anyhow::bail!("authentication is required (--auth or a non-loopback --host) but no token exists; mint one with `keel token create NAME`");
        }
        let mut config = keel_server::Config::loopback();
        config.require_auth = require_auth;
        if !args.host.is_loopback() && args.allowed_hosts.is_empty() {
            config.allowed_hosts = None;
        } else if let Some(list) = config.allowed_hosts.as_mut() {
            list.extend(args.allowed_hosts.iter().cloned());
        }
        let server = keel_server::spawn(store, addr, config).await?;
        eprintln!(
            "keel server: listening on http://{} (MLFLOW_TRACKING_URI=http://{}){}",
            server.addr,
            server.addr,
            if require_auth { ", token required" } else { "" }
        );
        tokio::signal::ctrl_c().await?;
        eprintln!("keel server: shutting down");
        server.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// `keel token …`.
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Mint an API token for NAME (shown once; stored only as a hash).
    Create {
        /// Who the token is for; recorded as the actor of its requests.
        name: String,
    },
}

/// Runs `keel token …`.
pub fn token(g: &Global, cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    let store = g.store()?;
    match cmd {
        TokenCommand::Create { name } => {
            let t = block_on(keel_store::tracking::tokens::create(&store, &name))?;
            if g.json {
                print_json(
                    &serde_json::json!({"token_id": t.token_id, "name": t.name, "token": t.secret}),
                );
            } else {
                eprintln!(
                    "token {} for {} (shown once; keel stores only its hash):",
                    t.token_id, t.name
                );
                println!("{}", t.secret);
                eprintln!("use it as MLFLOW_TRACKING_TOKEN, or as MLFLOW_TRACKING_PASSWORD with any user name");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
