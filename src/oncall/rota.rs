//! Rotas and overrides, and the pure answer to "who is on call at T".
//!
//! A rota lists a team's members in order; each takes a shift of a day or a week, handing over at a
//! local time (Europe/Amsterdam by default) that stays the same wall-clock time across the daylight
//! saving changes. The primary is the member whose shift it is, the secondary the member of the next
//! shift. An override puts a worker in the primary (or secondary) place for a while. A place nobody
//! holds — before the rota starts, or a member who left the team — is a gap, and `schedule` flags it.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan as _};
use serde::{Deserialize, Serialize};
use sqlx::Row as _;

use crate::audit::{self, Action, Actor, Event};
use crate::clock::Millis;
use crate::error::{Error, Result};
use crate::ids::{MailboxId, OverrideId, WorkerId};
use crate::store::Store;
use crate::worker::Handle;

/// How long a shift lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rotation {
    Daily,
    Weekly,
}

impl Rotation {
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "daily" => Ok(Self::Daily),
            "weekly" => Ok(Self::Weekly),
            _ => Err(Error::invalid("a rotation is daily or weekly")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daily => "daily",
            Self::Weekly => "weekly",
        }
    }

    fn days(self) -> i64 {
        match self {
            Self::Daily => 1,
            Self::Weekly => 7,
        }
    }
}

/// Which place an override fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Secondary,
}

impl Role {
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "primary" => Ok(Self::Primary),
            "secondary" => Ok(Self::Secondary),
            _ => Err(Error::invalid("a role is primary or secondary")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Secondary => "secondary",
        }
    }
}

/// A rota over workers of type `W` (handles in tests, `Member` in the relay).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rota<W> {
    pub rotation: Rotation,
    /// Local wall-clock time of every handover.
    pub handover: Time,
    /// Local date of the first handover.
    pub start: Date,
    /// In turn; `None` is a place nobody holds (a member who left the team): a gap.
    pub members: Vec<Option<W>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override<W> {
    pub id: String,
    pub worker: W,
    pub role: Role,
    pub starts_at: Millis,
    pub ends_at: Millis,
}

/// Who is on call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OnDuty<W> {
    pub primary: Option<W>,
    pub secondary: Option<W>,
}

impl<W> OnDuty<W> {
    /// Nobody to page first.
    pub fn is_gap(&self) -> bool {
        self.primary.is_none()
    }
}

/// The instant shift `index` begins (shift 0 at the start date's handover). A handover time that
/// does not exist that day (inside the spring-forward hour) is taken after the jump, one that exists
/// twice (autumn) the first time.
pub fn shift_start<W>(rota: &Rota<W>, tz: &TimeZone, index: i64) -> Millis {
    let date = rota
        .start
        .checked_add((index * rota.rotation.days()).days())
        .unwrap_or(rota.start);
    tz.to_ambiguous_timestamp(DateTime::from_parts(date, rota.handover))
        .compatible()
        .map(|t| t.as_millisecond())
        .unwrap_or(Millis::MAX)
}

/// The shift running at `at` (negative before the rota starts).
pub fn shift_index<W>(rota: &Rota<W>, tz: &TimeZone, at: Millis) -> i64 {
    let Ok(timestamp) = Timestamp::from_millisecond(at) else {
        return -1;
    };
    let local = timestamp.to_zoned(tz.clone()).datetime();
    let mut date = local.date();
    if local.time() < rota.handover {
        date = date.yesterday().unwrap_or(date);
    }
    let days = rota
        .start
        .until(date)
        .map(|span| i64::from(span.get_days()))
        .unwrap_or(0);
    let mut index = days.div_euclid(rota.rotation.days());
    // The local-date estimate is off only around a handover that fell into a DST jump: settle it
    // against the instants themselves, so that shifts and `shift_start` always agree.
    while shift_start(rota, tz, index) > at {
        index -= 1;
    }
    while shift_start(rota, tz, index + 1) <= at {
        index += 1;
    }
    index
}

/// The pure decision: who is on call at `at`, from the rota (if any) and the overrides.
///
/// The rota's primary is the member of the running shift, its secondary the member of the next
/// shift (with one member there is no secondary). Of the overrides covering `at`, the last one given
/// for a place wins it; a worker who would then hold both places keeps the primary one, and the
/// secondary falls to whoever the override displaced.
pub fn on_call_at<W: Clone + PartialEq>(
    rota: Option<&Rota<W>>,
    overrides: &[Override<W>],
    tz: &TimeZone,
    at: Millis,
) -> OnDuty<W> {
    let (rota_primary, rota_secondary) = match rota {
        Some(rota) if !rota.members.is_empty() => {
            let n = rota.members.len() as i64;
            let index = shift_index(rota, tz, at);
            let holder = |i: i64| {
                if i < 0 {
                    None
                } else {
                    rota.members[i.rem_euclid(n) as usize].clone()
                }
            };
            let secondary = if n > 1 { holder(index + 1) } else { None };
            (holder(index), secondary)
        }
        _ => (None, None),
    };
    let covering = |role: Role| {
        overrides
            .iter()
            .rfind(|o| o.role == role && o.starts_at <= at && at < o.ends_at)
            .map(|o| o.worker.clone())
    };
    let primary = covering(Role::Primary).or_else(|| rota_primary.clone());
    let mut secondary = covering(Role::Secondary).or_else(|| rota_secondary.clone());
    if secondary.is_some() && secondary == primary {
        secondary = [rota_primary, rota_secondary]
            .into_iter()
            .flatten()
            .find(|w| Some(w) != primary.as_ref());
    }
    OnDuty { primary, secondary }
}

/// A stretch of time with the same people on call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment<W> {
    pub starts_at: Millis,
    pub ends_at: Millis,
    pub duty: OnDuty<W>,
}

/// The plan from `from` to `until`: consecutive segments, split at every handover and at every
/// override's start and end, merged where nothing changes. A segment without a primary is a gap.
pub fn schedule<W: Clone + PartialEq>(
    rota: Option<&Rota<W>>,
    overrides: &[Override<W>],
    tz: &TimeZone,
    from: Millis,
    until: Millis,
) -> Vec<Segment<W>> {
    if until <= from {
        return Vec::new();
    }
    let mut cuts = vec![from];
    if let Some(rota) = rota.filter(|r| !r.members.is_empty()) {
        let mut index = shift_index(rota, tz, from) + 1;
        loop {
            let start = shift_start(rota, tz, index);
            if start >= until {
                break;
            }
            cuts.push(start);
            index += 1;
        }
    }
    for o in overrides {
        for t in [o.starts_at, o.ends_at] {
            if from < t && t < until {
                cuts.push(t);
            }
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut segments: Vec<Segment<W>> = Vec::new();
    for (i, &start) in cuts.iter().enumerate() {
        let end = cuts.get(i + 1).copied().unwrap_or(until);
        let duty = on_call_at(rota, overrides, tz, start);
        match segments.last_mut() {
            Some(last) if last.duty == duty => last.ends_at = end,
            _ => segments.push(Segment {
                starts_at: start,
                ends_at: end,
                duty,
            }),
        }
    }
    segments
}

/// The configured time zone, from the system's database or, on a machine without one, the copy
/// compiled into the binary.
pub fn time_zone(name: &str) -> Result<TimeZone> {
    jiff::tz::db()
        .get(name)
        .or_else(|_| jiff::tz::TimeZoneDatabase::bundled().get(name))
        .map_err(|_| Error::invalid(format!("unknown time zone {name:?}")))
}

/// `HH:MM`.
pub fn parse_handover(text: &str) -> Result<Time> {
    let invalid = || Error::invalid("a handover time is HH:MM, e.g. 09:00");
    let (h, m) = text.trim().split_once(':').ok_or_else(invalid)?;
    if m.len() != 2 || h.is_empty() || h.len() > 2 {
        return Err(invalid());
    }
    let (h, m): (i8, i8) = (
        h.parse().map_err(|_| invalid())?,
        m.parse().map_err(|_| invalid())?,
    );
    Time::new(h, m, 0, 0).map_err(|_| invalid())
}

/// A moment given on the command line or in the API: RFC 3339 with an offset (`…Z`, `…+01:00`), or
/// a local date and time in the rota's zone (`2026-12-24 18:00`, `2026-12-24T18:00`).
pub fn parse_time(text: &str, tz: &TimeZone) -> Result<Millis> {
    let text = text.trim();
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t.as_millisecond());
    }
    let local: DateTime = text.replacen(' ', "T", 1).parse().map_err(|_| {
        Error::invalid("a time is 2026-12-24 18:00 (local) or RFC 3339 with an offset")
    })?;
    tz.to_ambiguous_timestamp(local)
        .compatible()
        .map(|t| t.as_millisecond())
        .map_err(|_| Error::invalid("that local time does not exist"))
}

/// RFC 3339 with the zone's offset at that moment (`2026-12-24T18:00:00+01:00`).
pub fn local_rfc3339(at: Millis, tz: &TimeZone) -> String {
    match Timestamp::from_millisecond(at) {
        Ok(t) => t.display_with_offset(tz.to_offset(t)).to_string(),
        Err(_) => "invalid-time".into(),
    }
}

/// `2026-12-24 18:00` in the zone, for people.
pub fn local_text(at: Millis, tz: &TimeZone) -> String {
    match Timestamp::from_millisecond(at) {
        Ok(t) => t
            .to_zoned(tz.clone())
            .strftime("%Y-%m-%d %H:%M %Z")
            .to_string(),
        Err(_) => "invalid-time".into(),
    }
}

// ---- storage -------------------------------------------------------------------------------------

/// A worker as the on-call duty knows them: the id and the pseudonymous handle.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Member {
    #[serde(skip)]
    pub id: WorkerId,
    pub handle: String,
}

/// Everything "who is on call" needs for one team, loaded at once.
#[derive(Clone, Debug)]
pub struct TeamDuty {
    pub team_id: MailboxId,
    pub team: String,
    pub rota: Option<Rota<Member>>,
    /// Overrides that have not ended, oldest given first.
    pub overrides: Vec<Override<Member>>,
    /// The team's members now (by handle).
    pub members: Vec<Member>,
}

impl TeamDuty {
    pub fn at(&self, tz: &TimeZone, at: Millis) -> OnDuty<Member> {
        on_call_at(self.rota.as_ref(), &self.overrides, tz, at)
    }

    pub fn schedule(&self, tz: &TimeZone, from: Millis, until: Millis) -> Vec<Segment<Member>> {
        schedule(self.rota.as_ref(), &self.overrides, tz, from, until)
    }
}

/// A team's mailbox id and name.
pub async fn team_id(store: &Store, team: &Handle) -> Result<MailboxId> {
    sqlx::query_scalar("SELECT id FROM mailboxes WHERE kind = 'team' AND name = $1")
        .bind(team.as_str())
        .fetch_optional(store.pool())
        .await?
        .ok_or(Error::NotFound("team"))
}

/// Loads a team's rota, live overrides (those ending after `now`) and members.
pub async fn load(
    conn: &mut sqlx::AnyConnection,
    team_id: &MailboxId,
    now: Millis,
) -> Result<TeamDuty> {
    let team: String =
        sqlx::query_scalar("SELECT name FROM mailboxes WHERE id = $1 AND kind = 'team'")
            .bind(team_id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(Error::NotFound("team"))?;
    let members: Vec<Member> = sqlx::query(
        "SELECT w.id, w.handle FROM mailbox_members m JOIN workers w ON w.id = m.worker_id \
         WHERE m.mailbox_id = $1 ORDER BY w.handle",
    )
    .bind(team_id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(member)
    .collect::<Result<_>>()?;
    let rota_row = sqlx::query(
        "SELECT rotation, handover_minute, start_date FROM oncall_rotas WHERE team_mailbox_id = $1",
    )
    .bind(team_id)
    .fetch_optional(&mut *conn)
    .await?;
    let rota = match rota_row {
        None => None,
        Some(row) => {
            let places = sqlx::query(
                "SELECT w.id, w.handle FROM oncall_rota_members r JOIN workers w ON w.id = r.worker_id \
                 WHERE r.team_mailbox_id = $1 ORDER BY r.position",
            )
            .bind(team_id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(member)
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            // A member who left the team holds their place no more.
            .map(|m| members.contains(&m).then_some(m))
            .collect();
            let minute: i64 = row.try_get("handover_minute")?;
            let start: String = row.try_get("start_date")?;
            Some(Rota {
                rotation: Rotation::parse(&row.try_get::<String, _>("rotation")?)?,
                handover: Time::new((minute / 60) as i8, (minute % 60) as i8, 0, 0)
                    .map_err(|_| Error::invalid("stored handover time"))?,
                start: start
                    .parse()
                    .map_err(|_| Error::invalid("stored rota start date"))?,
                members: places,
            })
        }
    };
    let overrides = sqlx::query(
        "SELECT o.id AS override_id, o.role, o.starts_at, o.ends_at, w.id, w.handle \
         FROM oncall_overrides o JOIN workers w ON w.id = o.worker_id \
         WHERE o.team_mailbox_id = $1 AND o.ends_at > $2 ORDER BY o.created_at, o.id",
    )
    .bind(team_id)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| {
        Ok(Override {
            id: row.try_get::<OverrideId, _>("override_id")?.to_string(),
            worker: member(row)?,
            role: Role::parse(&row.try_get::<String, _>("role")?)?,
            starts_at: row.try_get("starts_at")?,
            ends_at: row.try_get("ends_at")?,
        })
    })
    .collect::<Result<_>>()?;
    Ok(TeamDuty {
        team_id: team_id.clone(),
        team,
        rota,
        overrides,
        members,
    })
}

fn member(row: &crate::store::Row) -> Result<Member> {
    Ok(Member {
        id: row.try_get("id")?,
        handle: row.try_get("handle")?,
    })
}

/// What `oncall rota` sets.
pub struct RotaSpec {
    pub members: Vec<Handle>,
    pub rotation: Rotation,
    pub handover: Time,
    pub start: Date,
}

/// Sets (replaces) a team's rota. Every member must belong to the team.
pub async fn set(
    store: &Store,
    now: Millis,
    actor: &Actor,
    team: &Handle,
    spec: &RotaSpec,
) -> Result<()> {
    if spec.members.is_empty() {
        return Err(Error::invalid("a rota needs at least one member"));
    }
    let team_id = team_id(store, team).await?;
    let mut ids = Vec::with_capacity(spec.members.len());
    for handle in &spec.members {
        let id: Option<WorkerId> = sqlx::query_scalar(
            "SELECT w.id FROM workers w JOIN mailbox_members m ON m.worker_id = w.id \
             WHERE w.handle = $1 AND m.mailbox_id = $2",
        )
        .bind(handle.as_str())
        .bind(&team_id)
        .fetch_optional(store.pool())
        .await?;
        ids.push(
            id.ok_or_else(|| Error::invalid(format!("{handle} is not a member of team {team}")))?,
        );
    }
    let minute = i64::from(spec.handover.hour()) * 60 + i64::from(spec.handover.minute());
    let detail = format!(
        "rotation={} handover={:02}:{:02} from={} members={}",
        spec.rotation.as_str(),
        spec.handover.hour(),
        spec.handover.minute(),
        spec.start,
        spec.members
            .iter()
            .map(Handle::as_str)
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut wtx = store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, Action::OncallRotaSet, team.as_str()).detail(&detail),
    )
    .await?;
    sqlx::query("DELETE FROM oncall_rota_members WHERE team_mailbox_id = $1")
        .bind(&team_id)
        .execute(wtx.conn())
        .await?;
    sqlx::query("DELETE FROM oncall_rotas WHERE team_mailbox_id = $1")
        .bind(&team_id)
        .execute(wtx.conn())
        .await?;
    sqlx::query(
        "INSERT INTO oncall_rotas (team_mailbox_id, rotation, handover_minute, start_date, updated_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&team_id)
    .bind(spec.rotation.as_str())
    .bind(minute)
    .bind(spec.start.to_string())
    .bind(now)
    .execute(wtx.conn())
    .await?;
    for (position, id) in ids.iter().enumerate() {
        sqlx::query(
            "INSERT INTO oncall_rota_members (team_mailbox_id, position, worker_id) VALUES ($1, $2, $3)",
        )
        .bind(&team_id)
        .bind(position as i64)
        .bind(id)
        .execute(wtx.conn())
        .await?;
    }
    wtx.commit().await
}

/// What `oncall override` adds.
pub struct OverrideSpec {
    pub worker: Handle,
    pub role: Role,
    pub starts_at: Millis,
    pub ends_at: Millis,
}

/// Adds an override; its id. The worker must belong to the team.
pub async fn add_override(
    store: &Store,
    now: Millis,
    actor: &Actor,
    team: &Handle,
    spec: &OverrideSpec,
) -> Result<OverrideId> {
    if spec.ends_at <= spec.starts_at {
        return Err(Error::invalid("an override ends after it starts"));
    }
    if spec.ends_at <= now {
        return Err(Error::invalid("that override would already be over"));
    }
    let team_id = team_id(store, team).await?;
    let worker_id: WorkerId = sqlx::query_scalar(
        "SELECT w.id FROM workers w JOIN mailbox_members m ON m.worker_id = w.id \
         WHERE w.handle = $1 AND m.mailbox_id = $2",
    )
    .bind(spec.worker.as_str())
    .bind(&team_id)
    .fetch_optional(store.pool())
    .await?
    .ok_or_else(|| Error::invalid(format!("{} is not a member of team {team}", spec.worker)))?;
    let id = OverrideId::random();
    let detail = format!(
        "worker={} role={} from={} until={}",
        spec.worker,
        spec.role.as_str(),
        crate::clock::rfc3339(spec.starts_at),
        crate::clock::rfc3339(spec.ends_at)
    );
    let mut wtx = store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, Action::OncallOverrideAdded, id.as_str())
            .detail(&format!("team={team} {detail}")),
    )
    .await?;
    sqlx::query(
        "INSERT INTO oncall_overrides (id, team_mailbox_id, worker_id, role, starts_at, ends_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(&team_id)
    .bind(&worker_id)
    .bind(spec.role.as_str())
    .bind(spec.starts_at)
    .bind(spec.ends_at)
    .bind(now)
    .execute(wtx.conn())
    .await?;
    wtx.commit().await?;
    Ok(id)
}

/// Removes an override by id.
pub async fn remove_override(
    store: &Store,
    now: Millis,
    actor: &Actor,
    id: &OverrideId,
) -> Result<()> {
    let mut wtx = store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, Action::OncallOverrideRemoved, id.as_str()),
    )
    .await?;
    let removed = sqlx::query("DELETE FROM oncall_overrides WHERE id = $1")
        .bind(id)
        .execute(wtx.conn())
        .await?;
    if removed.rows_affected() == 0 {
        return Err(Error::NotFound("override"));
    }
    wtx.commit().await
}

/// Team mailbox ids that have a rota (the teams with an on-call duty).
pub async fn teams_with_rota(store: &Store) -> Result<Vec<MailboxId>> {
    Ok(
        sqlx::query_scalar("SELECT team_mailbox_id FROM oncall_rotas ORDER BY team_mailbox_id")
            .fetch_all(store.pool())
            .await?,
    )
}

#[cfg(test)]
mod tests;
