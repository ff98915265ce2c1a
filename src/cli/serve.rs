//! `serve`: the relay itself, until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use super::CliResult;
use crate::config::Config;
use crate::App;

pub(super) async fn run(config: Config) -> CliResult {
    crate::telemetry::init();
    tracing::info!(config = ?config, "starting");
    let app = App::build(config).await?;
    tracing::info!(
        worker_api = %app.worker_addr(),
        partner_api = %app.partner_addr(),
        admin = %app.admin_addr(),
        smtp = %app.smtp_addr(),
        phone = %app.phone_addr().map_or("off".to_string(), |a| a.to_string()),
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
