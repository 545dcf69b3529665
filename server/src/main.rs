//! The `teleconsult` command: serve (default), migrate, and bootstrap administration.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use teleconsult::app::{shutdown_signal, Application};
use teleconsult::auth::Role;
use teleconsult::config::Config;
use teleconsult::db::Db;
use teleconsult::directory::{self, NewOrganisation, NewUser};

#[derive(Parser)]
#[command(name = "teleconsult", version, about = "Telemedicine remote-consultation server")]
struct Cli {
    /// TOML configuration file (overridden by TELECONSULT_* environment variables).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Load the demo consortium into an empty database (serves loopback only).
    #[arg(long, global = true)]
    demo: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default): HTTP API, signaling and the web client.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Bootstrap a deployment without demo data.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an organisation and print its id.
    CreateOrg {
        #[arg(long)]
        name: String,
        /// tertiary_hospital, community_health_centre or medical_corner
        #[arg(long)]
        kind: String,
        #[arg(long, default_value = "")]
        address: String,
    },
    /// Create a user account and print its id. The password is read from TELECONSULT_NEW_PASSWORD.
    CreateUser(CreateUserArgs),
}

#[derive(Args)]
struct CreateUserArgs {
    #[arg(long)]
    username: String,
    #[arg(long)]
    display_name: String,
    /// admin, coordinator, community_doctor, expert or patient
    #[arg(long)]
    role: String,
    #[arg(long)]
    organisation_id: String,
    /// For experts: resident, attending, associate_chief or chief
    #[arg(long)]
    title: Option<String>,
    /// For experts: comma-separated specialty codes
    #[arg(long, value_delimiter = ',')]
    specialties: Vec<String>,
    #[arg(long, env = "TELECONSULT_NEW_PASSWORD", hide_env_values = true)]
    password: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref(), std::env::vars())?;
    if cli.demo {
        config.demo = true;
    }
    teleconsult::observability::init_logging(&config.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            tracing::info!("configuration:\n{config}");
            let app = Application::build(config).await?;
            tracing::info!("listening on http://{}", app.local_addr());
            app.run_until(shutdown_signal()).await?;
            tracing::info!("stopped");
        }
        Command::Migrate => {
            let db = connect(&config).await?;
            db.migrate().await?;
            println!("migrations applied");
        }
        Command::Admin(cmd) => {
            let db = connect(&config).await?;
            db.migrate().await?;
            match cmd {
                AdminCommand::CreateOrg { name, kind, address } => {
                    let id = directory::create_organisation(&db, &NewOrganisation { name, kind, address }).await?;
                    println!("{id}");
                }
                AdminCommand::CreateUser(a) => {
                    let role: Role = a.role.parse()?;
                    let expert = a.title.map(|title| directory::NewExpertProfile {
                        title,
                        specialties: a.specialties,
                        time_zone: None,
                    });
                    let id = directory::create_user(
                        &db,
                        &NewUser {
                            username: a.username,
                            display_name: a.display_name,
                            password: a.password,
                            role,
                            organisation_id: a.organisation_id,
                            department_id: None,
                            expert,
                            patient_id: None,
                        },
                    )
                    .await?;
                    println!("{id}");
                }
            }
        }
    }
    Ok(())
}

async fn connect(config: &Config) -> anyhow::Result<Db> {
    std::fs::create_dir_all(&config.data_dir)?;
    Db::connect(&config.effective_database_url()).await
}
