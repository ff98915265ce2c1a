//! The on-call duty: rotas, overrides, who is on call, the schedule with its gaps, escalation
//! policies, manual pages, and alerts (list, acknowledge, resolve).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::{Admin, CliResult};
use crate::oncall::alert::{self, Closer, Via};
use crate::oncall::policy::{self, Policy};
use crate::oncall::rota::{self, OverrideSpec, Role, RotaSpec, Rotation};
use crate::worker::Handle;

#[derive(Subcommand)]
pub(super) enum OnCallCommand {
    /// Set a team's rota: its members take turns in this order, handing over at a local time. Without
    /// --members: show the rota.
    Rota {
        team: String,
        /// Handles, in turn: h1,h2,h3.
        #[arg(long, value_delimiter = ',')]
        members: Vec<String>,
        /// daily or weekly.
        #[arg(long, default_value = "weekly")]
        rotation: String,
        /// Local time of every handover (Europe/Amsterdam by default), HH:MM.
        #[arg(long, default_value = "09:00")]
        handover: String,
        /// Local date of the first handover (YYYY-MM-DD); default today.
        #[arg(long, value_name = "DATE")]
        from: Option<String>,
    },
    /// Put a worker on call for a while (`override TEAM --worker H --from TIME --until TIME`), or
    /// `override list TEAM`, `override remove ID`.
    Override(OverrideArgs),
    /// Who is on call (primary and secondary) now, or at --at.
    Now {
        team: String,
        /// A local time (2026-12-24 18:00) or RFC 3339.
        #[arg(long)]
        at: Option<String>,
    },
    /// The plan for the coming days, split at every handover and override; every gap (nobody on
    /// call) is flagged.
    Schedule {
        team: String,
        #[arg(long, default_value_t = 14)]
        days: u32,
    },
    /// Set a team's escalation policy from a TOML file; without FILE show the policy in force;
    /// --reset returns the team to the configured default.
    Policy {
        team: String,
        file: Option<PathBuf>,
        #[arg(long, conflicts_with = "file")]
        reset: bool,
    },
    /// Page the team's on-call duty by hand.
    Page { team: String },
    /// Alerts, newest first (unresolved only, unless --all).
    Alerts {
        team: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Acknowledge an alert (by id or code): no further notification of it goes out.
    Ack { alert: String },
    /// Resolve an alert (by id or code).
    Resolve { alert: String },
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(super) struct OverrideArgs {
    #[command(subcommand)]
    command: Option<OverrideCommand>,
    team: Option<String>,
    #[arg(long)]
    worker: Option<String>,
    /// A local time (2026-12-24 18:00) or RFC 3339.
    #[arg(long)]
    from: Option<String>,
    #[arg(long)]
    until: Option<String>,
    /// primary or secondary.
    #[arg(long, default_value = "primary")]
    role: String,
}

#[derive(Subcommand)]
enum OverrideCommand {
    /// The overrides of a team that have not ended.
    List { team: String },
    /// Remove an override by id.
    Remove { id: String },
}

#[derive(Serialize)]
struct RotaView {
    team: String,
    rotation: Option<Rotation>,
    handover: Option<String>,
    from: Option<String>,
    /// In turn; null is a place nobody holds (its worker left the team).
    members: Vec<Option<String>>,
}

#[derive(Serialize)]
struct OverrideView {
    id: String,
    worker: String,
    role: Role,
    from: String,
    until: String,
}

#[derive(Serialize)]
struct SegmentView {
    from: String,
    until: String,
    primary: Option<String>,
    secondary: Option<String>,
    gap: bool,
}

#[derive(Serialize)]
struct ScheduleView {
    team: String,
    from: String,
    until: String,
    gaps: usize,
    segments: Vec<SegmentView>,
}

pub(super) async fn run(admin: &Admin, command: OnCallCommand) -> CliResult {
    let tz = rota::time_zone(&admin.config.oncall.time_zone)?;
    let now = admin.now();
    match command {
        OnCallCommand::Rota {
            team,
            members,
            rotation,
            handover,
            from,
        } => {
            let team = Handle::parse(&team)?;
            if !members.is_empty() {
                let start = match from {
                    Some(date) => date
                        .trim()
                        .parse()
                        .map_err(|_| crate::Error::invalid("--from is a date: YYYY-MM-DD"))?,
                    None => jiff::Timestamp::from_millisecond(now)?
                        .to_zoned(tz.clone())
                        .date(),
                };
                let spec = RotaSpec {
                    members: members
                        .iter()
                        .map(|m| Handle::parse(m))
                        .collect::<crate::Result<_>>()?,
                    rotation: Rotation::parse(&rotation)?,
                    handover: rota::parse_handover(&handover)?,
                    start,
                };
                rota::set(&admin.store, now, &admin.actor, &team, &spec).await?;
            }
            let duty = load(admin, &team, now).await?;
            let view = RotaView {
                team: duty.team.clone(),
                rotation: duty.rota.as_ref().map(|r| r.rotation),
                handover: duty
                    .rota
                    .as_ref()
                    .map(|r| format!("{:02}:{:02}", r.handover.hour(), r.handover.minute())),
                from: duty.rota.as_ref().map(|r| r.start.to_string()),
                members: duty
                    .rota
                    .as_ref()
                    .map(|r| {
                        r.members
                            .iter()
                            .map(|m| m.as_ref().map(|m| m.handle.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            admin.out.show(&view, || match &view.rotation {
                None => format!("team {} has no rota", view.team),
                Some(rotation) => format!(
                    "team {}: {} rotation, handover {} ({}), from {}: {}",
                    view.team,
                    rotation.as_str(),
                    view.handover.as_deref().unwrap_or(""),
                    admin.config.oncall.time_zone,
                    view.from.as_deref().unwrap_or(""),
                    view.members
                        .iter()
                        .map(|m| m.as_deref().unwrap_or("(vacant)"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        OnCallCommand::Override(args) => return run_override(admin, args, &tz).await,
        OnCallCommand::Now { team, at } => {
            let team = Handle::parse(&team)?;
            let at = match at {
                Some(text) => rota::parse_time(&text, &tz)?,
                None => now,
            };
            let team_id = rota::team_id(&admin.store, &team).await?;
            let view = crate::oncall::now_and_next(&admin.store, &tz, &team_id, at, now).await?;
            admin.out.show(&view, || {
                let mut text = format!(
                    "{} at {}: primary {}, secondary {}",
                    view.team,
                    view.at,
                    view.primary.as_deref().unwrap_or("NOBODY (gap)"),
                    view.secondary.as_deref().unwrap_or("none")
                );
                if let Some(next) = &view.next {
                    text.push_str(&format!(
                        "\nnext from {}: primary {}, secondary {}",
                        next.at,
                        next.primary.as_deref().unwrap_or("NOBODY (gap)"),
                        next.secondary.as_deref().unwrap_or("none")
                    ));
                }
                text
            });
        }
        OnCallCommand::Schedule { team, days } => {
            let team = Handle::parse(&team)?;
            if days == 0 || days > 366 {
                return Err("--days is between 1 and 366".into());
            }
            let until = now + i64::from(days) * 86_400_000;
            let duty = load(admin, &team, now).await?;
            let segments: Vec<SegmentView> = duty
                .schedule(&tz, now, until)
                .into_iter()
                .map(|s| SegmentView {
                    from: rota::local_rfc3339(s.starts_at, &tz),
                    until: rota::local_rfc3339(s.ends_at, &tz),
                    gap: s.duty.is_gap(),
                    primary: s.duty.primary.map(|m| m.handle),
                    secondary: s.duty.secondary.map(|m| m.handle),
                })
                .collect();
            let view = ScheduleView {
                team: duty.team.clone(),
                from: rota::local_rfc3339(now, &tz),
                until: rota::local_rfc3339(until, &tz),
                gaps: segments.iter().filter(|s| s.gap).count(),
                segments,
            };
            admin.out.show(&view, || {
                let mut lines: Vec<String> = duty
                    .schedule(&tz, now, until)
                    .iter()
                    .map(|s| {
                        let span = format!(
                            "{} – {}",
                            rota::local_text(s.starts_at, &tz),
                            rota::local_text(s.ends_at, &tz)
                        );
                        match &s.duty.primary {
                            None => format!("{span}  GAP: nobody on call"),
                            Some(primary) => format!(
                                "{span}  primary {}, secondary {}",
                                primary.handle,
                                s.duty
                                    .secondary
                                    .as_ref()
                                    .map(|m| m.handle.as_str())
                                    .unwrap_or("none")
                            ),
                        }
                    })
                    .collect();
                lines.push(match view.gaps {
                    0 => "no gaps".to_string(),
                    n => format!("{n} gap(s): fill them with `oncall override` or a new rota"),
                });
                lines.join("\n")
            });
        }
        OnCallCommand::Policy { team, file, reset } => {
            let team = Handle::parse(&team)?;
            if reset {
                policy::reset(&admin.store, now, &admin.actor, &team).await?;
            } else if let Some(file) = file {
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| format!("reading {}: {e}", file.display()))?;
                policy::set(&admin.store, now, &admin.actor, &team, &text).await?;
            }
            let team_id = rota::team_id(&admin.store, &team).await?;
            let own = {
                let mut conn = admin.store.pool().acquire().await?;
                policy::team_policy(&mut conn, &team_id).await?
            };
            let source = if own.is_some() { "team" } else { "default" };
            let in_force: Policy = own.unwrap_or_else(|| admin.config.oncall.policy.clone());
            admin.out.show(
                &serde_json::json!({ "team": team, "source": source, "policy": in_force }),
                || {
                    let mut lines = vec![format!("team {team} ({source} policy):")];
                    lines.extend(in_force.describe().into_iter().map(|l| format!("  {l}")));
                    lines.join("\n")
                },
            );
        }
        OnCallCommand::Page { team } => {
            let team = Handle::parse(&team)?;
            let raised = alert::page(&admin.store, now, &team, &admin.actor, None).await?;
            admin.out.show(&raised, || {
                format!(
                    "alert {} raised for {team} (code {}); the relay pages the duty within its poll interval",
                    raised.id, raised.code
                )
            });
        }
        OnCallCommand::Alerts { team, all } => {
            let team = team.map(|t| Handle::parse(&t)).transpose()?;
            let alerts = alert::list_all(&admin.store, team.as_ref(), all).await?;
            admin.out.show(&alerts, || {
                if alerts.is_empty() {
                    "no alerts".to_string()
                } else {
                    alerts
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join("\n")
                }
            });
        }
        OnCallCommand::Ack { alert: which } => {
            let found = alert::find(&admin.store, which.trim()).await?;
            let closed = alert::acknowledge(
                &admin.store,
                now,
                &found.id,
                Closer::Admin(&admin.actor),
                Via::Cli,
            )
            .await?;
            admin.out.show(
                &serde_json::json!({ "id": found.id, "code": found.code, "result": closed }),
                || format!("alert {} (code {}): {closed:?}", found.id, found.code),
            );
        }
        OnCallCommand::Resolve { alert: which } => {
            let found = alert::find(&admin.store, which.trim()).await?;
            let closed = alert::resolve(
                &admin.store,
                now,
                &found.id,
                Closer::Admin(&admin.actor),
                Via::Cli,
            )
            .await?;
            admin.out.show(
                &serde_json::json!({ "id": found.id, "code": found.code, "result": closed }),
                || format!("alert {} (code {}): {closed:?}", found.id, found.code),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn load(admin: &Admin, team: &Handle, now: i64) -> CliResult<rota::TeamDuty> {
    let team_id = rota::team_id(&admin.store, team).await?;
    let mut conn = admin.store.pool().acquire().await?;
    Ok(rota::load(&mut conn, &team_id, now).await?)
}

async fn run_override(admin: &Admin, args: OverrideArgs, tz: &jiff::tz::TimeZone) -> CliResult {
    let now = admin.now();
    match args.command {
        Some(OverrideCommand::Remove { id }) => {
            let override_id = crate::ids::OverrideId::parse(id.trim())
                .ok_or(crate::Error::NotFound("override"))?;
            rota::remove_override(&admin.store, now, &admin.actor, &override_id).await?;
            admin.out.show(&serde_json::json!({ "removed": id }), || {
                format!("override {id} removed")
            });
        }
        Some(OverrideCommand::List { team }) => {
            let team = Handle::parse(&team)?;
            let duty = load(admin, &team, now).await?;
            let views: Vec<OverrideView> = duty.overrides.iter().map(|o| view(o, tz)).collect();
            admin.out.show(&views, || {
                if views.is_empty() {
                    format!("team {team} has no overrides")
                } else {
                    views
                        .iter()
                        .map(|o| {
                            format!(
                                "{}\t{}\t{}\t{} – {}",
                                o.id,
                                o.worker,
                                o.role.as_str(),
                                o.from,
                                o.until
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                }
            });
        }
        None => {
            let (Some(team), Some(worker), Some(from), Some(until)) =
                (args.team, args.worker, args.from, args.until)
            else {
                return Err(
                    "usage: oncall override TEAM --worker HANDLE --from TIME --until TIME".into(),
                );
            };
            let team = Handle::parse(&team)?;
            let spec = OverrideSpec {
                worker: Handle::parse(&worker)?,
                role: Role::parse(&args.role)?,
                starts_at: rota::parse_time(&from, tz)?,
                ends_at: rota::parse_time(&until, tz)?,
            };
            let id = rota::add_override(&admin.store, now, &admin.actor, &team, &spec).await?;
            let shown = OverrideView {
                id: id.to_string(),
                worker: spec.worker.to_string(),
                role: spec.role,
                from: rota::local_rfc3339(spec.starts_at, tz),
                until: rota::local_rfc3339(spec.ends_at, tz),
            };
            admin.out.show(&shown, || {
                format!(
                    "override {id}: {} is {} on call for {team} from {} until {}",
                    shown.worker,
                    shown.role.as_str(),
                    shown.from,
                    shown.until
                )
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn view(o: &rota::Override<rota::Member>, tz: &jiff::tz::TimeZone) -> OverrideView {
    OverrideView {
        id: o.id.clone(),
        worker: o.worker.handle.clone(),
        role: o.role,
        from: rota::local_rfc3339(o.starts_at, tz),
        until: rota::local_rfc3339(o.ends_at, tz),
    }
}
