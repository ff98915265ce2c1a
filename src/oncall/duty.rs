//! Duty notices: at each handover the incoming worker hears "je dienst begint"; a gap in the rota in
//! the coming days is reported to the team's members once a day (after the handover time) until it is
//! filled. Each notice is recorded in `oncall_duty_notices` before it is queued, so that of several
//! instances exactly one gives it.

use jiff::Timestamp;

use super::alert::Claimed;
use super::notify::{ChannelKind, Purpose};
use super::rota::{self, Member, TeamDuty};
use crate::audit::{self, Action, Actor, Event};
use crate::clock::Millis;
use crate::core::Core;
use crate::error::Result;

/// A handover missed by more than this (the relay was down) is not announced any more.
const HANDOVER_LOOKBACK: Millis = 15 * 60_000;

/// One notice to give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DutyEvent {
    pub purpose: Purpose,
    /// Unique per team and kind: the handover's instant, or the local date of a gap report.
    pub key: String,
    pub workers: Vec<Member>,
}

/// The pure part: the notices due at `now` for one team.
pub fn due_events(
    duty: &TeamDuty,
    tz: &jiff::tz::TimeZone,
    now: Millis,
    gap_lookahead: Millis,
) -> Vec<DutyEvent> {
    let mut events = Vec::new();
    let recent = duty.schedule(tz, now - HANDOVER_LOOKBACK, now + 1);
    for pair in recent.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        if after.starts_at <= now && after.duty.primary != before.duty.primary {
            if let Some(incoming) = &after.duty.primary {
                events.push(DutyEvent {
                    purpose: Purpose::Handover,
                    key: after.starts_at.to_string(),
                    workers: vec![incoming.clone()],
                });
            }
        }
    }
    if let (Some(rota), Ok(t)) = (&duty.rota, Timestamp::from_millisecond(now)) {
        let local = t.to_zoned(tz.clone()).datetime();
        let has_gap = duty
            .schedule(tz, now, now + gap_lookahead)
            .iter()
            .any(|s| s.duty.is_gap());
        if local.time() >= rota.handover && has_gap && !duty.members.is_empty() {
            events.push(DutyEvent {
                purpose: Purpose::Gap,
                key: local.date().to_string(),
                workers: duty.members.clone(),
            });
        }
    }
    events
}

/// Gives the due notices of every team with a rota; returns the notifications to send (leased to
/// `owner`).
pub async fn check(core: &Core, owner: &str, now: Millis) -> Result<Vec<Claimed>> {
    let mut claimed = Vec::new();
    for team_id in rota::teams_with_rota(&core.store).await? {
        match check_team(core, owner, &team_id, now).await {
            Ok(mut notices) => claimed.append(&mut notices),
            Err(e) => tracing::error!(cause = %e, "on-call: checking a team's duty notices failed"),
        }
    }
    Ok(claimed)
}

async fn check_team(
    core: &Core,
    owner: &str,
    team_id: &crate::ids::MailboxId,
    now: Millis,
) -> Result<Vec<Claimed>> {
    let duty = {
        let mut conn = core.store.pool().acquire().await?;
        rota::load(&mut conn, team_id, now).await?
    };
    let lookahead = i64::from(core.oncall.gap_lookahead_days()) * 86_400_000;
    let events = due_events(&duty, core.oncall.tz(), now, lookahead);
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let available = core.oncall.available();
    let channels: Vec<ChannelKind> = core
        .oncall
        .duty_channels()
        .iter()
        .copied()
        .filter(|c| available.contains(c))
        .collect();
    let lease_until = now + core.oncall.lease_millis();
    let mut claimed = Vec::new();
    let mut wtx = core.store.begin_write().await?;
    for event in events {
        let kind = event.purpose.as_str();
        let inserted = sqlx::query(
            "INSERT INTO oncall_duty_notices (team_mailbox_id, kind, event_key, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (team_mailbox_id, kind, event_key) DO NOTHING",
        )
        .bind(team_id)
        .bind(kind)
        .bind(&event.key)
        .bind(now)
        .execute(wtx.conn())
        .await?
        .rows_affected();
        if inserted == 0 {
            continue;
        }
        let detail = format!(
            "kind={kind} workers={}",
            event
                .workers
                .iter()
                .map(|w| w.handle.as_str())
                .collect::<Vec<_>>()
                .join(",")
        );
        audit::append(
            &mut wtx,
            now,
            Event::new(&Actor::System, Action::OncallDutyNotice, &duty.team).detail(&detail),
        )
        .await?;
        for worker in &event.workers {
            for channel in &channels {
                let id = crate::ids::NotificationId::random();
                sqlx::query(
                    "INSERT INTO oncall_notifications (id, alert_id, purpose, step, worker_id, channel, \
                     state, attempts, next_attempt_at, lease_until, lease_owner, created_at) \
                     VALUES ($1, NULL, $2, 0, $3, $4, 'queued', 1, $5, $6, $7, $5)",
                )
                .bind(&id)
                .bind(kind)
                .bind(&worker.id)
                .bind(channel.as_str())
                .bind(now)
                .bind(lease_until)
                .bind(owner)
                .execute(wtx.conn())
                .await?;
                claimed.push(Claimed {
                    id,
                    purpose: event.purpose.clone(),
                    step: 0,
                    worker_id: worker.id.clone(),
                    handle: worker.handle.clone(),
                    channel: *channel,
                    attempts: 1,
                    raised_at: None,
                });
            }
        }
    }
    wtx.commit().await?;
    Ok(claimed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oncall::rota::{parse_handover, parse_time, time_zone, Rota, Rotation};

    fn member(handle: &str) -> Member {
        Member {
            id: crate::ids::WorkerId::parse(&format!("{:0>32}", handle.trim_start_matches('h')))
                .unwrap(),
            handle: handle.into(),
        }
    }

    fn team(members: Vec<Option<Member>>) -> TeamDuty {
        TeamDuty {
            team_id: crate::ids::MailboxId::random(),
            team: "let-jb".into(),
            rota: Some(Rota {
                rotation: Rotation::Daily,
                handover: parse_handover("09:00").unwrap(),
                start: "2026-12-01".parse().unwrap(),
                members,
            }),
            overrides: vec![],
            members: vec![member("h1"), member("h2")],
        }
    }

    #[test]
    fn the_incoming_worker_is_told_at_the_handover() {
        let tz = time_zone("Europe/Amsterdam").unwrap();
        let duty = team(vec![Some(member("h1")), Some(member("h2"))]);
        let at = |t: &str| parse_time(t, &tz).unwrap();
        let week = 7 * 86_400_000;
        assert!(due_events(&duty, &tz, at("2026-12-02 08:59"), week).is_empty());
        let events = due_events(&duty, &tz, at("2026-12-02 09:01"), week);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].purpose, Purpose::Handover);
        assert_eq!(events[0].workers, vec![member("h2")]);
        assert_eq!(events[0].key, at("2026-12-02 09:00").to_string());
        // Long after the handover (the relay was down): not any more.
        assert!(due_events(&duty, &tz, at("2026-12-02 10:00"), week).is_empty());
    }

    #[test]
    fn a_gap_ahead_is_reported_to_every_member_after_the_handover_time() {
        let tz = time_zone("Europe/Amsterdam").unwrap();
        let duty = team(vec![Some(member("h1")), None]);
        let at = |t: &str| parse_time(t, &tz).unwrap();
        let week = 7 * 86_400_000;
        // At night: nobody is woken for a gap report.
        assert!(due_events(&duty, &tz, at("2026-12-05 03:00"), week).is_empty());
        let events = due_events(&duty, &tz, at("2026-12-05 12:00"), week);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].purpose, Purpose::Gap);
        assert_eq!(events[0].key, "2026-12-05");
        assert_eq!(events[0].workers.len(), 2);
        // Filled: no report.
        let full = team(vec![Some(member("h1")), Some(member("h2"))]);
        assert!(due_events(&full, &tz, at("2026-12-05 12:00"), week).is_empty());
    }
}
