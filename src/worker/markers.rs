//! Identity markers for the leak guard: parts of the worker's real name, phone, e-mail, home town and
//! licence plate, stored only as keyed hashes of their normalised forms. The real phone and e-mail
//! given at enrolment are always markers too.

use super::{contact, WorkerId};
use crate::audit::{self, Action, Actor, Event};
use crate::clock::Millis;
use crate::crypto::ServerKey;
use crate::error::{Error, Result};
use crate::mail::leak::{self, MarkerKind};
use crate::mail::EmailAddress;
use crate::phone::PhoneNumber;
use crate::store::Store;

const KINDS: [MarkerKind; 5] = [
    MarkerKind::Name,
    MarkerKind::Phone,
    MarkerKind::Email,
    MarkerKind::Town,
    MarkerKind::Plate,
];

/// The worker's markers as (kind, keyed hash).
pub async fn markers(
    store: &Store,
    worker_id: &WorkerId,
) -> Result<std::collections::HashSet<(MarkerKind, String)>> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, hmac FROM identity_markers WHERE worker_id = $1")
            .bind(worker_id)
            .fetch_all(store.pool())
            .await?;
    rows.into_iter()
        .map(|(kind, hmac)| {
            let kind =
                MarkerKind::parse(&kind).ok_or(Error::Crypto("unknown marker kind".into()))?;
            Ok((kind, hmac))
        })
        .collect()
}

/// Replaces the markers the worker registered; the real phone and e-mail given at enrolment are
/// always markers too. Returns how many hashes are stored per kind.
pub async fn set_markers(
    store: &Store,
    keys: &ServerKey,
    now: Millis,
    worker_id: &WorkerId,
    handle: &str,
    entries: &[(MarkerKind, String)],
) -> Result<Vec<(MarkerKind, usize)>> {
    let contact_sealed: Vec<u8> =
        sqlx::query_scalar("SELECT contact_sealed FROM workers WHERE id = $1")
            .bind(worker_id)
            .fetch_one(store.pool())
            .await?;
    let contact = contact::open(keys, &contact_sealed)?;
    let mut hashes = std::collections::BTreeSet::new();
    let enrolled = [
        (MarkerKind::Phone, contact.phone.as_str().to_string()),
        (MarkerKind::Email, contact.email.as_str().to_string()),
    ];
    for (kind, text) in entries.iter().chain(enrolled.iter()) {
        let forms = leak::normalise(*kind, text)
            .map_err(|e| Error::invalid(format!("{} marker: {e}", kind.as_str())))?;
        for form in forms {
            hashes.insert((kind.as_str(), leak::marker_hash(keys, *kind, &form)));
        }
    }
    let mut wtx = store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(
            &Actor::Worker(handle.to_string()),
            Action::WorkerMarkersSet,
            handle,
        )
        .detail(&format!("count={}", hashes.len())),
    )
    .await?;
    sqlx::query("DELETE FROM identity_markers WHERE worker_id = $1")
        .bind(worker_id)
        .execute(wtx.conn())
        .await?;
    insert_markers(&mut wtx, worker_id, &hashes).await?;
    wtx.commit().await?;
    Ok(count_by_kind(&hashes))
}

pub(super) async fn insert_markers(
    wtx: &mut crate::store::WriteTx,
    worker_id: &WorkerId,
    hashes: &std::collections::BTreeSet<(&'static str, String)>,
) -> Result<()> {
    for (kind, hash) in hashes {
        sqlx::query("INSERT INTO identity_markers (worker_id, kind, hmac) VALUES ($1, $2, $3)")
            .bind(worker_id)
            .bind(*kind)
            .bind(hash)
            .execute(wtx.conn())
            .await?;
    }
    Ok(())
}

fn count_by_kind(
    hashes: &std::collections::BTreeSet<(&'static str, String)>,
) -> Vec<(MarkerKind, usize)> {
    KINDS
        .into_iter()
        .map(|kind| {
            (
                kind,
                hashes.iter().filter(|(k, _)| *k == kind.as_str()).count(),
            )
        })
        .collect()
}

/// The marker hashes of the enrolment contact details (real phone and e-mail).
pub(super) fn enrolment_markers(
    keys: &ServerKey,
    phone: &PhoneNumber,
    email: &EmailAddress,
) -> std::collections::BTreeSet<(&'static str, String)> {
    [
        (MarkerKind::Phone, phone.as_str().to_string()),
        (MarkerKind::Email, email.canonical()),
    ]
    .into_iter()
    .map(|(kind, form)| (kind.as_str(), leak::marker_hash(keys, kind, &form)))
    .collect()
}

/// How many markers of each kind are registered (the markers themselves are not kept).
pub async fn marker_counts(
    store: &Store,
    worker_id: &WorkerId,
) -> Result<Vec<(MarkerKind, usize)>> {
    let markers = markers(store, worker_id).await?;
    Ok(KINDS
        .into_iter()
        .map(|kind| (kind, markers.iter().filter(|(k, _)| *k == kind).count()))
        .collect())
}
