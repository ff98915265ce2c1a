//! The 24/7 on-call duty (bereikbaarheidsdienst): a rota with overrides decides who is on call; an
//! urgent message, a referral, a message to a team mailbox, a call to the team's number or a manual
//! page raises an alert; the alert escalates by its team's policy — content-free SMS, voice call and
//! e-mail — until someone acknowledges it. It never gives up by itself.
//!
//! - `rota`: rotations, overrides, and the pure "who is on call at T";
//! - `policy`: escalation policies (TOML; a default in the configuration);
//! - `escalation`: the pure "which notifications are due now, and when is the next step";
//! - `alert`: durable alerts and notifications in the store, claimed with leases;
//! - `notify`: the content-free texts and the channels (a trait);
//! - `phone_channel`: the SMS and call channels over the phone provider (`[phone]`);
//! - `duty`: handover and rota-gap notices;
//! - `scheduler`: the background task that drives it all.

pub mod alert;
pub mod duty;
pub mod escalation;
pub mod notify;
pub mod phone_channel;
pub mod policy;
pub mod rota;
pub mod scheduler;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore};

use crate::clock::Millis;
use crate::error::{Error, Result};
use crate::ids::{MailboxId, WorkerId};
use crate::phone::PhoneNumber;
use notify::{Channel, ChannelKind};
use policy::Policy;

/// The `[oncall]` section of the configuration.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OnCallConfig {
    /// The one word every alert text names ("… nieuwe melding voor LET …").
    pub label: String,
    /// The zone of rota handovers and local times.
    pub time_zone: String,
    /// How often the scheduler looks for due work besides being woken (milliseconds).
    pub poll_interval_ms: u64,
    /// How long a claimed notification is this instance's to send before another may retry it.
    pub lease_seconds: u64,
    /// Delays between tries of a failed notification; after the last, it is given up (the escalation
    /// goes on regardless).
    pub retry_backoff_seconds: Vec<u64>,
    /// Channels of the "je dienst begint" and rota-gap notices.
    pub duty_channels: Vec<ChannelKind>,
    /// A gap in the rota this many days ahead is reported daily to the team's members.
    pub gap_lookahead_days: u32,
    /// The number alert texts and calls leave from when the alert's team has no number of its own in
    /// the phone pool (E.164; empty: none, and such a team is reached by e-mail only).
    pub sender_number: String,
    /// The escalation policy of every team without its own.
    pub policy: Policy,
}

impl OnCallConfig {
    pub fn validate(&self) -> Result<()> {
        let label_ok = (1..=16).contains(&self.label.chars().count())
            && self
                .label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-');
        if !label_ok {
            return Err(Error::invalid(
                "oncall.label has 1 to 16 letters, digits, spaces or hyphens",
            ));
        }
        rota::time_zone(&self.time_zone)?;
        if !(10..=60_000).contains(&self.poll_interval_ms) {
            return Err(Error::invalid(
                "oncall.poll_interval_ms is between 10 and 60000",
            ));
        }
        if !(5..=3600).contains(&self.lease_seconds) {
            return Err(Error::invalid("oncall.lease_seconds is between 5 and 3600"));
        }
        if self.retry_backoff_seconds.is_empty() || self.retry_backoff_seconds.contains(&0) {
            return Err(Error::invalid(
                "oncall.retry_backoff_seconds lists at least one positive delay",
            ));
        }
        if self.gap_lookahead_days == 0 || self.gap_lookahead_days > 60 {
            return Err(Error::invalid(
                "oncall.gap_lookahead_days is between 1 and 60",
            ));
        }
        if !self.sender_number.is_empty() && PhoneNumber::parse(&self.sender_number).is_err() {
            return Err(Error::invalid(
                "oncall.sender_number is empty or a phone number (+31…)",
            ));
        }
        self.policy
            .validate()
            .map_err(|e| Error::invalid(format!("oncall.policy: {e}")))
    }
}

/// Notifications being sent at once by one instance, at most.
const MAX_SENDS_IN_FLIGHT: usize = 64;

/// The on-call duty's runtime state in the core: its settings, the channels it can use, and the
/// scheduler's wake-up.
pub struct OnCall {
    config: OnCallConfig,
    tz: TimeZone,
    channels: RwLock<BTreeMap<ChannelKind, Arc<dyn Channel>>>,
    wake: Arc<Notify>,
    sends: Arc<Semaphore>,
    rounds: std::sync::atomic::AtomicU64,
}

impl OnCall {
    /// `wake` is notified when an alert was raised (the deliverer shares it).
    pub fn new(config: &OnCallConfig, wake: Arc<Notify>) -> Self {
        Self {
            tz: rota::time_zone(&config.time_zone).expect("validated at load"),
            config: config.clone(),
            channels: RwLock::new(BTreeMap::new()),
            wake,
            sends: Arc::new(Semaphore::new(MAX_SENDS_IN_FLIGHT)),
            rounds: Default::default(),
        }
    }

    /// Adds a channel, or replaces the one of its kind.
    pub fn install_channel(&self, channel: Arc<dyn Channel>) {
        self.channels
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(channel.kind(), channel);
    }

    pub fn remove_channel(&self, kind: ChannelKind) {
        self.channels
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&kind);
    }

    pub fn channel(&self, kind: ChannelKind) -> Option<Arc<dyn Channel>> {
        self.channels
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&kind)
            .cloned()
    }

    /// The channels this relay can send over; a policy's other channels are skipped.
    pub fn available(&self) -> Vec<ChannelKind> {
        self.channels
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect()
    }

    /// Makes the scheduler look for due work now (an alert was raised, or a test moved the clock).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Rounds the scheduler has finished (a test that moved the clock wakes the scheduler and waits
    /// for two more rounds: then everything due at the new time has been claimed).
    pub fn rounds(&self) -> u64 {
        self.rounds.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(crate) fn finish_round(&self) {
        self.rounds
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    pub(crate) fn wake_handle(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    pub(crate) fn sends(&self) -> Arc<Semaphore> {
        self.sends.clone()
    }

    pub fn tz(&self) -> &TimeZone {
        &self.tz
    }

    pub fn label(&self) -> &str {
        &self.config.label
    }

    pub fn default_policy(&self) -> &Policy {
        &self.config.policy
    }

    pub fn config(&self) -> &OnCallConfig {
        &self.config
    }

    pub fn lease_millis(&self) -> Millis {
        i64::try_from(self.config.lease_seconds * 1000).unwrap_or(60_000)
    }

    /// `[oncall] sender_number`, when set.
    pub fn sender_number(&self) -> Option<PhoneNumber> {
        PhoneNumber::parse(&self.config.sender_number).ok()
    }

    pub fn duty_channels(&self) -> &[ChannelKind] {
        &self.config.duty_channels
    }

    pub fn gap_lookahead_days(&self) -> u32 {
        self.config.gap_lookahead_days
    }

    /// When a notification that failed for the `attempts`-th time is tried again; `None`: given up.
    pub fn retry_at(&self, attempts: i64, now: Millis) -> Option<Millis> {
        let index = usize::try_from(attempts.max(1) - 1).ok()?;
        self.config
            .retry_backoff_seconds
            .get(index)
            .map(|s| now + i64::try_from(*s).unwrap_or(i64::MAX / 2000) * 1000)
    }
}

/// The order a call to a team's number rings its members at `at` (the call's time): the primary on
/// call, the secondary, then the other members. `None` when the team keeps no rota and no override
/// is live: the phone capability then rings the members in order.
pub async fn call_order(
    store: &crate::store::Store,
    tz: &TimeZone,
    team_id: &MailboxId,
    at: Millis,
) -> Result<Option<Vec<WorkerId>>> {
    let duty = {
        let mut conn = store.pool().acquire().await?;
        rota::load(&mut conn, team_id, at).await?
    };
    Ok(duty_call_order(&duty, tz, at))
}

/// The pure part of `call_order`.
pub fn duty_call_order(duty: &rota::TeamDuty, tz: &TimeZone, at: Millis) -> Option<Vec<WorkerId>> {
    if duty.rota.is_none() && duty.overrides.is_empty() {
        return None;
    }
    let on_duty = duty.at(tz, at);
    let order = escalation::ring_order(&escalation::People {
        primary: on_duty.primary,
        secondary: on_duty.secondary,
        members: duty.members.clone(),
    });
    Some(order.into_iter().map(|member| member.id).collect())
}

/// Who is on call for a team now and from the next change on.
#[derive(Clone, Debug, Serialize)]
pub struct NowAndNext {
    pub team: String,
    pub at: String,
    pub primary: Option<String>,
    pub secondary: Option<String>,
    /// Nobody on call.
    pub gap: bool,
    /// The next change (a handover or an override), if one is within the coming weeks.
    pub next: Option<NextDuty>,
}

#[derive(Clone, Debug, Serialize)]
pub struct NextDuty {
    pub at: String,
    pub primary: Option<String>,
    pub secondary: Option<String>,
    pub gap: bool,
}

/// How far ahead "next" looks.
const NEXT_HORIZON: Millis = 35 * 86_400_000;

/// Who is on call for `team_id` at `at`, and who is next (`now` is the present: overrides that
/// ended before it are gone).
pub async fn now_and_next(
    store: &crate::store::Store,
    tz: &TimeZone,
    team_id: &MailboxId,
    at: Millis,
    now: Millis,
) -> Result<NowAndNext> {
    let duty = {
        let mut conn = store.pool().acquire().await?;
        rota::load(&mut conn, team_id, at.min(now)).await?
    };
    let plan = duty.schedule(tz, at, at + NEXT_HORIZON);
    let current = duty.at(tz, at);
    let handle = |m: Option<rota::Member>| m.map(|m| m.handle);
    let next = plan.get(1).map(|s| NextDuty {
        at: rota::local_rfc3339(s.starts_at, tz),
        gap: s.duty.is_gap(),
        primary: handle(s.duty.primary.clone()),
        secondary: handle(s.duty.secondary.clone()),
    });
    Ok(NowAndNext {
        team: duty.team,
        at: rota::local_rfc3339(at, tz),
        gap: current.is_gap(),
        primary: handle(current.primary),
        secondary: handle(current.secondary),
        next,
    })
}

/// The teams a worker belongs to that keep an on-call rota (their ids).
pub async fn teams_of(store: &crate::store::Store, worker_id: &WorkerId) -> Result<Vec<MailboxId>> {
    Ok(sqlx::query_scalar(
        "SELECT r.team_mailbox_id FROM oncall_rotas r JOIN mailbox_members m \
         ON m.mailbox_id = r.team_mailbox_id JOIN mailboxes b ON b.id = r.team_mailbox_id \
         WHERE m.worker_id = $1 ORDER BY b.name",
    )
    .bind(worker_id)
    .fetch_all(store.pool())
    .await?)
}
