//! The development CA: issue and pin a partner client certificate.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::{Admin, CliResult};
use crate::crypto;
use crate::partner::{self, Fingerprint, OrgName};
use crate::tls::DevCa;

#[derive(Subcommand)]
pub(super) enum DevCaCommand {
    /// Issue a client certificate for an organisation from the development CA and pin it.
    Issue {
        #[arg(long)]
        org: String,
        /// Directory to write client.pem, client-key.pem and ca.pem into.
        #[arg(long)]
        out: PathBuf,
    },
}

pub(super) async fn run(admin: &Admin, command: DevCaCommand) -> CliResult {
    let DevCaCommand::Issue { org, out: dir } = command;
    let name = OrgName::parse(&org)?;
    let ca = DevCa::load_or_create(&admin.config.dev_ca_dir())?;
    let issued = ca.issue_client(name.as_str())?;
    let fingerprint = Fingerprint::of_pem(issued.cert_pem.as_bytes())?;
    partner::pin_certificate(
        &admin.store,
        admin.now(),
        &admin.actor.clone(),
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
    admin.out.show(
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
