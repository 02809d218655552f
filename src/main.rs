//! The `directrix` command: `serve` (default), `migrate`, `bootstrap`.

use clap::{Parser, Subcommand};
use directrix::app::App;
use directrix::config::Config;
use directrix::db::{bootstrap, pool};
use secrecy::ExposeSecret;

// glibc's allocator showed up as ~15% of a point read's CPU (many small short-lived buffers per
// request, freed on other threads); mimalloc's thread-local free lists are much cheaper here.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "directrix",
    version,
    about = "A real-time backend that speaks the Directus API"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default). Without DB_* settings, manages its own PostgreSQL under DATA_DIR.
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Apply migrations, create the first admin if the database is new, and exit.
    Bootstrap,
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load()?;
    directrix::telemetry::init(&config.log_level, config.log_style);
    tracing::debug!(?config, "configuration");
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => App::build(config).await?.run().await,
        Command::Migrate => prepare(&config, false).await,
        Command::Bootstrap => prepare(&config, true).await,
    }
}

/// Opens the database, migrates, bootstraps if asked, and stops the embedded cluster if we
/// started it.
async fn prepare(config: &Config, run_bootstrap: bool) -> anyhow::Result<()> {
    let database = pool::open(config).await?;
    let result = async {
        bootstrap::migrate(&database.pool).await?;
        println!("Migrations applied.");
        if run_bootstrap {
            let outcome = bootstrap::bootstrap(
                &database.pool,
                &config.admin_email,
                config.admin_password.as_ref(),
                config.admin_token.as_ref(),
            )
            .await?;
            match outcome.admin_created {
                Some((email, generated)) => {
                    println!("Admin user created. Email: {email}");
                    if let Some(password) = generated {
                        println!("Password: {} (shown once)", password.expose_secret());
                    }
                }
                None => println!("Database already bootstrapped."),
            }
        }
        anyhow::Ok(())
    }
    .await;
    database.pool.close().await;
    if let Some(cluster) = database.cluster {
        tokio::task::spawn_blocking(move || cluster.stop()).await??;
    }
    result
}
