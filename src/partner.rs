//! Partner organisations (GIs and ketenpartners): who they are, the client certificates pinned to them,
//! the mail domains and phone numbers they write from. Only an enabled organisation's pinned
//! certificate identifies a partner.

use std::fmt;

use serde::Serialize;

use crate::alias::{Address, Domain, Resolution};
use crate::audit::{self, Action, Actor, Event};
use crate::clock::Millis;
use crate::error::{conflict_on_duplicate, Error, Result};
pub use crate::ids::OrganisationId;
use crate::ids::{MailboxId, MailboxKind};
use crate::phone::PhoneNumber;
use crate::store::{Flag, Store, WriteTx};

/// An organisation's display name: 1–100 printable characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct OrgName(String);

impl OrgName {
    pub fn parse(text: &str) -> Result<Self> {
        let name = text.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "an organisation name has 1 to 100 printable characters",
            ));
        }
        Ok(Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

crate::text_enum! {
    #[derive(clap::ValueEnum)]
    pub enum OrgKind {
        /// Gecertificeerde instelling.
        Gi = "gi",
        /// Politie, OM, Raad voor de Kinderbescherming, Veilig Thuis.
        Ketenpartner = "ketenpartner",
    }
}

/// SHA-256 of a certificate's DER encoding, lower-case hex: the pin.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    pub fn of_der(der: &[u8]) -> Self {
        Self(crate::crypto::sha256_hex(der))
    }

    /// The fingerprint of the one certificate in a PEM file. A file with a chain is refused rather
    /// than silently pinning its first certificate: which one is the partner's is for the
    /// administrator to say.
    pub fn of_pem(pem: &[u8]) -> Result<Self> {
        let mut reader = pem;
        let certificates = rustls_pemfile::certs(&mut reader)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| Error::invalid("the PEM file does not hold a readable certificate"))?;
        match certificates.as_slice() {
            [] => Err(Error::invalid("no certificate found in the PEM file")),
            [one] => Ok(Self::of_der(one)),
            several => Err(Error::invalid(format!(
                "the PEM file holds {} certificates; give a file with the partner's own \
                 certificate only",
                several.len()
            ))),
        }
    }

    /// A fingerprint typed by an administrator: 64 hex digits, colons allowed.
    pub fn parse(text: &str) -> Result<Self> {
        let hex: String = text
            .trim()
            .chars()
            .filter(|c| *c != ':')
            .collect::<String>()
            .to_ascii_lowercase();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::invalid(
                "a certificate fingerprint is a SHA-256 in 64 hex digits",
            ));
        }
        Ok(Self(hex))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub struct NewOrganisation {
    pub name: OrgName,
    pub kind: OrgKind,
    pub domains: Vec<Domain>,
    pub phones: Vec<PhoneNumber>,
    pub certificates: Vec<Fingerprint>,
}

/// A partner identified by its certificate, as the partner API sees it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Partner {
    pub id: OrganisationId,
    pub name: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct OrganisationInfo {
    pub name: String,
    pub kind: OrgKind,
    pub enabled: bool,
    pub domains: Vec<String>,
    pub phones: Vec<String>,
    pub certificates: Vec<String>,
}

pub async fn add(store: &Store, now: Millis, actor: &Actor, new: NewOrganisation) -> Result<()> {
    let id = OrganisationId::random();
    let mut wtx = store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, Action::OrganisationAdded, new.name.as_str()).detail(new.kind.as_str()),
    )
    .await?;
    sqlx::query(
        "INSERT INTO organisations (id, name, kind, enabled, created_at) VALUES ($1, $2, $3, 1, $4)",
    )
    .bind(&id)
    .bind(new.name.as_str())
    .bind(new.kind)
    .bind(now)
    .execute(wtx.conn())
    .await
    .map_err(|e| conflict_on_duplicate(e, "an organisation with that name already exists"))?;
    for domain in &new.domains {
        sqlx::query("INSERT INTO organisation_domains (domain, organisation_id) VALUES ($1, $2)")
            .bind(domain.as_str())
            .bind(&id)
            .execute(wtx.conn())
            .await
            .map_err(|e| {
                conflict_on_duplicate(e, &format!("domain {domain} is already registered"))
            })?;
    }
    for phone in &new.phones {
        sqlx::query("INSERT INTO organisation_phones (phone, organisation_id) VALUES ($1, $2)")
            .bind(phone.as_str())
            .bind(&id)
            .execute(wtx.conn())
            .await
            .map_err(|e| conflict_on_duplicate(e, "that phone number is already registered"))?;
    }
    for fingerprint in &new.certificates {
        insert_pin(&mut wtx, &id, fingerprint, now).await?;
    }
    wtx.commit().await
}

async fn insert_pin(
    wtx: &mut crate::store::WriteTx,
    organisation_id: &OrganisationId,
    fingerprint: &Fingerprint,
    now: Millis,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO organisation_certificates (fingerprint, organisation_id, created_at) \
         VALUES ($1, $2, $3)",
    )
    .bind(fingerprint.as_str())
    .bind(organisation_id)
    .bind(now)
    .execute(wtx.conn())
    .await
    .map_err(|e| conflict_on_duplicate(e, "that certificate is already pinned"))?;
    Ok(())
}

/// Pins one more certificate to an organisation (certificate rotation, `dev-ca issue`).
pub async fn pin_certificate(
    store: &Store,
    now: Millis,
    actor: &Actor,
    name: &OrgName,
    fingerprint: &Fingerprint,
) -> Result<()> {
    let id = id_of(store, name).await?;
    let mut wtx = store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, Action::OrganisationCertificatePinned, name.as_str())
            .detail(fingerprint.as_str()),
    )
    .await?;
    insert_pin(&mut wtx, &id, fingerprint, now).await?;
    wtx.commit().await
}

/// Removes a pin (a retired or leaked certificate): the certificate is refused from now on.
pub async fn unpin_certificate(
    store: &Store,
    now: Millis,
    actor: &Actor,
    name: &OrgName,
    fingerprint: &Fingerprint,
) -> Result<()> {
    let id = id_of(store, name).await?;
    let mut wtx = store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(
            actor,
            Action::OrganisationCertificateUnpinned,
            name.as_str(),
        )
        .detail(fingerprint.as_str()),
    )
    .await?;
    let removed = sqlx::query(
        "DELETE FROM organisation_certificates WHERE fingerprint = $1 AND organisation_id = $2",
    )
    .bind(fingerprint.as_str())
    .bind(&id)
    .execute(wtx.conn())
    .await?;
    if removed.rows_affected() == 0 {
        return Err(Error::NotFound("pinned certificate"));
    }
    wtx.commit().await
}

pub async fn set_enabled(
    store: &Store,
    now: Millis,
    actor: &Actor,
    name: &OrgName,
    enabled: bool,
) -> Result<()> {
    let action = if enabled {
        Action::OrganisationEnabled
    } else {
        Action::OrganisationDisabled
    };
    let mut wtx = store.begin_write().await?;
    audit::append(&mut wtx, now, Event::new(actor, action, name.as_str())).await?;
    let updated = sqlx::query("UPDATE organisations SET enabled = $1 WHERE name = $2")
        .bind(Flag(enabled))
        .bind(name.as_str())
        .execute(wtx.conn())
        .await?;
    if updated.rows_affected() == 0 {
        return Err(Error::NotFound("organisation"));
    }
    wtx.commit().await
}

async fn id_of(store: &Store, name: &OrgName) -> Result<OrganisationId> {
    sqlx::query_scalar("SELECT id FROM organisations WHERE name = $1")
        .bind(name.as_str())
        .fetch_optional(store.pool())
        .await?
        .ok_or(Error::NotFound("organisation"))
}

/// The organisation a client certificate is pinned to (when enabled) and what an address resolves
/// to, read in one statement: a partner API request, accepted or refused, costs one round trip to the
/// database, so a flood of refused requests takes as little as possible from accepted deliveries.
pub async fn by_certificate_resolving(
    store: &Store,
    fingerprint: &Fingerprint,
    address: &Address,
) -> Result<(Option<Partner>, Resolution)> {
    type Row = (
        Option<OrganisationId>,
        Option<String>,
        Option<MailboxId>,
        Option<Millis>,
        Option<MailboxKind>,
    );
    let (organisation_id, organisation_name, mailbox_id, burned_at, mailbox_kind): Row =
        sqlx::query_as(
            "SELECT o.id, o.name, a.mailbox_id, a.burned_at, b.kind FROM (SELECT 1 AS one) q \
             LEFT JOIN organisation_certificates c ON c.fingerprint = $1 \
             LEFT JOIN organisations o ON o.id = c.organisation_id AND o.enabled = 1 \
             LEFT JOIN aliases a ON a.address = $2 \
             LEFT JOIN mailboxes b ON b.id = a.mailbox_id",
        )
        .bind(fingerprint.as_str())
        .bind(address)
        .fetch_one(store.pool())
        .await?;
    let partner = match (organisation_id, organisation_name) {
        (Some(id), Some(name)) => Some(Partner { id, name }),
        _ => None,
    };
    let resolution = match (mailbox_id, burned_at, mailbox_kind) {
        (Some(_), Some(_burned_at), _) => Resolution::Burned,
        (Some(mailbox_id), None, Some(mailbox_kind)) => Resolution::Deliver {
            mailbox_id,
            mailbox_kind,
        },
        _ => Resolution::Unknown,
    };
    Ok((partner, resolution))
}

/// Inside a write transaction: whether the organisation is still enabled and, for a message that came
/// with a client certificate, that certificate still pinned to it.
pub async fn still_accepted(
    wtx: &mut WriteTx,
    organisation: &OrganisationId,
    certificate: Option<&Fingerprint>,
) -> Result<bool> {
    let found: Option<String> = match certificate {
        None => {
            sqlx::query_scalar("SELECT id FROM organisations WHERE id = $1 AND enabled = 1")
                .bind(organisation)
                .fetch_optional(wtx.conn())
                .await?
        }
        Some(fingerprint) => {
            sqlx::query_scalar(
                "SELECT o.id FROM organisations o JOIN organisation_certificates c \
                 ON c.organisation_id = o.id WHERE o.id = $1 AND o.enabled = 1 \
                 AND c.fingerprint = $2",
            )
            .bind(organisation)
            .bind(fingerprint.as_str())
            .fetch_optional(wtx.conn())
            .await?
        }
    };
    Ok(found.is_some())
}

#[derive(sqlx::FromRow)]
struct OrganisationRow {
    id: OrganisationId,
    name: String,
    kind: OrgKind,
    enabled: Flag,
}

pub async fn list(store: &Store) -> Result<Vec<OrganisationInfo>> {
    let orgs: Vec<OrganisationRow> =
        sqlx::query_as("SELECT id, name, kind, enabled FROM organisations ORDER BY name")
            .fetch_all(store.pool())
            .await?;
    let mut infos = Vec::with_capacity(orgs.len());
    for org in orgs {
        let id = &org.id;
        infos.push(OrganisationInfo {
            domains: column_for(store, "SELECT domain FROM organisation_domains WHERE organisation_id = $1 ORDER BY domain", id).await?,
            phones: column_for(store, "SELECT phone FROM organisation_phones WHERE organisation_id = $1 ORDER BY phone", id).await?,
            certificates: column_for(store, "SELECT fingerprint FROM organisation_certificates WHERE organisation_id = $1 ORDER BY created_at", id).await?,
            name: org.name,
            kind: org.kind,
            enabled: org.enabled.into(),
        });
    }
    Ok(infos)
}

async fn column_for(store: &Store, sql: &'static str, id: &OrganisationId) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(sql)
        .bind(id)
        .fetch_all(store.pool())
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_names_are_bounded_and_printable() {
        assert_eq!(
            OrgName::parse("  Jeugdbescherming West ").unwrap().as_str(),
            "Jeugdbescherming West"
        );
        assert!(OrgName::parse("").is_err());
        assert!(OrgName::parse("a\nb").is_err());
        assert!(OrgName::parse(&"x".repeat(101)).is_err());
    }

    #[test]
    fn contact_forms_keep_email_hashes_and_keep_phones_apart() {
        let email = Contact::Email(crate::mail::EmailAddress::parse("Jan@Example.NL").unwrap());
        assert_eq!(email.canonical(), "jan@example.nl");
        let phone = Contact::Phone(PhoneNumber::parse("06-12345678").unwrap());
        assert_eq!(phone.canonical(), "tel:+31612345678");
    }

    #[test]
    fn fingerprint_is_sha256_of_der() {
        let fp = Fingerprint::of_der(b"abc");
        assert_eq!(
            fp.as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(Fingerprint::of_pem(b"not pem").is_err());
    }

    #[test]
    fn a_pem_file_with_a_chain_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = crate::tls::DevCa::load_or_create(dir.path()).unwrap();
        let leaf = ca.issue_client("GI Keten").unwrap().cert_pem;
        let one = Fingerprint::of_pem(leaf.as_bytes()).unwrap();
        assert_eq!(one.as_str().len(), 64);
        let chain = format!(
            "{leaf}\n{}",
            std::fs::read_to_string(ca.cert_path()).unwrap()
        );
        let error = Fingerprint::of_pem(chain.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(error.contains("holds 2 certificates"), "{error}");
    }
}

// ---- e-mail: organisations by domain, allowed contacts ------------------------------------------

/// The enabled organisation that registered `domain` or one of its parent domains
/// (`team.politie.nl` belongs to whoever registered `politie.nl`).
pub async fn by_mail_domain(store: &Store, domain: &str) -> Result<Option<Partner>> {
    let domain = domain.to_ascii_lowercase();
    // The domain and each parent with a dot (a.gi.example.nl, gi.example.nl, example.nl), at most 8
    // levels, in one query; the most specific registered one wins.
    let candidates: Vec<&str> = std::iter::successors(Some(domain.as_str()), |d| {
        d.split_once('.').map(|(_, parent)| parent)
    })
    .filter(|d| d.contains('.'))
    .take(8)
    .collect();
    if candidates.is_empty() {
        return Ok(None);
    }
    let placeholders: Vec<String> = (1..=candidates.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT o.id, o.name, d.domain FROM organisation_domains d \
         JOIN organisations o ON o.id = d.organisation_id \
         WHERE o.enabled = 1 AND d.domain IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query_as::<_, DomainOwner>(&sql);
    for candidate in &candidates {
        query = query.bind(*candidate);
    }
    let owners = query.fetch_all(store.pool()).await?;
    Ok(owners
        .into_iter()
        .max_by_key(|owner| owner.domain.len())
        .map(|owner| owner.partner))
}

#[derive(sqlx::FromRow)]
struct DomainOwner {
    #[sqlx(flatten)]
    partner: Partner,
    domain: String,
}

/// Someone a worker allowed to write to one alias (a family member, a lawyer), identified by the address
/// they write from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Contact {
    Email(crate::mail::EmailAddress),
    /// A phone number that may call and text the alias's number (and be called and texted from it).
    Phone(PhoneNumber),
}

impl Contact {
    /// The form contacts are compared in (e-mail: lower case, unchanged since e-mail contacts were
    /// first stored; phone: `tel:` and E.164, which no e-mail address can equal).
    fn canonical(&self) -> String {
        match self {
            Contact::Email(address) => address.canonical(),
            Contact::Phone(number) => format!("tel:{}", number.as_str()),
        }
    }
}

impl fmt::Display for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Contact::Email(address) => address.fmt(f),
            Contact::Phone(number) => number.fmt(f),
        }
    }
}

/// The enabled organisation that registered `number` (`org add --phone`), if any.
pub async fn by_phone(store: &Store, number: &PhoneNumber) -> Result<Option<Partner>> {
    let row: Option<Partner> = sqlx::query_as(
        "SELECT o.id, o.name FROM organisation_phones p \
         JOIN organisations o ON o.id = p.organisation_id \
         WHERE p.phone = $1 AND o.enabled = 1",
    )
    .bind(number.as_str())
    .fetch_optional(store.pool())
    .await?;
    Ok(row)
}

fn contact_hash(keys: &crate::crypto::ServerKey, contact: &Contact) -> String {
    keys.keyed_hash(
        crate::crypto::KeyedHash::Contact,
        contact.canonical().as_bytes(),
    )
}

/// Allows one contact (a family member, a lawyer) to write to one alias, and to be written to from it.
/// Only a keyed hash of the address is stored.
pub async fn allow_contact(
    store: &Store,
    keys: &crate::crypto::ServerKey,
    now: Millis,
    actor: &Actor,
    alias: &crate::alias::Address,
    contact: &Contact,
) -> Result<()> {
    crate::alias::mailbox_of(store, alias).await?;
    let hash = contact_hash(keys, contact);
    let mut wtx = store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, Action::AliasContactAllowed, alias.as_str()).detail(&hash[..16]),
    )
    .await?;
    sqlx::query("INSERT INTO alias_contacts (alias, contact_hmac, created_at) VALUES ($1, $2, $3)")
        .bind(alias.as_str())
        .bind(&hash)
        .bind(now)
        .execute(wtx.conn())
        .await
        .map_err(|e| conflict_on_duplicate(e, "that contact is already allowed on this alias"))?;
    wtx.commit().await
}

pub async fn disallow_contact(
    store: &Store,
    keys: &crate::crypto::ServerKey,
    now: Millis,
    actor: &Actor,
    alias: &crate::alias::Address,
    contact: &Contact,
) -> Result<()> {
    let hash = contact_hash(keys, contact);
    let mut wtx = store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, Action::AliasContactDisallowed, alias.as_str()).detail(&hash[..16]),
    )
    .await?;
    let removed = sqlx::query("DELETE FROM alias_contacts WHERE alias = $1 AND contact_hmac = $2")
        .bind(alias.as_str())
        .bind(&hash)
        .execute(wtx.conn())
        .await?;
    if removed.rows_affected() == 0 {
        return Err(Error::NotFound("allowed contact"));
    }
    wtx.commit().await
}

pub async fn contact_allowed(
    store: &Store,
    keys: &crate::crypto::ServerKey,
    alias: &crate::alias::Address,
    contact: &Contact,
) -> Result<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM alias_contacts WHERE alias = $1 AND contact_hmac = $2")
            .bind(alias.as_str())
            .bind(contact_hash(keys, contact))
            .fetch_optional(store.pool())
            .await?;
    Ok(found.is_some())
}

/// How many contacts are allowed on an alias (the addresses themselves are not kept).
pub async fn contact_count(store: &Store, alias: &crate::alias::Address) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM alias_contacts WHERE alias = $1")
            .bind(alias.as_str())
            .fetch_one(store.pool())
            .await?,
    )
}
