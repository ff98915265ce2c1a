//! Workers: enrol, list, revoke API tokens, remove passkeys.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{ask, Admin, CliResult};
use crate::crypto;
use crate::mail::EmailAddress;
use crate::phone::PhoneNumber;
use crate::worker::{self, Handle, NewWorker, Pseudonym};

#[derive(Subcommand)]
pub(super) enum WorkerCommand {
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
    /// Remove every passkey of a worker (a lost or stolen phone or security key); logging in then
    /// takes the authenticator app's code again.
    RemovePasskeys {
        #[arg(long)]
        handle: String,
    },
}

#[derive(Args)]
pub(super) struct WorkerAddArgs {
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

pub(super) async fn run(admin: &Admin, command: WorkerCommand) -> CliResult {
    match command {
        WorkerCommand::Add(args) => {
            let server_key = admin.server_key()?;
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
                scrypt_work_factor: admin.config.crypto.scrypt_work_factor,
            };
            let created = worker::create(
                &admin.store,
                &crypto_ctx,
                &admin.config.domain(),
                admin.now(),
                &admin.actor.clone(),
                new,
            )
            .await?;
            // A number from the pool for the first alias, when one is free.
            let alias = crate::alias::Address::parse(&created.alias)?;
            let phone_alias =
                crate::phone::pool::assign_if_free(&admin.store, admin.now(), &admin.actor, &alias)
                    .await?;
            let mut shown = serde_json::to_value(&created)?;
            shown["phone_alias"] = serde_json::json!(phone_alias);
            admin.out.show(&shown, || {
                use age::secrecy::ExposeSecret;
                format!(
                    "worker {} ({}) added\n\
                     alias:      {}\n\
                     phone:      {}\n\
                     key:        {}\n\
                     passphrase: {}   (one-time: shown once, must be changed at first login)\n\
                     totp:       {}",
                    created.handle,
                    created.pseudonym,
                    created.alias,
                    phone_alias
                        .as_ref()
                        .map_or("(no free number in the pool)".to_string(), |n| n
                            .to_string()),
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
            let worker = worker::find(&admin.store, &Handle::parse(&handle)?).await?;
            let revoked =
                worker::revoke_api_tokens(&admin.store, admin.now(), &admin.actor.clone(), &worker)
                    .await?;
            admin.out.show(
                &serde_json::json!({ "handle": handle, "revoked": revoked }),
                || format!("{revoked} API token(s) of {handle} revoked"),
            );
        }
        WorkerCommand::RemovePasskeys { handle } => {
            let worker = worker::find(&admin.store, &Handle::parse(&handle)?).await?;
            let removed =
                worker::passkeys::remove_all(&admin.store, admin.now(), &admin.actor, &worker)
                    .await?;
            admin.out.show(
                &serde_json::json!({ "handle": handle, "removed": removed }),
                || format!("{removed} passkey(s) of {handle} removed"),
            );
        }
        WorkerCommand::List => {
            let workers = worker::list(&admin.store).await?;
            admin.out.show(&workers, || {
                workers
                    .iter()
                    .map(|w| format!("{}\t{}\t{:?}", w.handle, w.pseudonym, w.key_custody))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
