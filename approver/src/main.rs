//! `scopegate-approver serve | account add | account list`.

use clap::{Parser, Subcommand};
use scopegate_approver::app::Trusted;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "scopegate-approver",
    version,
    about = "scopegate's approval inbox"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the inbox: the agents' API and the approvers' pages.
    Serve(Box<Serve>),
    /// Approver accounts (password sign-in).
    #[command(subcommand)]
    Account(Account),
}

#[derive(clap::Args)]
struct Serve {
    /// The bundle the gateways enforce (its `approvals` section: approvers, challenge key).
    #[arg(long)]
    bundle: PathBuf,
    /// `sqlite://FILE` (created when missing) or `postgres://USER@HOST/DB`.
    #[arg(long, default_value = "sqlite://scopegate-approver.db")]
    db: String,
    /// Address to listen on (the pages, and the API unless --api-listen is given).
    #[arg(long, default_value = "127.0.0.1:8300")]
    listen: SocketAddr,
    /// Serve the agents' API (/v1) on this address instead, apart from the pages: then
    /// only the SSO proxy needs to reach --listen.
    #[arg(long)]
    api_listen: Option<SocketAddr>,
    /// The URL people reach the inbox at (links, cookies' `Secure`, the `Origin` forms must
    /// come from); the bundle's `approvals.inbox_url` names the same place. Default:
    /// `http://<listen>`.
    #[arg(long)]
    public_url: Option<String>,
    /// An approver's private key the inbox signs with when they approve: NAME=FILE
    /// (repeatable; `scopegate approver new` writes the file).
    #[arg(long = "key", value_name = "NAME=FILE")]
    keys: Vec<String>,
    /// Webhook for each new challenge (Slack-compatible JSON). Default: the
    /// `SCOPEGATE_APPROVER_WEBHOOK` environment variable (webhook URLs are secrets).
    #[arg(long)]
    webhook: Option<String>,
    /// Sign people in by this header, set by an SSO proxy (e.g. `x-forwarded-user`) ...
    #[arg(long, requires = "trusted_proxy")]
    trusted_header: Option<String>,
    /// ... accepted only from these proxy addresses (repeatable).
    #[arg(long, requires = "trusted_header")]
    trusted_proxy: Vec<std::net::IpAddr>,
    /// How long a sign-in lasts.
    #[arg(long, default_value = "8h")]
    session_ttl: String,
    /// How long a token the inbox signs stays valid (at most 24h).
    #[arg(long, default_value = "10m")]
    token_ttl: String,
}

#[derive(Subcommand)]
enum Account {
    /// Adds (or resets the password of) an approver's account. The password is read from
    /// `SCOPEGATE_APPROVER_PASSWORD` or the first line of stdin.
    Add {
        #[arg(long, default_value = "sqlite://scopegate-approver.db")]
        db: String,
        /// The bundle: the account must be one of its approvers.
        #[arg(long)]
        bundle: PathBuf,
        #[arg(long)]
        name: String,
    },
    /// Lists the accounts.
    List {
        #[arg(long, default_value = "sqlite://scopegate-approver.db")]
        db: String,
    },
}

fn span(s: &str, what: &str) -> Result<i64, String> {
    scopegate_engine::time::parse_span_secs(s)
        .ok_or_else(|| format!("--{what} `{s}`: a span such as 10m or 8h"))
}

#[tokio::main]
async fn main() {
    if let Err(e) = run(Cli::parse()).await {
        eprintln!("scopegate-approver: {e}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve(s) => serve(*s).await,
        Command::Account(Account::Add { db, bundle, name }) => {
            let json = std::fs::read(&bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
            let b = scopegate_engine::bundle::parse(&json).map_err(|e| format!("bundle: {e}"))?;
            let listed = b
                .approvals
                .as_ref()
                .is_some_and(|a| a.approvers.iter().any(|x| x.name == name));
            if !listed {
                return Err(format!("`{name}` is not an approver of this bundle"));
            }
            let password = match std::env::var("SCOPEGATE_APPROVER_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    let mut line = String::new();
                    std::io::stdin()
                        .lock()
                        .read_line(&mut line)
                        .map_err(|e| e.to_string())?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            if password.chars().count() < 12 {
                return Err("a password of at least 12 characters".into());
            }
            let hash = scopegate_approver::password::hash(&password)?;
            let pool = scopegate_approver::store::open(&db)
                .await
                .map_err(|e| e.to_string())?;
            let now = (scopegate_approver::system_clock())().div_euclid(1000);
            scopegate_approver::store::add_account(&pool, &name, &hash, now)
                .await
                .map_err(|e| e.to_string())?;
            eprintln!("account `{name}` ready");
            Ok(())
        }
        Command::Account(Account::List { db }) => {
            let pool = scopegate_approver::store::open(&db)
                .await
                .map_err(|e| e.to_string())?;
            for name in scopegate_approver::store::accounts(&pool)
                .await
                .map_err(|e| e.to_string())?
            {
                println!("{name}");
            }
            Ok(())
        }
    }
}

async fn serve(s: Serve) -> Result<(), String> {
    let bundle = std::fs::read(&s.bundle).map_err(|e| format!("{}: {e}", s.bundle.display()))?;
    let mut key_files = Vec::new();
    for k in &s.keys {
        let (name, file) = k
            .split_once('=')
            .ok_or_else(|| format!("--key `{k}`: expected NAME=FILE"))?;
        key_files.push((name.to_string(), PathBuf::from(file)));
    }
    let public_url = s
        .public_url
        .unwrap_or_else(|| format!("http://{}", s.listen));
    let trusted = s.trusted_header.map(|header| Trusted {
        header: header.to_ascii_lowercase(),
        proxies: s.trusted_proxy.clone(),
    });
    let app = scopegate_approver::build(scopegate_approver::Config {
        bundle,
        db: s.db.clone(),
        public_url: public_url.clone(),
        key_files,
        webhook: s
            .webhook
            .or_else(|| std::env::var("SCOPEGATE_APPROVER_WEBHOOK").ok()),
        trusted,
        session_ttl_secs: span(&s.session_ttl, "session-ttl")?,
        token_ttl_secs: span(&s.token_ttl, "token-ttl")?,
        clock: scopegate_approver::system_clock(),
    })
    .await?;
    let signing: Vec<&String> = app.keys.keys().collect();
    eprintln!(
        "scopegate-approver: {} approvers in the bundle, signing keys held for {:?}; database {}",
        app.approvers.len(),
        signing,
        scopegate_approver::redact(&s.db)
    );
    let app = Arc::new(app);
    let listener = tokio::net::TcpListener::bind(s.listen)
        .await
        .map_err(|e| format!("listen on {}: {e}", s.listen))?;
    eprintln!(
        "scopegate-approver: inbox at {public_url} (listening on {})",
        s.listen
    );
    let shutdown = || async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match s.api_listen {
        None => axum::serve(
            listener,
            scopegate_approver::app::router(app)
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(|e| e.to_string()),
        Some(api_addr) => {
            let (api, pages) = scopegate_approver::app::split(app);
            let api_listener = tokio::net::TcpListener::bind(api_addr)
                .await
                .map_err(|e| format!("listen on {api_addr}: {e}"))?;
            eprintln!("scopegate-approver: agents' API on {api_addr}");
            let a = axum::serve(
                api_listener,
                api.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(shutdown());
            let p = axum::serve(
                listener,
                pages.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(shutdown());
            tokio::try_join!(async { a.await }, async { p.await })
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    }
}
