//! Cleaning attachments before they leave: what a file says about who made it, where and with what
//! is removed, or the file is refused with a reason the worker can act on. Never silently passed on,
//! never cut short.
//!
//! - JPEG ([`jpeg`]): every APPn segment except JFIF (APP0) and Adobe (APP14), and comments, are
//!   dropped (EXIF, GPS, XMP, IPTC, maker notes), wherever they stand (also between the scans of a
//!   progressive image); whatever follows the end-of-image marker is dropped.
//! - PNG ([`png`]): only the chunks needed to draw the image are kept (no text, EXIF, time or ICC
//!   profile); whatever follows the end chunk is dropped.
//! - PDF ([`pdf`]): author, creator, producer, title, subject and keywords are blanked in place
//!   (same length, so the cross-reference table stays valid) and XMP packets are blanked; a PDF that
//!   hides such fields in compressed parts, holds embedded files, is encrypted, or has a compressed
//!   part the relay cannot unpack is refused.
//! - Office Open XML ([`office`]: docx, xlsx, pptx): document properties are replaced, author and
//!   initials attributes (comments, tracked changes) are emptied, XML parts are rewritten as UTF-8,
//!   embedded JPEG and PNG images are cleaned as above; other embedded files (objects, thumbnails in
//!   other formats) make the document refused.
//! - Plain text and CSV ([`text`]): decoded from UTF-8, UTF-16 (with a byte order mark) or a declared
//!   Latin character set, and passed on as UTF-8; any other encoding is refused.
//! - PGP keys and signatures are removed: they name their owner.
//! - Anything else is refused: the relay cannot vouch for what it cannot clean.
//!
//! Unpacking (zip entries, PDF streams) is paid for from a [`Budget`] that the caller holds for one
//! message: a part or a message that would unpack to more than the budget allows is refused, and
//! no byte past the budget is ever read into memory.
//!
//! [`readable_text`] gives the leak guard everything of a cleaned attachment a recipient can read:
//! its file name and the text of its content. What the relay cannot read completely is refused
//! rather than passed.

use std::io::Read;

use crate::mail::compose::Attachment;

mod jpeg;
mod office;
mod pdf;
mod png;
pub(crate) mod text;

const MIB: u64 = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("attachment {0}: this file type cannot be cleaned of identifying details; send it as PDF, JPEG, PNG, DOCX or plain text")]
    UnsupportedType(String),
    #[error("attachment {0}: {1}")]
    CannotClean(String, &'static str),
    #[error(
        "attachment {0}: unpacked, it is larger than the relay can check (at most {part} MiB per part, {message} MiB for all attachments of one message together); send it in smaller files or spread over several messages",
        part = Budget::PART / MIB,
        message = Budget::MESSAGE / MIB
    )]
    TooLarge(String),
    #[error("attachment {0}: the relay cannot read all of its text, so it cannot check it for your name, number or address: {1}")]
    Unreadable(String, &'static str),
}

/// What became of an attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleaned {
    Kept(Attachment),
    /// Removed entirely (PGP keys and signatures).
    Removed,
}

/// How many bytes unpacking may produce: across every attachment of one message together, and per
/// part (one zip entry, one PDF stream). One budget serves one pass over a message's attachments
/// (cleaning, then a fresh one for reading them to the leak guard); what would unpack to more is
/// refused, and nothing past the limit is ever read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    remaining: u64,
    per_part: u64,
}

impl Budget {
    /// All attachments of one message together.
    pub const MESSAGE: u64 = 64 * MIB;
    /// One zip entry or one PDF stream.
    pub const PART: u64 = 32 * MIB;

    /// The budget of one message.
    pub fn per_message() -> Self {
        Self::new(Self::MESSAGE, Self::PART)
    }

    pub fn new(total: u64, per_part: u64) -> Self {
        Self {
            remaining: total,
            per_part,
        }
    }

    /// What is left for the rest of the message.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// The most one more part may unpack to.
    fn allowance(&self) -> u64 {
        self.remaining.min(self.per_part)
    }

    /// Reads `reader` to its end if that fits the budget, and pays for it. Reads at most one byte
    /// more than allowed, so that a bomb is recognised without being held, and never reserves more
    /// memory than that.
    fn read_all(&mut self, reader: impl Read) -> Result<Vec<u8>, Unpack> {
        let limit = usize::try_from(self.allowance().saturating_add(1)).unwrap_or(usize::MAX);
        let mut reader = reader.take(limit as u64);
        let mut out: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(Unpack::Damaged),
            };
            if out.capacity() - out.len() < n {
                // Grow by doubling, but never past the limit.
                let wanted = (out.capacity() * 2).max(out.len() + n).min(limit);
                out.reserve_exact(wanted - out.len());
            }
            out.extend_from_slice(&chunk[..n]);
        }
        self.pay(out.len())?;
        Ok(out)
    }

    /// Pays for `bytes` produced by a decoder that checks [`Budget::allowance`] itself.
    fn pay(&mut self, bytes: usize) -> Result<(), Unpack> {
        let bytes = bytes as u64;
        if bytes > self.allowance() {
            return Err(Unpack::OverBudget);
        }
        self.remaining -= bytes;
        Ok(())
    }
}

/// Why unpacking a part failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unpack {
    OverBudget,
    Damaged,
}

/// What went wrong with one file, before it is told with the file's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    CannotClean(&'static str),
    TooLarge,
    Unreadable(&'static str),
}

impl Problem {
    fn for_file(self, name: &str) -> Refused {
        match self {
            Problem::CannotClean(why) => Refused::CannotClean(name.to_string(), why),
            Problem::TooLarge => Refused::TooLarge(name.to_string()),
            Problem::Unreadable(why) => Refused::Unreadable(name.to_string(), why),
        }
    }
}

enum Kind {
    Jpeg,
    Png,
    Pdf,
    OfficeOpenXml,
    Text,
    Pgp,
    Other,
}

fn kind_of(attachment: &Attachment) -> Kind {
    let data = &attachment.data;
    let name = attachment.filename.to_ascii_lowercase();
    let declared = attachment.content_type.to_ascii_lowercase();
    let pgp_armor = data.windows(15).any(|w| w == b"-----BEGIN PGP ");
    if declared.starts_with("application/pgp")
        || [".asc", ".sig", ".gpg", ".pgp"]
            .iter()
            .any(|ext| name.ends_with(ext))
        || pgp_armor
    {
        return Kind::Pgp;
    }
    if data.starts_with(&[0xff, 0xd8, 0xff]) {
        Kind::Jpeg
    } else if data.starts_with(png::SIGNATURE) {
        Kind::Png
    } else if data.starts_with(b"%PDF-") {
        Kind::Pdf
    } else if data.starts_with(b"PK\x03\x04") && office::content_type(&name).is_some() {
        Kind::OfficeOpenXml
    } else if text::is_text_type(&declared) {
        Kind::Text
    } else {
        Kind::Other
    }
}

/// Cleans one attachment; unpacking is paid from `budget`.
pub fn sanitise(attachment: Attachment, budget: &mut Budget) -> Result<Cleaned, Refused> {
    let name = attachment.filename.clone();
    let refuse = |problem: Problem| problem.for_file(&name);
    let (data, content_type) = match kind_of(&attachment) {
        Kind::Pgp => return Ok(Cleaned::Removed),
        Kind::Jpeg => (
            jpeg::clean(&attachment.data).ok_or(Refused::CannotClean(
                name.clone(),
                "the JPEG file is damaged",
            ))?,
            "image/jpeg".to_string(),
        ),
        Kind::Png => (
            png::clean(&attachment.data).ok_or(Refused::CannotClean(
                name.clone(),
                "the PNG file is damaged",
            ))?,
            "image/png".to_string(),
        ),
        Kind::Pdf => (
            pdf::clean(&attachment.data, budget).map_err(refuse)?,
            "application/pdf".to_string(),
        ),
        Kind::OfficeOpenXml => (
            office::clean(&attachment.data, budget).map_err(refuse)?,
            office::content_type(&attachment.filename.to_ascii_lowercase())
                .unwrap_or("application/octet-stream")
                .to_string(),
        ),
        Kind::Text => text::clean(&attachment.data, &attachment.content_type).map_err(refuse)?,
        Kind::Other => return Err(Refused::UnsupportedType(name)),
    };
    Ok(Cleaned::Kept(Attachment {
        filename: attachment.filename,
        content_type,
        data,
    }))
}

/// Everything of a cleaned attachment a recipient can read, for the leak guard: the file name,
/// then the text of its content (plain text as is, the text a PDF shows and holds, the text and
/// attribute values of an Office document's XML parts; images have none beyond their name).
/// Unpacking is paid from `budget`. Refused when the relay cannot read the text completely.
pub fn readable_text(attachment: &Attachment, budget: &mut Budget) -> Result<String, Refused> {
    let refuse = |problem: Problem| problem.for_file(&attachment.filename);
    let mut out = attachment.filename.clone();
    out.push('\n');
    let data = &attachment.data;
    match kind_of(attachment) {
        Kind::Text => out.push_str(&text::read(data, &attachment.content_type).map_err(refuse)?),
        Kind::Pdf => out.push_str(&pdf::text(data, budget).map_err(refuse)?),
        Kind::OfficeOpenXml => out.push_str(&office::text(data, budget).map_err(refuse)?),
        Kind::Jpeg | Kind::Png | Kind::Pgp => {}
        Kind::Other => return Err(Refused::UnsupportedType(attachment.filename.clone())),
    }
    Ok(out)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[doc(hidden)]
pub mod fixtures;

#[cfg(test)]
mod tests;
