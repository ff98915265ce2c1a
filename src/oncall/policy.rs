//! Escalation policies: ordered steps ("primary by SMS and call at 0 s; primary again at 3 min;
//! secondary at 6 min; every member at 10 min"), and the interval at which the last step repeats
//! until someone acknowledges. A policy never ends by itself.
//!
//! The format is TOML, the same in `config/schuilnaam.toml` (`[oncall.policy]`, the default) and in
//! a team's own file (`schuilnaam oncall policy TEAM FILE.toml`):
//!
//! ```toml
//! repeat_every = "10m"      # the last step again, every 10 minutes, until acknowledged
//! addressee_first = "3m"    # an alert for one worker pages them first; the steps start 3 min later
//! [[step]]
//! after = "0s"
//! notify = ["primary"]      # primary, secondary, members
//! channels = ["sms", "call", "email"]
//! ```

use std::fmt;

use figment::providers::{Format, Toml};
use figment::Figment;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::notify::ChannelKind;
use crate::audit::{self, Action, Actor, Event};
use crate::clock::Millis;
use crate::error::{Error, Result};
use crate::store::Store;
use crate::worker::Handle;

/// A non-negative delay, written as `"0s"`, `"3m"`, `"1h30m"` or ISO 8601 (`"PT3M"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Delay(Millis);

impl Delay {
    pub fn from_secs(seconds: i64) -> Self {
        Self(seconds * 1000)
    }

    pub fn millis(self) -> Millis {
        self.0
    }

    pub fn parse(text: &str) -> Result<Self> {
        let duration: jiff::SignedDuration = text.trim().parse().map_err(|_| {
            Error::invalid(format!(
                "{text:?} is not a duration (write \"0s\", \"90s\", \"3m\", \"1h\")"
            ))
        })?;
        if duration.is_negative() {
            return Err(Error::invalid("a delay cannot be negative"));
        }
        i64::try_from(duration.as_millis())
            .map(Self)
            .map_err(|_| Error::invalid("that delay is too long"))
    }
}

impl fmt::Display for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = jiff::SignedDuration::from_millis(self.0);
        if self.0 == 0 {
            f.write_str("0s")
        } else {
            write!(f, "{d:#}")
        }
    }
}

impl<'de> Deserialize<'de> for Delay {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Delay::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Delay {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

/// Whom a step pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Whoever is on call as primary (nobody on call: every member of the team).
    Primary,
    /// Whoever is on call as secondary (nobody: every member of the team).
    Secondary,
    /// Every member of the team.
    Members,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Primary => "primary",
            Target::Secondary => "secondary",
            Target::Members => "members",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// After the alert was raised (after `addressee_first` for an alert for one worker).
    pub after: Delay,
    pub notify: Vec<Target>,
    pub channels: Vec<ChannelKind>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The last step again, this often, until the alert is acknowledged or resolved.
    pub repeat_every: Delay,
    /// An alert for one worker (an urgent message or a referral to their own alias) pages that
    /// worker first, over the first step's channels; the steps follow this much later.
    #[serde(default = "default_addressee_first")]
    pub addressee_first: Delay,
    #[serde(rename = "step")]
    pub steps: Vec<Step>,
}

fn default_addressee_first() -> Delay {
    Delay::from_secs(180)
}

/// The shortest repeat interval: a policy that pages every few seconds would be a flood.
const MIN_REPEAT_MILLIS: Millis = 60_000;
/// The longest delay of any step.
const MAX_DELAY_MILLIS: Millis = 7 * 86_400_000;

impl Policy {
    /// Parses and checks a policy file.
    pub fn from_toml(text: &str) -> Result<Self> {
        let policy: Policy = Figment::from(Toml::string(text))
            .extract()
            .map_err(|e| Error::invalid(format!("policy: {e}")))?;
        policy.validate()?;
        Ok(policy)
    }

    pub fn validate(&self) -> Result<()> {
        if self.steps.is_empty() {
            return Err(Error::invalid("a policy needs at least one [[step]]"));
        }
        if self.repeat_every.millis() < MIN_REPEAT_MILLIS {
            return Err(Error::invalid(
                "repeat_every must be at least 1m: an alert keeps escalating until acknowledged",
            ));
        }
        if self.addressee_first.millis() > MAX_DELAY_MILLIS {
            return Err(Error::invalid("addressee_first is at most 7 days"));
        }
        let mut previous = Delay::default();
        for (i, step) in self.steps.iter().enumerate() {
            let n = i + 1;
            if step.after < previous {
                return Err(Error::invalid(format!(
                    "step {n} comes before step {}: order the steps by `after`",
                    n - 1
                )));
            }
            if step.after.millis() > MAX_DELAY_MILLIS {
                return Err(Error::invalid(format!("step {n}: after is at most 7 days")));
            }
            if step.notify.is_empty() {
                return Err(Error::invalid(format!(
                    "step {n}: notify names nobody (primary, secondary, members)"
                )));
            }
            if step.channels.is_empty() {
                return Err(Error::invalid(format!(
                    "step {n}: channels is empty (sms, call, email)"
                )));
            }
            previous = step.after;
        }
        Ok(())
    }

    /// One line per step, for people.
    pub fn describe(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .steps
            .iter()
            .map(|s| {
                format!(
                    "after {}: {} by {}",
                    s.after,
                    s.notify
                        .iter()
                        .map(|t| t.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    s.channels
                        .iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect();
        lines.push(format!(
            "then the last step again every {} until acknowledged",
            self.repeat_every
        ));
        lines.push(format!(
            "an alert for one worker pages them first; the steps start {} later",
            self.addressee_first
        ));
        lines
    }
}

/// A team's own policy, if it has one.
pub async fn team_policy(
    conn: &mut sqlx::AnyConnection,
    team_id: &crate::ids::MailboxId,
) -> Result<Option<Policy>> {
    let text: Option<String> =
        sqlx::query_scalar("SELECT policy FROM oncall_policies WHERE team_mailbox_id = $1")
            .bind(team_id)
            .fetch_optional(conn)
            .await?;
    text.map(|t| Policy::from_toml(&t)).transpose()
}

/// Sets a team's policy from a TOML text (checked first).
pub async fn set(
    store: &Store,
    now: Millis,
    actor: &Actor,
    team: &Handle,
    text: &str,
) -> Result<Policy> {
    let policy = Policy::from_toml(text)?;
    let team_id = super::rota::team_id(store, team).await?;
    let detail = format!(
        "steps={} repeat_every={}",
        policy.steps.len(),
        policy.repeat_every
    );
    let mut wtx = store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, Action::OncallPolicySet, team.as_str()).detail(&detail),
    )
    .await?;
    sqlx::query("DELETE FROM oncall_policies WHERE team_mailbox_id = $1")
        .bind(&team_id)
        .execute(wtx.conn())
        .await?;
    sqlx::query(
        "INSERT INTO oncall_policies (team_mailbox_id, policy, updated_at) VALUES ($1, $2, $3)",
    )
    .bind(&team_id)
    .bind(text)
    .bind(now)
    .execute(wtx.conn())
    .await?;
    wtx.commit().await?;
    Ok(policy)
}

/// Drops a team's own policy: the configured default holds again.
pub async fn reset(store: &Store, now: Millis, actor: &Actor, team: &Handle) -> Result<()> {
    let team_id = super::rota::team_id(store, team).await?;
    let mut wtx = store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, Action::OncallPolicyReset, team.as_str()),
    )
    .await?;
    sqlx::query("DELETE FROM oncall_policies WHERE team_mailbox_id = $1")
        .bind(&team_id)
        .execute(wtx.conn())
        .await?;
    wtx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
repeat_every = "10m"
[[step]]
after = "0s"
notify = ["primary"]
channels = ["sms", "call"]
[[step]]
after = "3m"
notify = ["primary"]
channels = ["sms", "call"]
[[step]]
after = "6m"
notify = ["secondary"]
channels = ["sms", "call", "email"]
[[step]]
after = "10m"
notify = ["members"]
channels = ["sms", "email"]
"#;

    #[test]
    fn the_example_policy_parses() {
        let policy = Policy::from_toml(EXAMPLE).unwrap();
        assert_eq!(policy.steps.len(), 4);
        assert_eq!(policy.steps[2].after.millis(), 360_000);
        assert_eq!(policy.repeat_every.millis(), 600_000);
        assert_eq!(policy.addressee_first.millis(), 180_000);
        assert_eq!(policy.steps[3].notify, vec![Target::Members]);
        assert_eq!(policy.describe()[1], "after 3m: primary by sms, call");
    }

    #[test]
    fn bad_policies_are_refused_with_a_reason() {
        let cases = [
            ("repeat_every = \"10m\"\nstep = []\n", "at least one"),
            (
                &EXAMPLE.replace("repeat_every = \"10m\"", "repeat_every = \"0s\""),
                "at least 1m",
            ),
            (
                &EXAMPLE.replace("after = \"3m\"", "after = \"12m\""),
                "order",
            ),
            (
                &EXAMPLE.replace("after = \"3m\"", "after = \"-3m\""),
                "negative",
            ),
            (
                &EXAMPLE.replace("after = \"3m\"", "after = \"soon\""),
                "duration",
            ),
            (&EXAMPLE.replace("\"secondary\"", "\"boss\""), "boss"),
            (&EXAMPLE.replace("\"email\"]", "\"pigeon\"]"), "pigeon"),
            (
                &EXAMPLE.replace("notify = [\"members\"]", "notify = []"),
                "nobody",
            ),
            (&format!("{EXAMPLE}\nescalate = true\n"), "escalate"),
        ];
        for (text, expected) in cases {
            let err = Policy::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }

    #[test]
    fn delays_print_as_they_are_written() {
        for text in ["0s", "3m", "1h 30m", "45s"] {
            let delay = Delay::parse(text).unwrap();
            assert_eq!(Delay::parse(&delay.to_string()).unwrap(), delay);
        }
        assert_eq!(Delay::parse("PT3M").unwrap().millis(), 180_000);
    }
}
