//! The audit log: verify the chain, show the last rows.

use std::process::ExitCode;

use clap::Subcommand;

use super::{Admin, CliResult};
use crate::audit;

#[derive(Subcommand)]
pub(super) enum AuditCommand {
    /// Check the hash chain; exits non-zero and names the first bad row.
    Verify,
    /// Show the last rows.
    Tail {
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

pub(super) async fn run(admin: &Admin, command: AuditCommand) -> CliResult {
    let code = match command {
        AuditCommand::Verify => match audit::verify(&admin.store).await? {
            Ok(verified) => {
                admin.out.show(&verified, || {
                    format!(
                        "audit log intact: {} rows, head {}",
                        verified.rows, verified.head_hash
                    )
                });
                ExitCode::SUCCESS
            }
            Err(broken) => {
                admin.out.show(&broken, || broken.to_string());
                ExitCode::FAILURE
            }
        },
        AuditCommand::Tail { limit } => {
            let rows = audit::tail(&admin.store, limit.clamp(1, 10_000)).await?;
            admin.out.show(&rows, || {
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
    Ok(code)
}
