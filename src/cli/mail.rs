//! Mail settings: the DKIM record to publish.

use std::process::ExitCode;

use clap::Subcommand;

use super::{CliResult, Output};
use crate::config::Config;

#[derive(Subcommand)]
pub(super) enum MailCommand {
    /// Print the DNS TXT records that publish the relay's DKIM keys (RSA and Ed25519).
    DkimRecord,
}

pub(super) fn run(config: &Config, command: MailCommand, out: &Output) -> CliResult {
    match command {
        MailCommand::DkimRecord => dkim_record(config, out),
    }
}

fn dkim_record(config: &Config, out: &Output) -> CliResult {
    let records = crate::mail::dkim::DkimKey::from_config(config)?.dns_records();
    out.show(&records, || records.to_string().trim_end().to_string());
    Ok(ExitCode::SUCCESS)
}
