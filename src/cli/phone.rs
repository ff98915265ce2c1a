//! Phone aliases: the number pool, assigning numbers, burning them, and workers' hours.

use std::process::ExitCode;

use clap::Subcommand;

use super::{Admin, CliResult};
use crate::alias::Address;
use crate::phone::routing::Hours;
use crate::phone::{pool, ring, PhoneNumber};
use crate::worker::{self, Handle};

#[derive(Subcommand)]
pub(super) enum PhoneCommand {
    /// The pool of rented numbers.
    #[command(subcommand)]
    Pool(PoolCommand),
    /// Give a worker's or a team's alias a number from the pool.
    Assign {
        #[arg(long, conflicts_with = "team", required_unless_present = "team")]
        worker: Option<String>,
        #[arg(long)]
        team: Option<String>,
        /// This number (it must be free); default: the first free one.
        #[arg(long)]
        number: Option<String>,
        /// This alias of the mailbox; default: its oldest live alias.
        #[arg(long)]
        alias: Option<String>,
    },
    /// Burn a number: calls and texts to it are refused at once; it returns to the pool only after
    /// the quarantine ([phone] quarantine_days).
    Burn { number: String },
    /// When a worker's phone rings (Europe/Amsterdam); outside these hours calls go to voicemail.
    Hours {
        #[arg(long)]
        worker: String,
        /// HH:MM
        #[arg(long, requires = "until", conflicts_with = "always")]
        from: Option<String>,
        /// HH:MM (before --from: the window runs past midnight)
        #[arg(long, requires = "from")]
        until: Option<String>,
        /// Ring at any hour (the default).
        #[arg(long, required_unless_present = "from")]
        always: bool,
    },
}

#[derive(Subcommand)]
pub(super) enum PoolCommand {
    /// Add rented numbers to the pool (free).
    Add {
        #[arg(required = true)]
        numbers: Vec<String>,
    },
    /// Every number: free, assigned (to which alias and mailbox), or quarantined until when.
    List,
}

pub(super) async fn run(admin: &Admin, command: PhoneCommand) -> CliResult {
    match command {
        PhoneCommand::Pool(PoolCommand::Add { numbers }) => {
            let numbers = numbers
                .iter()
                .map(|n| PhoneNumber::parse(n))
                .collect::<Result<Vec<_>, _>>()?;
            pool::add(&admin.store, admin.now(), &admin.actor, &numbers).await?;
            let added: Vec<&str> = numbers.iter().map(PhoneNumber::as_str).collect();
            admin.out.show(&serde_json::json!({ "added": added }), || {
                format!("{} number(s) added to the pool", added.len())
            });
        }
        PhoneCommand::Pool(PoolCommand::List) => {
            let entries = pool::list(&admin.store, admin.now()).await?;
            admin.out.show(&entries, || {
                entries
                    .iter()
                    .map(|e| match e.state {
                        pool::PoolState::Free => format!("{}\tfree", e.number),
                        pool::PoolState::Assigned => format!(
                            "{}\tassigned\t{}\t{}",
                            e.number,
                            e.alias.as_deref().unwrap_or_default(),
                            e.owner.as_deref().unwrap_or_default()
                        ),
                        pool::PoolState::Quarantined => format!(
                            "{}\tquarantined until {}",
                            e.number,
                            e.quarantined_until.as_deref().unwrap_or_default()
                        ),
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        PhoneCommand::Assign {
            worker,
            team,
            number,
            alias,
        } => {
            let mailbox_id = match (&worker, &team) {
                (Some(handle), _) => {
                    worker::find(&admin.store, &Handle::parse(handle)?)
                        .await?
                        .mailbox_id
                }
                (None, Some(team)) => {
                    pool::team_mailbox(&admin.store, Handle::parse(team)?.as_str()).await?
                }
                (None, None) => return Err("give --worker or --team".into()),
            };
            let alias = match alias {
                Some(alias) => {
                    let alias = Address::parse(&alias)?;
                    if crate::alias::mailbox_of(&admin.store, &alias).await? != mailbox_id {
                        return Err("that alias does not belong to this worker or team".into());
                    }
                    alias
                }
                None => pool::first_live_alias(&admin.store, &mailbox_id).await?,
            };
            let number = number.as_deref().map(PhoneNumber::parse).transpose()?;
            let assigned = pool::assign(
                &admin.store,
                admin.now(),
                &admin.actor,
                &alias,
                number.as_ref(),
            )
            .await?;
            admin.out.show(
                &serde_json::json!({ "number": assigned, "alias": alias }),
                || format!("{assigned} now reaches {alias}"),
            );
        }
        PhoneCommand::Burn { number } => {
            let number = PhoneNumber::parse(&number)?;
            let until = pool::burn(
                &admin.store,
                admin.now(),
                &admin.actor,
                &number,
                admin.config.phone.quarantine_days,
            )
            .await?;
            let until = crate::clock::rfc3339(until);
            admin.out.show(
                &serde_json::json!({ "burned": number, "quarantined_until": until }),
                || {
                    format!(
                        "{number} burned: calls and texts to it are refused; back in the pool after {until}"
                    )
                },
            );
        }
        PhoneCommand::Hours {
            worker,
            from,
            until,
            always,
        } => {
            let found = worker::find(&admin.store, &Handle::parse(&worker)?).await?;
            let hours = if always {
                None
            } else {
                let parse = |text: Option<String>| {
                    text.as_deref()
                        .and_then(Hours::parse_time)
                        .ok_or("--from and --until are times as HH:MM")
                };
                Some(Hours {
                    from_minute: parse(from)?,
                    until_minute: parse(until)?,
                })
            };
            ring::set_hours(
                &admin.store,
                admin.now(),
                &admin.actor,
                &found.id,
                found.handle.as_str(),
                hours,
            )
            .await?;
            let shown = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
            let value = match hours {
                Some(h) => {
                    serde_json::json!({ "worker": worker, "from": shown(h.from_minute), "until": shown(h.until_minute) })
                }
                None => serde_json::json!({ "worker": worker, "always": true }),
            };
            admin.out.show(&value, || match hours {
                Some(h) => format!(
                    "{worker}'s phone rings from {} until {}",
                    shown(h.from_minute),
                    shown(h.until_minute)
                ),
                None => format!("{worker}'s phone rings at any hour"),
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
