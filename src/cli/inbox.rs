//! `schuilnaam inbox`: the worker's reader. It logs in (or uses an API token from `SCHUILNAAM_TOKEN`),
//! fetches sealed messages as age files and opens them here, with an identity file that never leaves
//! this device.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::CliResult;
use crate::mailbox::{self, Summary};
use crate::web::worker_api::LoginResponse;

#[derive(Args)]
pub struct InboxArgs {
    /// The relay's worker API, e.g. https://127.0.0.1:8443
    #[arg(long)]
    server: String,
    #[arg(long)]
    handle: String,
    /// Your age identity file (AGE-SECRET-KEY-1…), as written by age-keygen.
    #[arg(long)]
    identity: PathBuf,
    /// An extra CA certificate (PEM) to trust, e.g. the development CA.
    #[arg(long)]
    ca: Option<PathBuf>,
    #[command(subcommand)]
    action: Option<InboxAction>,
}

#[derive(Subcommand, Clone)]
enum InboxAction {
    /// List messages (the default).
    List,
    /// Fetch a message's age file and open it with your identity.
    Open { id: String },
    /// Delete a message.
    Delete { id: String },
    /// Change your passphrase (required after the one-time passphrase).
    Passphrase,
    /// Create an API token for this reader (set it as SCHUILNAAM_TOKEN).
    Token {
        #[arg(long, default_value = "inbox")]
        label: String,
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
}

#[cfg(test)]
mod tests {
    #[test]
    fn terminal_escapes_are_neutralised() {
        let shown = super::printable("hallo\u{1b}]52;c;ZXZpbA==\u{7}\nregel twee\r");
        assert!(!shown.contains('\u{1b}') && !shown.contains('\u{7}') && !shown.contains('\r'));
        assert!(shown.contains("hallo") && shown.contains("\nregel twee"));
    }

    #[test]
    fn bidirectional_overrides_are_marked() {
        assert_eq!(
            super::printable("factuur\u{202E}fdp.exe \u{2067}x\u{2069}"),
            "factuur\u{fffd}fdp.exe \u{fffd}x\u{fffd}"
        );
        assert_eq!(
            super::printable("שלום"),
            "שלום",
            "right-to-left text is untouched"
        );
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct InboxError(String);

fn fail<T>(message: impl Into<String>) -> CliResult<T> {
    Err(Box::new(InboxError(message.into())))
}

impl Client {
    async fn send(&self, request: reqwest::RequestBuilder) -> CliResult<reqwest::Response> {
        let response = request.bearer_auth(&self.token).send().await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let message = response
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(String::from))
            .unwrap_or_else(|| status.to_string());
        fail(format!("the relay answered {}: {message}", status.as_u16()))
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> CliResult<T> {
        let url = format!("{}{path}", self.base);
        Ok(self.send(self.http.get(url)).await?.json().await?)
    }
}

pub async fn run(args: InboxArgs, json_output: bool) -> CliResult {
    crate::tls::install_default_provider();
    // An identity file may hold several keys (a rotated one): every one of them is tried.
    let identity = crate::crypto::Keyring::parse(&std::fs::read_to_string(&args.identity)?)?;
    let mut builder = reqwest::Client::builder().https_only(true);
    if let Some(ca) = &args.ca {
        builder =
            builder.add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca)?)?);
    }
    let http = builder.build()?;
    let base = args.server.trim_end_matches('/').to_string();
    let action = args.action.clone().unwrap_or(InboxAction::List);

    let mut input = Input::new();
    let (token, logged_in, must_change) = match std::env::var("SCHUILNAAM_TOKEN") {
        Ok(token) if !token.trim().is_empty() => (token.trim().to_string(), false, false),
        _ => {
            let passphrase = input.secret("Passphrase: ")?;
            let totp = input.line("Authenticator code: ")?;
            let response = http
                .post(format!("{base}/v1/login"))
                .json(&json!({ "handle": args.handle, "passphrase": passphrase, "totp": totp }))
                .send()
                .await?;
            if !response.status().is_success() {
                return fail("login failed: handle, passphrase or code is not correct (or too many attempts)");
            }
            let login: LoginResponse = response.json().await?;
            (login.token, true, login.must_change_passphrase)
        }
    };
    let client = Client { http, base, token };
    if must_change && !matches!(action, InboxAction::Passphrase) {
        logout(&client, logged_in).await;
        return fail("change your one-time passphrase first: schuilnaam inbox … passphrase");
    }
    let result = perform(&client, &action, &identity, &mut input, json_output).await;
    logout(&client, logged_in).await;
    result
}

async fn perform(
    client: &Client,
    action: &InboxAction,
    identity: &crate::crypto::Keyring,
    input: &mut Input,
    json_output: bool,
) -> CliResult {
    match action {
        InboxAction::List => {
            let messages: Vec<Summary> = client.get_json("/v1/messages").await?;
            if json_output {
                println!("{}", serde_json::to_string_pretty(&messages)?);
            } else if messages.is_empty() {
                println!("no messages");
            } else {
                for m in &messages {
                    println!(
                        "{}  {}  {:<9} {:<10} {:<6} {:<8} from {:<30} to {}",
                        m.id,
                        m.received_at,
                        m.channel,
                        m.kind,
                        if m.urgent { "SPOED" } else { "" },
                        printable(&m.mailbox),
                        printable(m.from_organisation.as_deref().unwrap_or("-")),
                        printable(&m.to)
                    );
                }
            }
        }
        InboxAction::Open { id } => {
            let url = format!("{}/v1/messages/{id}/age", client.base);
            let sealed = client.send(client.http.get(url)).await?.bytes().await?;
            let letter = mailbox::open_letter(identity, &sealed)
                .or_else(|_| fail("this message cannot be opened with your identity file"))?;
            if json_output {
                println!("{}", serde_json::to_string_pretty(&letter)?);
            } else {
                println!("From:    {}", printable(&letter.from));
                println!("To:      {}", printable(&letter.to));
                println!("Date:    {}", letter.received_at);
                println!("Channel: {}", letter.channel.as_str());
                println!(
                    "Kind:    {}{}",
                    letter.kind.as_str(),
                    if letter.urgent { " (SPOED)" } else { "" }
                );
                println!("Subject: {}", printable(&letter.subject));
                println!();
                println!("{}", printable(&letter.body));
            }
        }
        InboxAction::Delete { id } => {
            let url = format!("{}/v1/messages/{id}", client.base);
            client.send(client.http.delete(url)).await?;
            if !json_output {
                println!("message {id} deleted");
            } else {
                println!("{}", json!({ "deleted": id }));
            }
        }
        InboxAction::Passphrase => {
            let current = input.secret("Current passphrase (again): ")?;
            let new = input.secret("New passphrase: ")?;
            let url = format!("{}/v1/passphrase", client.base);
            client
                .send(
                    client
                        .http
                        .post(url)
                        .json(&json!({ "current": current, "new": new })),
                )
                .await?;
            if json_output {
                println!("{}", json!({ "passphrase_changed": true }));
            } else {
                println!("passphrase changed");
            }
        }
        InboxAction::Token { label, days } => {
            let passphrase = input.secret("Passphrase (again, to confirm): ")?;
            let url = format!("{}/v1/tokens", client.base);
            let created: crate::api_token::Created = client
                .send(client.http.post(url).json(&json!({
                    "label": label,
                    "expires_in_days": days,
                    "passphrase": passphrase,
                })))
                .await?
                .json()
                .await?;
            if json_output {
                println!("{}", serde_json::to_string_pretty(&created)?);
            } else {
                println!("{}", created.token);
                eprintln!(
                    "(expires {}; shown once; use it as SCHUILNAAM_TOKEN)",
                    created.expires_at
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Text from a sender, made safe for a terminal: control characters (escape sequences that could
/// rewrite the screen, set the clipboard or disguise links) and bidirectional overrides (which make
/// "factuur\u{202E}fdp.exe" read as "factuurexe.pdf") are shown as `�`; line breaks and tabs stay.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            let hidden = c.is_control() && c != '\n' && c != '\t';
            if hidden || crate::mailbox::is_bidi_control(c) {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

async fn logout(client: &Client, logged_in: bool) {
    if logged_in {
        let url = format!("{}/v1/logout", client.base);
        let _ = client.send(client.http.post(url)).await;
    }
}

/// Answers to prompts: from the terminal (passphrases unechoed), or one per line from a pipe.
struct Input {
    terminal: bool,
    lines: std::io::Lines<std::io::StdinLock<'static>>,
}

impl Input {
    fn new() -> Self {
        Self {
            terminal: std::io::stdin().is_terminal(),
            lines: std::io::stdin().lock().lines(),
        }
    }

    fn secret(&mut self, prompt: &str) -> CliResult<String> {
        if self.terminal {
            Ok(rpassword::prompt_password(prompt)?)
        } else {
            self.next_line()
        }
    }

    fn line(&mut self, prompt: &str) -> CliResult<String> {
        if self.terminal {
            eprint!("{prompt}");
            std::io::stderr().flush()?;
        }
        self.next_line()
    }

    fn next_line(&mut self) -> CliResult<String> {
        match self.lines.next() {
            Some(line) => Ok(line?.trim_end_matches(['\r', '\n']).to_string()),
            None => fail("input ended before all answers were given"),
        }
    }
}
