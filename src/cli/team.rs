//! Team mailboxes and their members.

use std::process::ExitCode;

use clap::Subcommand;

use super::{Admin, CliResult};
use crate::alias::LocalPart;
use crate::team;
use crate::worker::Handle;

#[derive(Subcommand)]
pub(super) enum TeamCommand {
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
pub(super) enum MemberCommand {
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

pub(super) async fn run(admin: &Admin, command: TeamCommand) -> CliResult {
    match command {
        TeamCommand::Add { name, local_part } => {
            let name = Handle::parse(&name)?;
            let address = team::add(
                &admin.store,
                &admin.config.domain(),
                admin.now(),
                &admin.actor,
                &name,
                &LocalPart::parse(&local_part)?,
            )
            .await?;
            admin.out.show(
                &serde_json::json!({ "team": name, "address": address }),
                || format!("team {name} added with alias {address}"),
            );
        }
        TeamCommand::Member(MemberCommand::Add { team, worker }) => {
            let (team, worker) = (Handle::parse(&team)?, Handle::parse(&worker)?);
            team::add_member(&admin.store, admin.now(), &admin.actor, &team, &worker).await?;
            admin.out.show(
                &serde_json::json!({ "team": team, "added": worker }),
                || format!("{worker} is now a member of {team}"),
            );
        }
        TeamCommand::Member(MemberCommand::Remove { team, worker }) => {
            let (team, worker) = (Handle::parse(&team)?, Handle::parse(&worker)?);
            team::remove_member(&admin.store, admin.now(), &admin.actor, &team, &worker).await?;
            admin.out.show(
                &serde_json::json!({ "team": team, "removed": worker }),
                || format!("{worker} is no longer a member of {team}"),
            );
        }
        TeamCommand::List => {
            let teams = team::list(&admin.store).await?;
            admin.out.show(&teams, || {
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
    Ok(ExitCode::SUCCESS)
}
