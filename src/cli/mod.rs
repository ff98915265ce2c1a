//! The command line: `serve`, the administration commands (run on the relay host, against the same
//! configuration and database), and `inbox`, the worker's reader that keeps the key on the device.

mod inbox;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::alias::{Address, Domain, LocalPart};
use crate::audit::{self, Actor};
use crate::clock::{Clock, SystemClock};
use crate::config::{self, Config};
use crate::crypto::{self, ServerKey};
use crate::mail::EmailAddress;
use crate::partner::{self, Fingerprint, NewOrganisation, OrgKind, OrgName};
use crate::phone::PhoneNumber;
use crate::store::Store;
use crate::tls::DevCa;
use crate::worker::{self, Handle, NewWorker, Pseudonym};
use crate::{team, App};

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
    /// Run the relay: worker API, partner API (mutual TLS) and the admin listener.
    Serve,
    /// Partner organisations (GIs and ketenpartners).
    #[command(subcommand)]
    Org(OrgCommand),
    /// Workers (jeugdbeschermers).
    #[command(subcommand)]
    Worker(WorkerCommand),
    /// Mailbox aliases.
    #[command(subcommand)]
    Alias(AliasCommand),
    /// Team mailboxes (aanmelding@, info@).
    #[command(subcommand)]
    Team(TeamCommand),
    /// The hash-chained audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Mail settings.
    #[command(subcommand)]
    Mail(MailCommand),
    /// The development CA (for demos and tests; production uses a real partner CA).
    #[command(subcommand, name = "dev-ca")]
    DevCa(DevCaCommand),
    /// Read your mailbox with a key that stays on this device.
    Inbox(inbox::InboxArgs),
}

#[derive(Subcommand)]
enum OrgCommand {
    /// Register an organisation.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        kind: OrgKind,
        /// Mail domain the organisation writes from (repeatable).
        #[arg(long = "domain")]
        domains: Vec<String>,
        /// Phone number the organisation calls or texts from (repeatable).
        #[arg(long = "phone")]
        phones: Vec<String>,
        /// Client certificate (PEM) to pin to the organisation (repeatable).
        #[arg(long = "cert")]
        certs: Vec<PathBuf>,
    },
    /// List organisations.
    List,
    /// Refuse everything from an organisation from now on.
    Disable { name: String },
    /// Accept an organisation again.
    Enable { name: String },
    /// Pin one more client certificate to an organisation (rotation).
    Pin {
        name: String,
        #[arg(long)]
        cert: PathBuf,
    },
    /// Remove a pinned certificate (retired or leaked): it is refused from now on.
    Unpin {
        name: String,
        /// SHA-256 fingerprint as `org list` shows it.
        #[arg(long)]
        fingerprint: String,
    },
}

#[derive(Subcommand)]
enum WorkerCommand {
    /// Create a worker with a personal mailbox and a first alias; prints a one-time passphrase and a
    /// TOTP provisioning URI once.
    Add(WorkerAddArgs),
    /// List workers.
    List,
    /// Revoke every API token of a worker (a lost or stolen device).
    RevokeTokens {
        #[arg(long)]
        handle: String,
    },
}

#[derive(Args)]
struct WorkerAddArgs {
    /// Pseudonymous login handle (never a real name).
    #[arg(long)]
    handle: String,
    /// The name partners see, e.g. "LET-medewerker 17".
    #[arg(long)]
    pseudonym: String,
    /// Real mobile number, for content-free notifications (stored sealed). Omit it to be asked on
    /// standard input, which keeps it out of the process list and shell history.
    #[arg(long)]
    phone: Option<String>,
    /// Real e-mail address, for content-free notifications (stored sealed). Omit it to be asked on
    /// standard input.
    #[arg(long)]
    email: Option<String>,
    /// The worker's own age recipient (age1…): the identity then never reaches the relay.
    #[arg(long)]
    recipient: Option<String>,
}

#[derive(Subcommand)]
enum AliasCommand {
    /// Give a worker a new random alias (one per case).
    Add {
        #[arg(long)]
        worker: String,
    },
    /// Burn an alias: all further mail to it is refused, at once.
    Burn { address: String },
    /// List a worker's aliases.
    List {
        #[arg(long)]
        worker: String,
    },
    /// Allow one contact (a family member, a lawyer) to mail this alias and be mailed from it.
    Allow {
        address: String,
        #[arg(long)]
        contact: String,
    },
    /// Withdraw an allowed contact.
    Disallow {
        address: String,
        #[arg(long)]
        contact: String,
    },
}

#[derive(Subcommand)]
enum TeamCommand {
    /// Create a team mailbox with an alias LOCALPART@<relay domain>.
    Add {
        name: String,
        #[arg(long = "alias", value_name = "LOCALPART")]
        local_part: String,
    },
    /// Team membership.
    #[command(subcommand)]
    Member(MemberCommand),
    /// List teams, their aliases and members.
    List,
}

#[derive(Subcommand)]
enum MemberCommand {
    /// Add a worker: messages from now on are sealed to them too.
    Add {
        team: String,
        #[arg(long)]
        worker: String,
    },
    /// Remove a worker: they no longer see the team's messages.
    Remove {
        team: String,
        #[arg(long)]
        worker: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain; exits non-zero and names the first bad row.
    Verify,
    /// Show the last rows.
    Tail {
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

#[derive(Subcommand)]
enum MailCommand {
    /// Print the DNS TXT record that publishes the relay's DKIM key.
    DkimRecord,
}

#[derive(Subcommand)]
enum DevCaCommand {
    /// Issue a client certificate for an organisation from the development CA and pin it.
    Issue {
        #[arg(long)]
        org: String,
        /// Directory to write client.pem, client-key.pem and ca.pem into.
        #[arg(long)]
        out: PathBuf,
    },
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
            eprintln!("error: {}", crate::web::error::error_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

type CliResult<T = ExitCode> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

async fn run(cli: Cli) -> CliResult {
    if let Command::Inbox(args) = cli.command {
        return inbox::run(args, cli.json).await;
    }
    let config = load_config(cli.config.as_deref())?;
    crate::prepare_data_dir(&config)?;
    let out = Output { json: cli.json };
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Org(command) => org(&config, command, &out).await,
        Command::Worker(command) => worker_cmd(&config, command, &out).await,
        Command::Alias(command) => alias_cmd(&config, command, &out).await,
        Command::Team(command) => team_cmd(&config, command, &out).await,
        Command::Audit(command) => audit_cmd(&config, command, &out).await,
        Command::DevCa(command) => dev_ca(&config, command, &out).await,
        Command::Mail(MailCommand::DkimRecord) => dkim_record(&config, &out),
        Command::Inbox(_) => unreachable!("handled above"),
    }
}

fn load_config(path: Option<&std::path::Path>) -> CliResult<Config> {
    let explicit = path.is_some();
    let path = path.unwrap_or(std::path::Path::new(config::DEFAULT_PATH));
    Ok(Config::load(path, explicit)?)
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

async fn serve(config: Config) -> CliResult {
    crate::telemetry::init();
    tracing::info!(config = ?config, "starting");
    let app = App::build(config).await?;
    tracing::info!(
        worker_api = %app.worker_addr(),
        partner_api = %app.partner_addr(),
        admin = %app.admin_addr(),
        smtp = %app.smtp_addr(),
        "listening"
    );
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(cause = %e, "cannot listen for Ctrl-C; stop with SIGTERM");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
}

async fn open_store(config: &Config) -> CliResult<Store> {
    Ok(Store::open(&config.database.url, config.database.max_connections).await?)
}

fn now() -> i64 {
    SystemClock.now_millis()
}

async fn org(config: &Config, command: OrgCommand, out: &Output) -> CliResult {
    let store = open_store(config).await?;
    let actor = Actor::current_cli_user();
    match command {
        OrgCommand::Add {
            name,
            kind,
            domains,
            phones,
            certs,
        } => {
            let new = NewOrganisation {
                name: OrgName::parse(&name)?,
                kind,
                domains: domains
                    .iter()
                    .map(|d| Domain::parse(d))
                    .collect::<Result<_, _>>()?,
                phones: phones
                    .iter()
                    .map(|p| PhoneNumber::parse(p))
                    .collect::<Result<_, _>>()?,
                certificates: certs
                    .iter()
                    .map(|path| Fingerprint::of_pem(&std::fs::read(path)?).map_err(Into::into))
                    .collect::<CliResult<_>>()?,
            };
            let name = new.name.to_string();
            partner::add(&store, now(), &actor, new).await?;
            out.show(&serde_json::json!({ "added": name }), || {
                format!("organisation {name} added")
            });
        }
        OrgCommand::List => {
            let orgs = partner::list(&store).await?;
            out.show(&orgs, || {
                orgs.iter()
                    .map(|o| {
                        format!(
                            "{}\t{}\t{}\tdomains: {}\tphones: {}\tcertificates: {}",
                            o.name,
                            o.kind,
                            if o.enabled { "enabled" } else { "disabled" },
                            o.domains.join(","),
                            o.phones.join(","),
                            o.certificates.len()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        OrgCommand::Disable { name } => {
            let name = OrgName::parse(&name)?;
            partner::set_enabled(&store, now(), &actor, &name, false).await?;
            out.show(&serde_json::json!({ "disabled": name }), || {
                format!("organisation {name} disabled")
            });
        }
        OrgCommand::Enable { name } => {
            let name = OrgName::parse(&name)?;
            partner::set_enabled(&store, now(), &actor, &name, true).await?;
            out.show(&serde_json::json!({ "enabled": name }), || {
                format!("organisation {name} enabled")
            });
        }
        OrgCommand::Unpin { name, fingerprint } => {
            let name = OrgName::parse(&name)?;
            let fingerprint = Fingerprint::parse(&fingerprint)?;
            partner::unpin_certificate(&store, now(), &actor, &name, &fingerprint).await?;
            out.show(
                &serde_json::json!({ "organisation": name, "unpinned": fingerprint }),
                || {
                    format!(
                        "certificate {} no longer admits {name}",
                        fingerprint.as_str()
                    )
                },
            );
        }
        OrgCommand::Pin { name, cert } => {
            let name = OrgName::parse(&name)?;
            let fingerprint = Fingerprint::of_pem(&std::fs::read(&cert)?)?;
            partner::pin_certificate(&store, now(), &actor, &name, &fingerprint).await?;
            out.show(
                &serde_json::json!({ "organisation": name, "pinned": fingerprint }),
                || format!("certificate {} pinned to {name}", fingerprint.as_str()),
            );
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn worker_cmd(config: &Config, command: WorkerCommand, out: &Output) -> CliResult {
    let store = open_store(config).await?;
    match command {
        WorkerCommand::Add(args) => {
            let server_key = ServerKey::load_or_create(&config.crypto.server_key)?;
            let handle = Handle::parse(&args.handle)?;
            let pseudonym = Pseudonym::parse(&args.pseudonym)?;
            let phone = match args.phone {
                Some(phone) => phone,
                None => ask("Real mobile number (for notifications): ")?,
            };
            let email = match args.email {
                Some(email) => email,
                None => ask("Real e-mail address (for notifications): ")?,
            };
            let new = NewWorker {
                handle,
                pseudonym,
                phone: PhoneNumber::parse(&phone)?,
                email: EmailAddress::parse(&email)?,
                recipient: args
                    .recipient
                    .as_deref()
                    .map(crypto::parse_recipient)
                    .transpose()?,
            };
            let crypto_ctx = worker::Crypto {
                server_key: &server_key,
                scrypt_work_factor: config.crypto.scrypt_work_factor,
            };
            let created = worker::create(
                &store,
                &crypto_ctx,
                &config.domain(),
                now(),
                &Actor::current_cli_user(),
                new,
            )
            .await?;
            out.show(&created, || {
                use age::secrecy::ExposeSecret;
                format!(
                    "worker {} ({}) added\n\
                     alias:      {}\n\
                     key:        {}\n\
                     passphrase: {}   (one-time: shown once, must be changed at first login)\n\
                     totp:       {}",
                    created.handle,
                    created.pseudonym,
                    created.alias,
                    match created.key_custody {
                        worker::KeyCustody::Server => "generated, wrapped under the passphrase",
                        worker::KeyCustody::Device => "on the worker's device",
                    },
                    created.passphrase.expose_secret(),
                    created.totp_uri
                )
            });
        }
        WorkerCommand::RevokeTokens { handle } => {
            let worker = worker::find(&store, &Handle::parse(&handle)?).await?;
            let revoked =
                worker::revoke_api_tokens(&store, now(), &Actor::current_cli_user(), &worker)
                    .await?;
            out.show(
                &serde_json::json!({ "handle": handle, "revoked": revoked }),
                || format!("{revoked} API token(s) of {handle} revoked"),
            );
        }
        WorkerCommand::List => {
            let workers = worker::list(&store).await?;
            out.show(&workers, || {
                workers
                    .iter()
                    .map(|w| format!("{}\t{}\t{:?}", w.handle, w.pseudonym, w.key_custody))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// One line from standard input, with a prompt on stderr when a person is typing.
fn ask(prompt: &str) -> CliResult<String> {
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

async fn alias_cmd(config: &Config, command: AliasCommand, out: &Output) -> CliResult {
    let store = open_store(config).await?;
    let actor = Actor::current_cli_user();
    match command {
        AliasCommand::Add { worker } => {
            let worker = worker::find(&store, &Handle::parse(&worker)?).await?;
            let address =
                worker::add_alias(&store, &config.domain(), now(), &actor, &worker).await?;
            out.show(&serde_json::json!({ "address": address }), || {
                address.to_string()
            });
        }
        AliasCommand::Burn { address } => {
            let address = Address::parse(&address)?;
            crate::alias::burn_audited(&store, now(), &actor, &address).await?;
            out.show(&serde_json::json!({ "burned": address }), || {
                format!("alias {address} burned: all further mail to it is refused")
            });
        }
        AliasCommand::Allow { address, contact } => {
            let (address, contact) = (Address::parse(&address)?, EmailAddress::parse(&contact)?);
            let keys = ServerKey::load_or_create(&config.crypto.server_key)?;
            partner::allow_contact(&store, &keys, now(), &actor, &address, &contact).await?;
            out.show(
                &serde_json::json!({ "alias": address, "allowed": true }),
                || format!("{contact} may now write to {address} (only the keyed hash is stored)"),
            );
        }
        AliasCommand::Disallow { address, contact } => {
            let (address, contact) = (Address::parse(&address)?, EmailAddress::parse(&contact)?);
            let keys = ServerKey::load_or_create(&config.crypto.server_key)?;
            partner::disallow_contact(&store, &keys, now(), &actor, &address, &contact).await?;
            out.show(
                &serde_json::json!({ "alias": address, "allowed": false }),
                || format!("{contact} may no longer write to {address}"),
            );
        }
        AliasCommand::List { worker } => {
            let worker = worker::find(&store, &Handle::parse(&worker)?).await?;
            let aliases = crate::alias::list_for_mailbox(&store, &worker.mailbox_id).await?;
            out.show(&aliases, || {
                aliases
                    .iter()
                    .map(|a| {
                        format!(
                            "{}\t{}",
                            a.address,
                            if a.burned { "burned" } else { "live" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn team_cmd(config: &Config, command: TeamCommand, out: &Output) -> CliResult {
    let store = open_store(config).await?;
    let actor = Actor::current_cli_user();
    match command {
        TeamCommand::Add { name, local_part } => {
            let name = Handle::parse(&name)?;
            let address = team::add(
                &store,
                &config.domain(),
                now(),
                &actor,
                &name,
                &LocalPart::parse(&local_part)?,
            )
            .await?;
            out.show(
                &serde_json::json!({ "team": name, "address": address }),
                || format!("team {name} added with alias {address}"),
            );
        }
        TeamCommand::Member(MemberCommand::Add { team, worker }) => {
            let (team, worker) = (Handle::parse(&team)?, Handle::parse(&worker)?);
            team::add_member(&store, now(), &actor, &team, &worker).await?;
            out.show(
                &serde_json::json!({ "team": team, "added": worker }),
                || format!("{worker} is now a member of {team}"),
            );
        }
        TeamCommand::Member(MemberCommand::Remove { team, worker }) => {
            let (team, worker) = (Handle::parse(&team)?, Handle::parse(&worker)?);
            team::remove_member(&store, now(), &actor, &team, &worker).await?;
            out.show(
                &serde_json::json!({ "team": team, "removed": worker }),
                || format!("{worker} is no longer a member of {team}"),
            );
        }
        TeamCommand::List => {
            let teams = team::list(&store).await?;
            out.show(&teams, || {
                teams
                    .iter()
                    .map(|t| {
                        format!(
                            "{}\taliases: {}\tmembers: {}",
                            t.name,
                            t.aliases
                                .iter()
                                .map(|a| a.address.as_str())
                                .collect::<Vec<_>>()
                                .join(","),
                            t.members.join(",")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn audit_cmd(config: &Config, command: AuditCommand, out: &Output) -> CliResult {
    let store = open_store(config).await?;
    let code = match command {
        AuditCommand::Verify => match audit::verify(&store).await? {
            Ok(verified) => {
                out.show(&verified, || {
                    format!(
                        "audit log intact: {} rows, head {}",
                        verified.rows, verified.head_hash
                    )
                });
                ExitCode::SUCCESS
            }
            Err(broken) => {
                out.show(&broken, || broken.to_string());
                ExitCode::FAILURE
            }
        },
        AuditCommand::Tail { limit } => {
            let rows = audit::tail(&store, limit.clamp(1, 10_000)).await?;
            out.show(&rows, || {
                rows.iter()
                    .map(|r| {
                        format!(
                            "{}\t{}\t{}\t{}\t{}\t{}",
                            r.seq,
                            crate::clock::rfc3339(r.at),
                            r.actor,
                            r.action,
                            r.subject,
                            r.detail
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            ExitCode::SUCCESS
        }
    };
    store.close().await;
    Ok(code)
}

fn dkim_record(config: &Config, out: &Output) -> CliResult {
    let records = crate::mail::dkim::DkimKey::from_config(config)?.dns_records();
    out.show(&records, || records.to_string().trim_end().to_string());
    Ok(ExitCode::SUCCESS)
}

async fn dev_ca(config: &Config, command: DevCaCommand, out: &Output) -> CliResult {
    let DevCaCommand::Issue { org, out: dir } = command;
    let name = OrgName::parse(&org)?;
    let store = open_store(config).await?;
    let ca = DevCa::load_or_create(&config.dev_ca_dir())?;
    let issued = ca.issue_client(name.as_str())?;
    let fingerprint = Fingerprint::of_pem(issued.cert_pem.as_bytes())?;
    partner::pin_certificate(
        &store,
        now(),
        &Actor::current_cli_user(),
        &name,
        &fingerprint,
    )
    .await?;
    std::fs::create_dir_all(&dir)?;
    let key_path = dir.join("client-key.pem");
    if key_path.exists() {
        std::fs::remove_file(&key_path)?;
    }
    crypto::write_private_file(&key_path, issued.key_pem.as_bytes())?;
    std::fs::write(dir.join("client.pem"), &issued.cert_pem)?;
    std::fs::write(dir.join("ca.pem"), ca.cert_pem())?;
    store.close().await;
    out.show(
        &serde_json::json!({
            "organisation": name,
            "fingerprint": fingerprint,
            "certificate": dir.join("client.pem"),
            "key": key_path,
            "ca": dir.join("ca.pem"),
        }),
        || {
            format!(
                "client certificate for {name} written to {} (pinned, sha256 {})",
                dir.display(),
                fingerprint.as_str()
            )
        },
    );
    Ok(ExitCode::SUCCESS)
}
