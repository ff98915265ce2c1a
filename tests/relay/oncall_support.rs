//! What the on-call tests share: channels that record every page (or fail like a provider that is
//! down), a relay with them installed before its first scheduler round, a team with a rota, and ways
//! to move the clock and wait until the scheduler has caught up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use schuilnaam::audit::Actor;
use schuilnaam::clock::ManualClock;
use schuilnaam::config::Config;
use schuilnaam::core::Core;
use schuilnaam::oncall::notify::{
    Channel, ChannelKind, Delivery, Purpose, SendError, SendFuture, Sent,
};
use schuilnaam::oncall::rota::{self, RotaSpec, Rotation};
use schuilnaam::worker::{self, Handle, NewWorker, Pseudonym};

use crate::helpers::{Backend, TestApp, TestWorker};

/// One notification as a channel received it.
#[derive(Clone, Debug)]
pub struct Page {
    /// Which relay instance sent it.
    pub instance: &'static str,
    pub channel: ChannelKind,
    pub notification_id: schuilnaam::ids::NotificationId,
    pub purpose: Purpose,
    pub step: i64,
    pub worker_id: String,
    pub phone: String,
    pub text: String,
}

impl Page {
    pub fn alert_id(&self) -> Option<&str> {
        match &self.purpose {
            Purpose::Alert { alert_id, .. } => Some(alert_id.as_str()),
            _ => None,
        }
    }

    pub fn code(&self) -> Option<&str> {
        match &self.purpose {
            Purpose::Alert { code, .. } => Some(code.as_str()),
            _ => None,
        }
    }
}

/// Where test channels record what they sent, shared by every channel and instance of a test.
#[derive(Clone, Default)]
pub struct Pager {
    pages: Arc<Mutex<Vec<Page>>>,
    /// Sends refused while the "provider" is down: (channel, step).
    failures: Arc<Mutex<Vec<(ChannelKind, i64)>>>,
    down: Arc<AtomicBool>,
}

impl Pager {
    pub fn pages(&self) -> Vec<Page> {
        self.pages.lock().unwrap().clone()
    }

    pub fn failures(&self) -> Vec<(ChannelKind, i64)> {
        self.failures.lock().unwrap().clone()
    }

    /// While down, every send fails as a provider's 503 would.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Waits (bounded, in real time) until `count` pages have arrived; they are returned.
    pub async fn wait_for(&self, count: usize) -> Vec<Page> {
        wait_until(
            || self.pages().len() >= count,
            || {
                format!(
                    "{} of {count} pages arrived: {:#?}",
                    self.pages().len(),
                    self.pages()
                )
            },
        )
        .await;
        self.pages()
    }

    pub async fn wait_for_failures(&self, count: usize) -> Vec<(ChannelKind, i64)> {
        wait_until(
            || self.failures().len() >= count,
            || format!("{} of {count} failed sends", self.failures().len()),
        )
        .await;
        self.failures()
    }

    /// Channels of the given kinds for one relay instance, recording here.
    pub fn channels(&self, instance: &'static str, kinds: &[ChannelKind]) -> Vec<Arc<dyn Channel>> {
        kinds
            .iter()
            .map(|&kind| {
                Arc::new(TestChannel {
                    kind,
                    instance,
                    pager: self.clone(),
                }) as Arc<dyn Channel>
            })
            .collect()
    }
}

/// Polls a condition every few milliseconds until it holds (at most 60 s of real time).
pub async fn wait_until(done: impl Fn() -> bool, explain: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out: {}", explain());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

struct TestChannel {
    kind: ChannelKind,
    instance: &'static str,
    pager: Pager,
}

impl Channel for TestChannel {
    fn kind(&self) -> ChannelKind {
        self.kind
    }

    fn send<'a>(&'a self, _core: &'a Core, delivery: &'a Delivery) -> SendFuture<'a> {
        Box::pin(async move {
            if self.pager.down.load(Ordering::SeqCst) {
                self.pager
                    .failures
                    .lock()
                    .unwrap()
                    .push((self.kind, delivery.step));
                return Err(SendError::Temporary("http-503".into()));
            }
            let mut pages = self.pager.pages.lock().unwrap();
            pages.push(Page {
                instance: self.instance,
                channel: self.kind,
                notification_id: delivery.notification_id.clone(),
                purpose: delivery.purpose.clone(),
                step: delivery.step,
                worker_id: delivery.worker_id.to_string(),
                phone: delivery.phone.as_str().to_string(),
                text: delivery.text.clone(),
            });
            Ok(Sent {
                reference: Some(format!("SM{}", pages.len())),
            })
        })
    }
}

/// The SMS and call channels (the telephony provider's) of the tests.
pub const PHONE: [ChannelKind; 2] = [ChannelKind::Sms, ChannelKind::Call];

/// The test configuration of every on-call relay: the scheduler polls often (it is also woken).
pub fn quick(config: &mut Config) {
    config.oncall.poll_interval_ms = 20;
}

/// A relay (a fresh database) with test channels of `kinds` installed before its first round.
pub async fn relay(backend: Backend, pager: &Pager, kinds: &[ChannelKind]) -> TestApp {
    relay_with(
        backend,
        pager,
        "relay",
        kinds,
        ManualClock::starting_now(),
        |_| {},
    )
    .await
}

pub async fn relay_with(
    backend: Backend,
    pager: &Pager,
    instance: &'static str,
    kinds: &[ChannelKind],
    clock: Arc<ManualClock>,
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    let channels = pager.channels(instance, kinds);
    TestApp::spawn_prepared(
        backend,
        |c| {
            quick(c);
            adjust(c);
        },
        clock,
        move |core| {
            for channel in channels {
                core.oncall.install_channel(channel);
            }
        },
    )
    .await
}

/// A team with a mailbox alias, its members, and a weekly rota in the order given that started
/// today at 00:00 local time: the first member is primary all week, the second secondary.
pub struct Team {
    pub alias: String,
    pub members: Vec<TestWorker>,
    /// Worker ids, in the order of `members`.
    pub ids: Vec<String>,
}

impl Team {
    pub fn id_of(&self, handle: &str) -> String {
        let index = self
            .members
            .iter()
            .position(|m| m.handle == handle)
            .unwrap_or_else(|| panic!("no member {handle}"));
        self.ids[index].clone()
    }
}

pub async fn team_with_rota(app: &TestApp, name: &str, handles: &[&str]) -> Team {
    let team = team_without_rota(app, name, handles).await;
    set_rota(app, name, handles, Rotation::Weekly, "00:00", today(app)).await;
    team
}

pub async fn team_without_rota(app: &TestApp, name: &str, handles: &[&str]) -> Team {
    let store = &app.core.store;
    let team_name = Handle::parse(name).unwrap();
    let alias = schuilnaam::team::add(
        store,
        &app.core.domain,
        app.now(),
        &Actor::System,
        &team_name,
        &schuilnaam::alias::LocalPart::parse(&format!("{name}-team")).unwrap(),
    )
    .await
    .unwrap();
    let mut members = Vec::new();
    let mut ids = Vec::new();
    for handle in handles {
        let member = app.add_worker(handle).await;
        schuilnaam::team::add_member(
            store,
            app.now(),
            &Actor::System,
            &team_name,
            &Handle::parse(handle).unwrap(),
        )
        .await
        .unwrap();
        ids.push(
            worker::find(store, &Handle::parse(handle).unwrap())
                .await
                .unwrap()
                .id
                .to_string(),
        );
        members.push(member);
    }
    Team {
        alias: alias.to_string(),
        members,
        ids,
    }
}

pub async fn set_rota(
    app: &TestApp,
    team: &str,
    handles: &[&str],
    rotation: Rotation,
    handover: &str,
    start: jiff::civil::Date,
) {
    rota::set(
        &app.core.store,
        app.now(),
        &Actor::System,
        &Handle::parse(team).unwrap(),
        &RotaSpec {
            members: handles.iter().map(|h| Handle::parse(h).unwrap()).collect(),
            rotation,
            handover: rota::parse_handover(handover).unwrap(),
            start,
        },
    )
    .await
    .unwrap();
}

/// Today's local date on the relay's clock.
pub fn today(app: &TestApp) -> jiff::civil::Date {
    local(app).date()
}

/// The relay clock's local date and time.
pub fn local(app: &TestApp) -> jiff::civil::DateTime {
    jiff::Timestamp::from_millisecond(app.now())
        .unwrap()
        .to_zoned(app.core.oncall.tz().clone())
        .datetime()
}

/// A worker outside every team, with their own real phone number.
pub async fn outsider(app: &TestApp, handle: &str, phone: &str) {
    worker::create(
        &app.core.store,
        &app.core.worker_crypto(),
        &app.core.domain,
        app.now(),
        &Actor::System,
        NewWorker {
            handle: Handle::parse(handle).unwrap(),
            pseudonym: Pseudonym::parse("LET-medewerker buiten").unwrap(),
            phone: schuilnaam::phone::PhoneNumber::parse(phone).unwrap(),
            email: schuilnaam::mail::EmailAddress::parse("buiten@example.nl").unwrap(),
            recipient: None,
        },
    )
    .await
    .unwrap();
}

/// Wakes the scheduler and waits until it has finished two more rounds (so everything due at the
/// clock's time has been claimed) and no notification is being sent any more.
pub async fn settle(app: &TestApp) {
    settle_core(&app.core).await
}

pub async fn settle_core(core: &Core) {
    let start = core.oncall.rounds();
    let deadline = Instant::now() + Duration::from_secs(60);
    while core.oncall.rounds() < start + 2 {
        assert!(
            Instant::now() < deadline,
            "the on-call scheduler does not run"
        );
        core.oncall.wake();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    loop {
        let in_flight: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM oncall_notifications WHERE state = 'queued' AND lease_until IS NOT NULL",
        )
        .fetch_one(core.store.pool())
        .await
        .unwrap();
        if in_flight == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "notifications stay in flight");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Lets the scheduler finish what is due (every send recorded: a jump of the clock past a lease
/// would rightly let the notification be taken over), moves the clock, and lets it catch up.
pub async fn advance(app: &TestApp, by: Duration) {
    settle(app).await;
    app.clock.advance(by);
    settle(app).await;
}

/// Moves the clock to the next time the local clock shows `hh:mm` (at least a minute ahead).
pub async fn advance_to_local(app: &TestApp, hour: i8, minute: i8) {
    let now = jiff::Timestamp::from_millisecond(app.now())
        .unwrap()
        .to_zoned(app.core.oncall.tz().clone());
    let mut target = now
        .with()
        .hour(hour)
        .minute(minute)
        .second(0)
        .subsec_nanosecond(0)
        .build()
        .unwrap();
    while target.timestamp().as_millisecond() < app.now() + 60_000 {
        target = target.tomorrow().unwrap();
    }
    let millis = target.timestamp().as_millisecond() - app.now();
    advance(app, Duration::from_millis(millis as u64)).await;
}

pub const MINUTE: Duration = Duration::from_secs(60);

/// The alerts table's (state, step, next_due_at − raised_at) of one alert.
pub async fn alert_row(app: &TestApp, id: &impl std::fmt::Display) -> (String, i64, Option<i64>) {
    let row: (String, i64, Option<i64>, i64) =
        sqlx::query_as("SELECT state, step, next_due_at, raised_at FROM alerts WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(app.core.store.pool())
            .await
            .unwrap();
    (row.0, row.1, row.2.map(|due| due - row.3))
}

/// The audit rows of on-call events: (actor, action, subject, detail).
pub async fn oncall_audit(app: &TestApp) -> Vec<(String, String, String, String)> {
    app.flush_audit().await;
    sqlx::query_as(
        "SELECT actor, action, subject, detail FROM audit_log WHERE action LIKE 'oncall.%' ORDER BY seq",
    )
    .fetch_all(app.core.store.pool())
    .await
    .unwrap()
}

/// Pages of one worker.
pub fn to_worker<'a>(pages: &'a [Page], worker_id: &str) -> Vec<&'a Page> {
    pages.iter().filter(|p| p.worker_id == worker_id).collect()
}

/// (worker id, channel, step) of pages, sorted: order among simultaneous sends does not matter.
pub fn shape(pages: &[Page]) -> Vec<(String, ChannelKind, i64)> {
    let mut shape: Vec<_> = pages
        .iter()
        .map(|p| (p.worker_id.clone(), p.channel, p.step))
        .collect();
    shape.sort();
    shape
}
