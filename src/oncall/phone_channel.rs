//! The SMS and call channels over the phone provider (`[phone]`). A text carries the content-free
//! sentence; a call says the code and waits for one key (`<Gather>`), whose press comes back as the
//! signed webhook `/phone/oncall/keypress?notification=…`. Both leave from the team's own number in
//! the pool when it has one (for a duty notice: the first team with a rota the worker is in), else
//! from `[oncall] sender_number`. A provider error is a retryable failure: the notification is tried
//! again with backoff while the escalation goes on. The real number is opened for the request only
//! and never logged; the error codes name no number.

use std::sync::Arc;

use super::notify::{self, Channel, ChannelKind, Delivery, Purpose, SendError, SendFuture, Sent};
use super::OnCall;
use crate::config::PhoneProviderKind;
use crate::core::Core;
use crate::error::Result;
use crate::ids::{NotificationId, WorkerId};
use crate::phone::provider::{CallScript, OutgoingCall, OutgoingSms, ProviderError};
use crate::phone::{twiml, Phone, PhoneNumber};
use crate::store::Store;

/// The path of an alert call's key press (the notification is named in the query).
pub const KEYPRESS_PATH: &str = "/phone/oncall/keypress";

/// An SMS or call channel through the phone provider.
pub struct PhoneChannel {
    kind: ChannelKind,
    phone: Arc<Phone>,
}

/// Installs the SMS channel, and the call channel when the provider can place calls (the hosted
/// path; Kannel only texts).
pub fn install(oncall: &OnCall, phone: &Arc<Phone>) {
    let mut kinds = vec![ChannelKind::Sms];
    if phone.config.provider == PhoneProviderKind::Twiml {
        kinds.push(ChannelKind::Call);
    }
    for kind in kinds {
        oncall.install_channel(Arc::new(PhoneChannel {
            kind,
            phone: phone.clone(),
        }));
    }
}

impl Channel for PhoneChannel {
    fn kind(&self) -> ChannelKind {
        self.kind
    }

    fn send<'a>(&'a self, core: &'a Core, delivery: &'a Delivery) -> SendFuture<'a> {
        Box::pin(async move {
            let team_number = team_number(&core.store, delivery)
                .await
                .map_err(|_| SendError::Temporary("store".into()))?;
            let from = choose_sender(team_number, core.oncall.sender_number())
                .ok_or_else(|| SendError::Permanent("no-sender-number".into()))?;
            let provider = &self.phone.provider;
            let accepted = match self.kind {
                ChannelKind::Call => {
                    let action = self.phone.url(&keypress_path(&delivery.notification_id));
                    let call = outgoing_call(
                        from,
                        delivery,
                        core.oncall.label(),
                        &action,
                        self.phone.config.ring_seconds,
                    );
                    provider.place_call(&call).await
                }
                _ => provider.send_sms(&outgoing_sms(from, delivery)).await,
            };
            accepted
                .map(|accepted| Sent {
                    reference: Some(accepted.sid),
                })
                .map_err(|e| send_error(&e))
        })
    }
}

/// The team's own number when it has one, else the configured one.
pub fn choose_sender(
    team_number: Option<PhoneNumber>,
    configured: Option<PhoneNumber>,
) -> Option<PhoneNumber> {
    team_number.or(configured)
}

/// Where the provider posts the key pressed in the call of this notification.
pub fn keypress_path(notification_id: &NotificationId) -> String {
    format!("{KEYPRESS_PATH}?notification={notification_id}")
}

/// The text of a notification, from `from` to the worker's real phone.
pub fn outgoing_sms(from: PhoneNumber, delivery: &Delivery) -> OutgoingSms {
    OutgoingSms {
        from,
        to: delivery.phone.clone(),
        body: delivery.text.clone(),
        status_callback: None,
    }
}

/// The call of a notification: an alert's says the code and gathers one key (answered at `action`);
/// a duty notice's says its sentence.
pub fn outgoing_call(
    from: PhoneNumber,
    delivery: &Delivery,
    label: &str,
    action: &str,
    ring_seconds: u32,
) -> OutgoingCall {
    let twiml = match &delivery.purpose {
        Purpose::Alert { code, .. } => notify::call_twiml(label, code, action),
        Purpose::Handover | Purpose::Gap => twiml::say_and_hang_up(&delivery.text),
    };
    OutgoingCall {
        from,
        to: delivery.phone.clone(),
        script: CallScript::Twiml(twiml),
        timeout_seconds: ring_seconds,
        status_callback: None,
    }
}

/// A provider's error as the scheduler sees it: retried with backoff (a refusal too: credentials or
/// credit can be fixed while the escalation goes on), except what this path can never do. The code
/// names the HTTP status and the provider's numeric error code only.
pub fn send_error(error: &ProviderError) -> SendError {
    match error {
        ProviderError::NotSupported => SendError::Permanent("not-supported".into()),
        ProviderError::Refused { status, code } => {
            SendError::Temporary(format!("refused-{status}-{code}"))
        }
        ProviderError::Unavailable(cause) => SendError::Temporary(unavailable_code(cause)),
    }
}

fn unavailable_code(cause: &str) -> String {
    match cause.strip_prefix("HTTP ") {
        Some(status) if status.bytes().all(|b| b.is_ascii_digit()) => format!("http-{status}"),
        _ if cause == "timeout" => "timeout".into(),
        _ => "unavailable".into(),
    }
}

/// The number of the team a notification is about: the alert's team, or for a duty notice the first
/// team with a rota the worker is in (by name) that has a number.
async fn team_number(store: &Store, delivery: &Delivery) -> Result<Option<PhoneNumber>> {
    let number: Option<String> = match &delivery.purpose {
        Purpose::Alert { alert_id, .. } => {
            sqlx::query_scalar(
                "SELECT p.number FROM alerts a JOIN aliases l ON l.mailbox_id = a.team_mailbox_id \
                 JOIN phone_numbers p ON p.alias = l.address \
                 WHERE a.id = $1 AND l.burned_at IS NULL ORDER BY l.created_at, l.address LIMIT 1",
            )
            .bind(alert_id)
            .fetch_optional(store.pool())
            .await?
        }
        Purpose::Handover | Purpose::Gap => worker_team_number(store, &delivery.worker_id).await?,
    };
    Ok(number.and_then(|n| PhoneNumber::parse(&n).ok()))
}

async fn worker_team_number(store: &Store, worker_id: &WorkerId) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT p.number FROM oncall_rotas r \
         JOIN mailbox_members m ON m.mailbox_id = r.team_mailbox_id \
         JOIN mailboxes b ON b.id = r.team_mailbox_id \
         JOIN aliases l ON l.mailbox_id = r.team_mailbox_id \
         JOIN phone_numbers p ON p.alias = l.address \
         WHERE m.worker_id = $1 AND l.burned_at IS NULL \
         ORDER BY b.name, l.created_at, l.address LIMIT 1",
    )
    .bind(worker_id)
    .fetch_optional(store.pool())
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AlertId;
    use crate::oncall::notify::AlertCode;

    fn number(text: &str) -> PhoneNumber {
        PhoneNumber::parse(text).unwrap()
    }

    fn delivery(purpose: Purpose) -> Delivery {
        Delivery {
            notification_id: NotificationId::random(),
            text: notify::text("LET", &purpose),
            purpose,
            step: 0,
            worker_id: WorkerId::random(),
            phone: number("+31612345678"),
            email: crate::mail::EmailAddress::parse("w@example.nl").unwrap(),
        }
    }

    #[test]
    fn the_team_number_comes_before_the_configured_one() {
        let team = number("+3197010000003");
        let configured = number("+3197010000099");
        assert_eq!(
            choose_sender(Some(team.clone()), Some(configured.clone())),
            Some(team)
        );
        assert_eq!(
            choose_sender(None, Some(configured.clone())),
            Some(configured)
        );
        assert_eq!(choose_sender(None, None), None);
    }

    #[test]
    fn provider_errors_are_retried_and_name_no_number() {
        for (error, expected) in [
            (
                ProviderError::Unavailable("HTTP 503".into()),
                SendError::Temporary("http-503".into()),
            ),
            (
                ProviderError::Unavailable("timeout".into()),
                SendError::Temporary("timeout".into()),
            ),
            (
                ProviderError::Unavailable(
                    "connection failed (or the certificate was not trusted)".into(),
                ),
                SendError::Temporary("unavailable".into()),
            ),
            (
                ProviderError::Refused {
                    status: 400,
                    code: 21211,
                },
                SendError::Temporary("refused-400-21211".into()),
            ),
            (
                ProviderError::NotSupported,
                SendError::Permanent("not-supported".into()),
            ),
        ] {
            assert_eq!(send_error(&error), expected);
        }
    }

    #[test]
    fn an_alert_call_gathers_the_key_at_the_signed_callback() {
        let code = AlertCode::parse("4821").unwrap();
        let alert = delivery(Purpose::Alert {
            alert_id: AlertId::random(),
            code,
        });
        let action = format!(
            "https://relay.example{}",
            keypress_path(&alert.notification_id)
        );
        let call = outgoing_call(number("+3197010000003"), &alert, "LET", &action, 20);
        let CallScript::Twiml(twiml) = &call.script else {
            panic!("inline TwiML expected");
        };
        assert!(twiml.contains("<Gather numDigits=\"1\""), "{twiml}");
        assert!(twiml.contains(&format!("action=\"{action}\"")), "{twiml}");
        assert!(twiml.contains("Code 4 8 2 1."), "{twiml}");
        assert_eq!(call.to.as_str(), "+31612345678");
        assert_eq!(call.from.as_str(), "+3197010000003");
        let sms = outgoing_sms(number("+3197010000003"), &alert);
        assert_eq!(sms.body, "Schuilnaam: nieuwe melding voor LET. Code 4821.");
        let notice = outgoing_call(
            number("+3197010000003"),
            &delivery(Purpose::Handover),
            "LET",
            &action,
            20,
        );
        let CallScript::Twiml(twiml) = &notice.script else {
            panic!("inline TwiML expected");
        };
        assert!(!twiml.contains("<Gather"), "{twiml}");
        assert!(twiml.contains("je dienst voor LET begint"), "{twiml}");
    }
}
