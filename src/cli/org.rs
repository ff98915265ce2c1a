//! Partner organisations: register, list, enable and disable, pin and unpin client certificates.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::{Admin, CliResult};
use crate::alias::Domain;
use crate::partner::{self, Fingerprint, NewOrganisation, OrgKind, OrgName};
use crate::phone::PhoneNumber;

#[derive(Subcommand)]
pub(super) enum OrgCommand {
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

pub(super) async fn run(admin: &Admin, command: OrgCommand) -> CliResult {
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
            partner::add(&admin.store, admin.now(), &admin.actor, new).await?;
            admin.out.show(&serde_json::json!({ "added": name }), || {
                format!("organisation {name} added")
            });
        }
        OrgCommand::List => {
            let orgs = partner::list(&admin.store).await?;
            admin.out.show(&orgs, || {
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
            partner::set_enabled(&admin.store, admin.now(), &admin.actor, &name, false).await?;
            admin
                .out
                .show(&serde_json::json!({ "disabled": name }), || {
                    format!("organisation {name} disabled")
                });
        }
        OrgCommand::Enable { name } => {
            let name = OrgName::parse(&name)?;
            partner::set_enabled(&admin.store, admin.now(), &admin.actor, &name, true).await?;
            admin.out.show(&serde_json::json!({ "enabled": name }), || {
                format!("organisation {name} enabled")
            });
        }
        OrgCommand::Unpin { name, fingerprint } => {
            let name = OrgName::parse(&name)?;
            let fingerprint = Fingerprint::parse(&fingerprint)?;
            partner::unpin_certificate(
                &admin.store,
                admin.now(),
                &admin.actor,
                &name,
                &fingerprint,
            )
            .await?;
            admin.out.show(
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
            partner::pin_certificate(&admin.store, admin.now(), &admin.actor, &name, &fingerprint)
                .await?;
            admin.out.show(
                &serde_json::json!({ "organisation": name, "pinned": fingerprint }),
                || format!("certificate {} pinned to {name}", fingerprint.as_str()),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
