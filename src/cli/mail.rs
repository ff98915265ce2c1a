//! Mail settings: the DKIM record to publish.

use std::process::ExitCode;

use clap::Subcommand;

use super::{CliResult, Output};
use crate::config::Config;

#[derive(Subcommand)]
pub(super) enum MailCommand {
    /// Print the DNS TXT record that publishes the relay's DKIM key.
    DkimRecord,
}

pub(super) fn run(config: &Config, command: MailCommand, out: &Output) -> CliResult {
    match command {
        MailCommand::DkimRecord => dkim_record(config, out),
    }
}

fn dkim_record(config: &Config, out: &Output) -> CliResult {
    let key = crate::mail::dkim::DkimKey::load_or_create(
        &config.dkim_key_path(),
        &config.relay.domain,
        &config.outbound.dkim_selector,
    )?;
    let (name, value) = key.dns_record();
    out.show(
        &serde_json::json!({ "name": name, "type": "TXT", "value": value }),
        || format!("{name}. IN TXT \"{value}\""),
    );
    Ok(ExitCode::SUCCESS)
}
