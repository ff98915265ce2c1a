//! Aliases: add, burn, list, allow and disallow contacts.

use std::process::ExitCode;

use clap::Subcommand;

use super::{Admin, CliResult};
use crate::alias::Address;
use crate::mail::EmailAddress;
use crate::partner::{self, Contact};
use crate::phone::PhoneNumber;
use crate::worker::{self, Handle};

#[derive(Subcommand)]
pub(super) enum AliasCommand {
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
    /// Allow one contact (a family member, a lawyer) to mail this alias and be mailed from it
    /// (--contact), or to call and text its number and be called and texted from it (--phone).
    Allow {
        address: String,
        #[arg(long, required_unless_present = "phone", conflicts_with = "phone")]
        contact: Option<String>,
        #[arg(long)]
        phone: Option<String>,
    },
    /// Withdraw an allowed contact.
    Disallow {
        address: String,
        #[arg(long, required_unless_present = "phone", conflicts_with = "phone")]
        contact: Option<String>,
        #[arg(long)]
        phone: Option<String>,
    },
}

/// The contact an `allow`/`disallow` names: an e-mail address or a phone number.
fn contact_of(email: Option<String>, phone: Option<String>) -> CliResult<Contact> {
    match (email, phone) {
        (Some(email), None) => Ok(Contact::Email(EmailAddress::parse(&email)?)),
        (None, Some(phone)) => Ok(Contact::Phone(PhoneNumber::parse(&phone)?)),
        _ => Err("give --contact ADDRESS or --phone NUMBER".into()),
    }
}

pub(super) async fn run(admin: &Admin, command: AliasCommand) -> CliResult {
    match command {
        AliasCommand::Add { worker } => {
            let worker = worker::find(&admin.store, &Handle::parse(&worker)?).await?;
            let address = worker::add_alias(
                &admin.store,
                &admin.config.domain(),
                admin.now(),
                &admin.actor,
                &worker,
            )
            .await?;
            admin
                .out
                .show(&serde_json::json!({ "address": address }), || {
                    address.to_string()
                });
        }
        AliasCommand::Burn { address } => {
            let address = Address::parse(&address)?;
            crate::alias::burn_audited(&admin.store, admin.now(), &admin.actor, &address).await?;
            admin
                .out
                .show(&serde_json::json!({ "burned": address }), || {
                    format!("alias {address} burned: all further mail to it is refused")
                });
        }
        AliasCommand::Allow {
            address,
            contact,
            phone,
        } => {
            let (address, contact) = (Address::parse(&address)?, contact_of(contact, phone)?);
            let keys = admin.server_key()?;
            partner::allow_contact(
                &admin.store,
                &keys,
                admin.now(),
                &admin.actor,
                &address,
                &contact,
            )
            .await?;
            admin.out.show(
                &serde_json::json!({ "alias": address, "allowed": true }),
                || match contact {
                    Contact::Phone(_) => format!(
                        "that number may now call and text {address}'s number (only the keyed hash is stored)"
                    ),
                    _ => format!("{contact} may now write to {address} (only the keyed hash is stored)"),
                },
            );
        }
        AliasCommand::Disallow {
            address,
            contact,
            phone,
        } => {
            let (address, contact) = (Address::parse(&address)?, contact_of(contact, phone)?);
            let keys = admin.server_key()?;
            partner::disallow_contact(
                &admin.store,
                &keys,
                admin.now(),
                &admin.actor,
                &address,
                &contact,
            )
            .await?;
            admin.out.show(
                &serde_json::json!({ "alias": address, "allowed": false }),
                || match contact {
                    Contact::Phone(_) => format!("that number may no longer reach {address}"),
                    _ => format!("{contact} may no longer write to {address}"),
                },
            );
        }
        AliasCommand::List { worker } => {
            let worker = worker::find(&admin.store, &Handle::parse(&worker)?).await?;
            let aliases = crate::alias::list_for_mailbox(&admin.store, &worker.mailbox_id).await?;
            admin.out.show(&aliases, || {
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
    Ok(ExitCode::SUCCESS)
}
