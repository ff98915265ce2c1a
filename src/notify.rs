//! Content-free notifications to a worker's real e-mail address: "Nieuw bericht in je postvak". The
//! notice never names the sender, the subject or the alias, and has the same shape and length every
//! time (fixed texts, fixed-width date, fixed-length Message-ID). At most one per worker per interval.

use std::sync::Arc;

use crate::clock::Millis;
use crate::crypto::ServerKey;
use crate::error::Result;
use crate::ids::{OutboundId, WorkerId};
use crate::mail::compose;
use crate::mail::dkim::DkimKey;
use crate::mail::outbound::{self, Kind, Prepared};
use crate::store::{Store, WriteTx};

pub const SUBJECT: &str = "Nieuw bericht in je postvak";
pub const BODY: &str = "Er staat een nieuw bericht in je postvak.\r\n\
    Log in om het te lezen.\r\n\
    \r\n\
    Dit bericht is automatisch verstuurd en bevat geen inhoud.\r\n";

pub struct Notifier {
    keys: Arc<ServerKey>,
    dkim: Arc<DkimKey>,
    domain: String,
    from_local: String,
    interval_millis: Millis,
}

/// A member of a mailbox, as far as notifying goes.
pub struct Member {
    pub worker_id: WorkerId,
    pub contact_sealed: Vec<u8>,
}

/// A notice ready to be queued if the worker's interval has passed by commit time.
pub struct PreparedNotice {
    worker_id: WorkerId,
    outbound: Prepared,
}

impl Notifier {
    pub fn new(
        keys: Arc<ServerKey>,
        dkim: Arc<DkimKey>,
        domain: &str,
        from_local: &str,
        interval_seconds: u64,
    ) -> Self {
        Self {
            keys,
            dkim,
            domain: domain.to_string(),
            from_local: from_local.to_string(),
            interval_millis: i64::try_from(interval_seconds.saturating_mul(1000))
                .unwrap_or(i64::MAX),
        }
    }

    /// Prepares notices for the members not notified within the interval (checked again at commit).
    pub async fn prepare(
        &self,
        store: &Store,
        members: &[Member],
        now: Millis,
    ) -> Result<Vec<PreparedNotice>> {
        let mut notices = Vec::new();
        for member in members {
            let last: Option<Millis> = sqlx::query_scalar(
                "SELECT last_queued_at FROM notification_state WHERE worker_id = $1",
            )
            .bind(&member.worker_id)
            .fetch_optional(store.pool())
            .await?;
            if last.is_some_and(|last| now - last < self.interval_millis) {
                continue;
            }
            notices.push(self.compose(member, now)?);
        }
        Ok(notices)
    }

    fn compose(&self, member: &Member, now: Millis) -> Result<PreparedNotice> {
        let contact = crate::worker::contact::open(&self.keys, &member.contact_sealed)?;
        let id = OutboundId::random();
        let from = format!("{}@{}", self.from_local, self.domain);
        let message_id = compose::new_message_id(&self.domain);
        let unsigned = compose::message(
            &compose::Headers {
                from: compose::mailbox("schuilnaam", &from),
                to: contact.email.as_str(),
                subject: SUBJECT,
                date: now,
                message_id: &message_id,
                in_reply_to: None,
                references: &[],
            },
            BODY,
            &[],
        );
        let mut signed = self.dkim.sign(&unsigned)?.into_bytes();
        signed.extend_from_slice(&unsigned);
        let outbound = outbound::prepare(
            &self.keys,
            outbound::Outgoing {
                envelope_from: outbound::return_path(&self.keys, &id, &self.domain),
                id,
                kind: Kind::Notification,
                worker_id: Some(member.worker_id.clone()),
                recipients: vec![contact.email.as_str().to_string()],
                message: &signed,
                summary: None,
            },
        )?;
        Ok(PreparedNotice {
            worker_id: member.worker_id.clone(),
            outbound,
        })
    }

    /// Queues the notice inside the delivery's transaction, unless another was queued for the worker
    /// within the interval meanwhile. Returns whether it was queued.
    pub async fn queue(
        &self,
        wtx: &mut WriteTx,
        notice: PreparedNotice,
        now: Millis,
    ) -> Result<bool> {
        let updated = sqlx::query(
            "INSERT INTO notification_state (worker_id, last_queued_at) VALUES ($1, $2) \
             ON CONFLICT (worker_id) DO UPDATE SET last_queued_at = excluded.last_queued_at \
             WHERE notification_state.last_queued_at <= $3",
        )
        .bind(&notice.worker_id)
        .bind(now)
        .bind(now - self.interval_millis)
        .execute(wtx.conn())
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(false);
        }
        outbound::enqueue(wtx, notice.outbound, now).await?;
        Ok(true)
    }
}
