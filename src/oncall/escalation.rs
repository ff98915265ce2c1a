//! The pure escalation decision: given an alert, its team's policy, who is on call, and the time,
//! which notifications are due now and when the next step is. It never ends by itself: past the last
//! step, the last step repeats every `repeat_every` for as long as the alert is open.
//!
//! An alert for one worker (an urgent message or a referral to their own alias) first pages that
//! worker over the first step's channels; the policy's steps follow `addressee_first` later.
//!
//! Steps are numbered from 0 over this whole timeline (the addressee's step, the policy's steps, then
//! the repeats). The store keeps the number of the next step; when several fell due at once (the
//! relay was down), they fire together as one: everyone they would have paged, once.

use super::notify::ChannelKind;
use super::policy::{Policy, Step, Target};
use crate::clock::Millis;

/// The alert, as far as the decision goes.
#[derive(Clone, Debug)]
pub struct AlertFacts<W> {
    pub raised_at: Millis,
    /// The next step not yet fired.
    pub next_step: i64,
    /// Not acknowledged and not resolved.
    pub open: bool,
    pub addressee: Option<W>,
}

/// The people a step can reach.
#[derive(Clone, Debug)]
pub struct People<W> {
    pub primary: Option<W>,
    pub secondary: Option<W>,
    /// Every member of the team.
    pub members: Vec<W>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision<W> {
    /// The step these notifications belong to (the last one that fell due), when any fell due.
    pub step: Option<i64>,
    /// Who is paged now, over which channel; each pair once.
    pub notify: Vec<(W, ChannelKind)>,
    /// The next step not yet fired.
    pub next_step: i64,
    /// When it falls due; `None` once the alert is closed.
    pub next_due_at: Option<Millis>,
}

/// A step of the timeline: its delay after the alert was raised and what it does.
struct TimelineStep<'a> {
    after: Millis,
    step: StepKind<'a>,
}

enum StepKind<'a> {
    Addressee(&'a [ChannelKind]),
    Policy(&'a Step),
}

/// Steps before the repeats start.
fn timeline(policy: &Policy, has_addressee: bool) -> Vec<TimelineStep<'_>> {
    let mut steps = Vec::with_capacity(policy.steps.len() + 1);
    let offset = if has_addressee {
        steps.push(TimelineStep {
            after: 0,
            step: StepKind::Addressee(&policy.steps[0].channels),
        });
        policy.addressee_first.millis()
    } else {
        0
    };
    steps.extend(policy.steps.iter().map(|s| TimelineStep {
        after: offset + s.after.millis(),
        step: StepKind::Policy(s),
    }));
    steps
}

/// Index into the timeline, and the delay after raising, of step `k`.
fn resolve(timeline: &[TimelineStep<'_>], repeat_every: Millis, k: i64) -> (usize, Millis) {
    let n = timeline.len() as i64;
    if k < n {
        let i = k.max(0) as usize;
        (i, timeline[i].after)
    } else {
        let last = timeline.len() - 1;
        let repeats = k - (n - 1);
        (
            last,
            timeline[last]
                .after
                .saturating_add(repeats.saturating_mul(repeat_every)),
        )
    }
}

/// When step `k` of an alert raised at `raised_at` falls due.
pub fn due_at(policy: &Policy, has_addressee: bool, raised_at: Millis, k: i64) -> Millis {
    let timeline = timeline(policy, has_addressee);
    raised_at.saturating_add(resolve(&timeline, policy.repeat_every.millis(), k).1)
}

/// The last step due at `now` (at least `from`), or `None` when step `from` is not yet due.
fn last_due(
    timeline: &[TimelineStep<'_>],
    repeat_every: Millis,
    raised_at: Millis,
    from: i64,
    now: Millis,
) -> Option<i64> {
    let elapsed = now - raised_at;
    if resolve(timeline, repeat_every, from).1 > elapsed {
        return None;
    }
    let n = timeline.len() as i64;
    let last_after = timeline[timeline.len() - 1].after;
    if elapsed >= last_after {
        // Into the repeats: step n-1 at last_after, then one every repeat_every.
        Some((n - 1 + (elapsed - last_after) / repeat_every.max(1)).max(from))
    } else {
        let k = (from..n)
            .take_while(|&k| resolve(timeline, repeat_every, k).1 <= elapsed)
            .last()
            .unwrap_or(from);
        Some(k)
    }
}

/// The decision. `available` are the channels this relay can use; others in the policy are skipped.
pub fn decide<W: Clone + PartialEq>(
    policy: &Policy,
    alert: &AlertFacts<W>,
    people: &People<W>,
    available: &[ChannelKind],
    now: Millis,
) -> Decision<W> {
    if !alert.open {
        return Decision {
            step: None,
            notify: Vec::new(),
            next_step: alert.next_step,
            next_due_at: None,
        };
    }
    let timeline = timeline(policy, alert.addressee.is_some());
    let repeat = policy.repeat_every.millis();
    let Some(last) = last_due(&timeline, repeat, alert.raised_at, alert.next_step, now) else {
        return Decision {
            step: None,
            notify: Vec::new(),
            next_step: alert.next_step,
            next_due_at: Some(due_at(
                policy,
                alert.addressee.is_some(),
                alert.raised_at,
                alert.next_step,
            )),
        };
    };
    // Every distinct timeline step among those due (the repeats are the last one again).
    let first_index = resolve(&timeline, repeat, alert.next_step).0;
    let last_index = resolve(&timeline, repeat, last).0;
    let mut notify: Vec<(W, ChannelKind)> = Vec::new();
    let mut add = |worker: &W, channel: ChannelKind| {
        if available.contains(&channel) && !notify.iter().any(|(w, c)| w == worker && *c == channel)
        {
            notify.push((worker.clone(), channel));
        }
    };
    for step in &timeline[first_index..=last_index] {
        match step.step {
            StepKind::Addressee(channels) => {
                if let Some(addressee) = &alert.addressee {
                    for &channel in channels {
                        add(addressee, channel);
                    }
                }
            }
            StepKind::Policy(step) => {
                for worker in targets(&step.notify, people) {
                    for &channel in &step.channels {
                        add(&worker, channel);
                    }
                }
            }
        }
    }
    let next_step = last + 1;
    Decision {
        step: Some(last),
        notify,
        next_step,
        next_due_at: Some(due_at(
            policy,
            alert.addressee.is_some(),
            alert.raised_at,
            next_step,
        )),
    }
}

/// The workers a step's targets name. A place nobody holds (a gap) falls to every member: someone
/// must always be reached.
fn targets<W: Clone + PartialEq>(notify: &[Target], people: &People<W>) -> Vec<W> {
    let mut workers: Vec<W> = Vec::new();
    let mut add = |w: &W| {
        if !workers.contains(w) {
            workers.push(w.clone());
        }
    };
    for target in notify {
        let holder = match target {
            Target::Primary => &people.primary,
            Target::Secondary => &people.secondary,
            Target::Members => &None,
        };
        match holder {
            Some(worker) => add(worker),
            None => people.members.iter().for_each(&mut add),
        }
    }
    workers
}

/// Whom to ring for a call to the team's number, in order: the primary, the secondary, then the
/// other members. (The phone capability asks this; each is rung until one answers.)
pub fn ring_order<W: Clone + PartialEq>(people: &People<W>) -> Vec<W> {
    let mut order: Vec<W> = Vec::new();
    for worker in people
        .primary
        .iter()
        .chain(people.secondary.iter())
        .chain(people.members.iter())
    {
        if !order.contains(worker) {
            order.push(worker.clone());
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oncall::policy::Delay;
    use ChannelKind::{Call, Email, Sms};

    const MIN: Millis = 60_000;

    fn step(after_min: i64, notify: &[Target], channels: &[ChannelKind]) -> Step {
        Step {
            after: Delay::from_secs(after_min * 60),
            notify: notify.to_vec(),
            channels: channels.to_vec(),
        }
    }

    /// The example: primary by SMS and call at 0; primary again at 3 min; secondary at
    /// 6 min; every member at 10 min; then every 10 min.
    fn policy() -> Policy {
        Policy {
            repeat_every: Delay::from_secs(600),
            addressee_first: Delay::from_secs(180),
            steps: vec![
                step(0, &[Target::Primary], &[Sms, Call]),
                step(3, &[Target::Primary], &[Sms, Call]),
                step(6, &[Target::Secondary], &[Sms, Call, Email]),
                step(10, &[Target::Members], &[Sms]),
            ],
        }
    }

    fn people() -> People<&'static str> {
        People {
            primary: Some("p"),
            secondary: Some("s"),
            members: vec!["p", "s", "m"],
        }
    }

    fn alert(next_step: i64) -> AlertFacts<&'static str> {
        AlertFacts {
            raised_at: 1_000_000,
            next_step,
            open: true,
            addressee: None,
        }
    }

    const ALL: [ChannelKind; 3] = [Sms, Call, Email];

    #[test]
    fn steps_fire_at_their_delays() {
        let p = policy();
        let raised = 1_000_000;
        let d = decide(&p, &alert(0), &people(), &ALL, raised);
        assert_eq!(d.step, Some(0));
        assert_eq!(d.notify, vec![("p", Sms), ("p", Call)]);
        assert_eq!(d.next_due_at, Some(raised + 3 * MIN));
        // Not yet due: nothing, and the same next step.
        let d = decide(&p, &alert(1), &people(), &ALL, raised + 3 * MIN - 1);
        assert_eq!((d.step, d.notify.len(), d.next_step), (None, 0, 1));
        assert_eq!(d.next_due_at, Some(raised + 3 * MIN));
        // Primary does not answer: the secondary at 6 minutes.
        let d = decide(&p, &alert(2), &people(), &ALL, raised + 6 * MIN);
        assert_eq!(d.notify, vec![("s", Sms), ("s", Call), ("s", Email)]);
        assert_eq!(d.next_due_at, Some(raised + 10 * MIN));
        let d = decide(&p, &alert(3), &people(), &ALL, raised + 10 * MIN);
        assert_eq!(d.notify, vec![("p", Sms), ("s", Sms), ("m", Sms)]);
        assert_eq!(d.next_due_at, Some(raised + 20 * MIN));
    }

    #[test]
    fn it_never_ends_by_itself() {
        let p = policy();
        let raised = 1_000_000;
        let mut next = 4;
        for repeat in 1..=500 {
            let now = raised + 10 * MIN + repeat * 10 * MIN;
            let d = decide(&p, &alert(next), &people(), &ALL, now);
            assert_eq!(d.step, Some(next), "repeat {repeat}");
            assert_eq!(d.notify.len(), 3);
            assert_eq!(d.next_due_at, Some(now + 10 * MIN));
            next = d.next_step;
        }
    }

    #[test]
    fn a_closed_alert_sends_nothing_more() {
        let mut a = alert(2);
        a.open = false;
        let d = decide(&policy(), &a, &people(), &ALL, 1_000_000 + 60 * MIN);
        assert!(d.notify.is_empty());
        assert_eq!(d.next_due_at, None);
    }

    #[test]
    fn steps_missed_while_down_fire_once_together() {
        // Down from 1 to 8 minutes: steps 1 (primary again) and 2 (secondary) fire as one.
        let d = decide(&policy(), &alert(1), &people(), &ALL, 1_000_000 + 8 * MIN);
        assert_eq!(d.step, Some(2));
        assert_eq!(
            d.notify,
            vec![
                ("p", Sms),
                ("p", Call),
                ("s", Sms),
                ("s", Call),
                ("s", Email)
            ]
        );
        assert_eq!(d.next_step, 3);
        // Down for a day: one round of everyone, the next repeat on the 10-minute grid.
        let now = 1_000_000 + 24 * 60 * MIN + 5 * MIN;
        let d = decide(&policy(), &alert(1), &people(), &ALL, now);
        assert_eq!(d.notify.len(), 6);
        let next = d.next_due_at.unwrap();
        assert!(next > now && next <= now + 10 * MIN);
        assert_eq!((next - 1_000_000) % (10 * MIN), 0);
    }

    #[test]
    fn the_addressee_is_paged_first() {
        let mut a = alert(0);
        a.addressee = Some("w");
        let p = policy();
        let d = decide(&p, &a, &people(), &ALL, 1_000_000);
        assert_eq!(d.notify, vec![("w", Sms), ("w", Call)]);
        assert_eq!(d.next_due_at, Some(1_000_000 + 3 * MIN));
        a.next_step = 1;
        let d = decide(&p, &a, &people(), &ALL, 1_000_000 + 3 * MIN);
        assert_eq!(d.notify, vec![("p", Sms), ("p", Call)]);
        assert_eq!(d.next_due_at, Some(1_000_000 + 6 * MIN));
    }

    #[test]
    fn a_gap_pages_every_member() {
        let nobody = People {
            primary: None,
            secondary: None,
            members: vec!["a", "b"],
        };
        let d = decide(&policy(), &alert(0), &nobody, &ALL, 1_000_000);
        assert_eq!(
            d.notify,
            vec![("a", Sms), ("a", Call), ("b", Sms), ("b", Call)]
        );
    }

    #[test]
    fn unavailable_channels_are_skipped_and_the_escalation_goes_on() {
        let d = decide(
            &policy(),
            &alert(2),
            &people(),
            &[Email],
            1_000_000 + 6 * MIN,
        );
        assert_eq!(d.notify, vec![("s", Email)]);
        let d = decide(&policy(), &alert(0), &people(), &[Email], 1_000_000);
        assert!(d.notify.is_empty());
        assert_eq!(d.next_step, 1);
        assert_eq!(d.next_due_at, Some(1_000_000 + 3 * MIN));
    }

    #[test]
    fn ring_order_is_primary_secondary_then_the_rest() {
        assert_eq!(ring_order(&people()), vec!["p", "s", "m"]);
        let nobody = People {
            primary: None,
            secondary: None,
            members: vec!["a", "b"],
        };
        assert_eq!(ring_order(&nobody), vec!["a", "b"]);
    }
}
