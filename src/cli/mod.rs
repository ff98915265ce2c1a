//! The command line: `serve`, the administration commands (run on the relay host, against the same
//! configuration and database; one file per command group, each over one `Admin` context), and
//! `inbox`, the worker's reader that keeps the key on the device.

mod alias;
mod audit;
mod dev_ca;
mod inbox;
mod mail;
mod oncall;
mod org;
mod phone;
mod serve;
mod team;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::audit::Actor;
use crate::clock::{Clock, Millis, SystemClock};
use crate::config::{self, Config};
use crate::crypto::ServerKey;
use crate::store::Store;

#[derive(Parser)]
#[command(
    name = "schuilnaam",
    version,
    about = "Secure pseudonymous contact relay"
)]
pub struct Cli {
    /// Configuration file laid over the embedded default.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay: worker API, partner API (mutual TLS), SMTP and the admin listener.
    Serve,
    /// Partner organisations (GIs and ketenpartners).
    #[command(subcommand)]
    Org(org::OrgCommand),
    /// Workers (jeugdbeschermers).
    #[command(subcommand)]
    Worker(worker::WorkerCommand),
    /// Mailbox aliases.
    #[command(subcommand)]
    Alias(alias::AliasCommand),
    /// Phone aliases: the number pool, assigning and burning numbers.
    #[command(subcommand)]
    Phone(phone::PhoneCommand),
    /// Team mailboxes (aanmelding@, info@).
    #[command(subcommand)]
    Team(team::TeamCommand),
    /// The hash-chained audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Mail settings.
    #[command(subcommand)]
    Mail(mail::MailCommand),
    /// The 24/7 on-call duty: rotas, overrides, escalation policies, alerts.
    #[command(subcommand)]
    Oncall(oncall::OnCallCommand),
    /// The development CA (for demos and tests; production uses a real partner CA).
    #[command(subcommand, name = "dev-ca")]
    DevCa(dev_ca::DevCaCommand),
    /// Read your mailbox with a key that stays on this device.
    Inbox(inbox::InboxArgs),
}

/// Parses the command line and runs it; the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", crate::error::error_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

type CliResult<T = ExitCode> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

async fn run(cli: Cli) -> CliResult {
    let out = Output { json: cli.json };
    let command = match cli.command {
        Command::Inbox(args) => return inbox::run(args, cli.json).await,
        Command::Serve => {
            let config = load_config(cli.config.as_deref())?;
            crate::prepare_data_dir(&config)?;
            return serve::run(config).await;
        }
        Command::Mail(command) => {
            let config = load_config(cli.config.as_deref())?;
            crate::prepare_data_dir(&config)?;
            return mail::run(&config, command, &out);
        }
        command => command,
    };
    let config = load_config(cli.config.as_deref())?;
    crate::prepare_data_dir(&config)?;
    let admin = Admin::open(config, out).await?;
    let code = match command {
        Command::Org(command) => org::run(&admin, command).await,
        Command::Worker(command) => worker::run(&admin, command).await,
        Command::Alias(command) => alias::run(&admin, command).await,
        Command::Team(command) => team::run(&admin, command).await,
        Command::Phone(command) => phone::run(&admin, command).await,
        Command::Oncall(command) => oncall::run(&admin, command).await,
        Command::Audit(command) => audit::run(&admin, command).await,
        Command::DevCa(command) => dev_ca::run(&admin, command).await,
        Command::Inbox(_) | Command::Serve | Command::Mail(_) => unreachable!("handled above"),
    };
    admin.store.close().await;
    code
}

fn load_config(path: Option<&std::path::Path>) -> CliResult<Config> {
    let explicit = path.is_some();
    let path = path.unwrap_or(std::path::Path::new(config::DEFAULT_PATH));
    Ok(Config::load(path, explicit)?)
}

/// What every administration command works with: the configuration, the store, who is acting (the
/// operating-system account, for the audit log) and how to print.
struct Admin {
    config: Config,
    store: Store,
    actor: Actor,
    out: Output,
}

impl Admin {
    async fn open(config: Config, out: Output) -> CliResult<Self> {
        let store = Store::open(&config.database.url, config.database.max_connections).await?;
        Ok(Self {
            config,
            store,
            actor: Actor::current_cli_user(),
            out,
        })
    }

    fn now(&self) -> Millis {
        SystemClock.now_millis()
    }

    /// The server key (created on first use, like `serve` does).
    fn server_key(&self) -> CliResult<ServerKey> {
        Ok(ServerKey::load_or_create(&self.config.crypto.server_key)?)
    }
}

struct Output {
    json: bool,
}

impl Output {
    /// Prints JSON, or the human text.
    fn show<T: Serialize>(&self, value: &T, human: impl FnOnce() -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).expect("output serialises")
            );
        } else {
            println!("{}", human());
        }
    }
}

pub(super) fn ask(prompt: &str) -> CliResult<String> {
    use std::io::{BufRead, IsTerminal, Write};
    if std::io::stdin().is_terminal() {
        eprint!("{prompt}");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line)? == 0 {
        return Err(format!("no answer on standard input to: {}", prompt.trim()).into());
    }
    Ok(line.trim().to_string())
}
