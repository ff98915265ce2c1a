//! A worker's real contact details (mobile number and e-mail address), sealed to the server key. They
//! are opened only to send a content-free notification, to register the leak guard's markers, and to
//! recognise a member calling or texting from their registered phone.

use serde::{Deserialize, Serialize};

use crate::crypto::ServerKey;
use crate::error::{Error, Result};
use crate::mail::EmailAddress;
use crate::phone::PhoneNumber;

/// What is sealed.
#[derive(Serialize, Deserialize)]
struct SealedContact {
    phone: String,
    email: String,
}

/// A worker's real contact details, opened.
pub struct RealContact {
    pub phone: PhoneNumber,
    pub email: EmailAddress,
}

/// Seals a worker's contact details to the server key.
pub fn seal(keys: &ServerKey, phone: &PhoneNumber, email: &EmailAddress) -> Result<Vec<u8>> {
    let contact = serde_json::to_vec(&SealedContact {
        phone: phone.as_str().to_string(),
        email: email.as_str().to_string(),
    })
    .expect("plain struct serialises");
    keys.seal(&contact)
}

/// Opens a worker's sealed contact details with the server key.
pub fn open(keys: &ServerKey, sealed: &[u8]) -> Result<RealContact> {
    let plain = keys.open(sealed)?;
    let contact: SealedContact = serde_json::from_slice(&plain)
        .map_err(|_| Error::Crypto("unreadable contact details".into()))?;
    Ok(RealContact {
        phone: PhoneNumber::parse(&contact.phone)?,
        email: EmailAddress::parse(&contact.email)?,
    })
}
