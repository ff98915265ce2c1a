//! TOTP (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps), as every authenticator app speaks it.
//! A code is accepted for the current step and one step either side, and never twice.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use zeroize::Zeroizing;

use crate::clock::Millis;

pub const STEP_SECONDS: i64 = 30;
const DIGITS: u32 = 6;
const SECRET_BYTES: usize = 20;

/// A TOTP shared secret; wiped when dropped.
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl TotpSecret {
    pub fn generate() -> Self {
        Self(Zeroizing::new(
            crate::crypto::random_bytes::<SECRET_BYTES>().to_vec(),
        ))
    }

    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(Zeroizing::new(bytes.to_vec()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The `otpauth://` URI an authenticator app scans. The label carries the handle only.
    pub fn provisioning_uri(&self, issuer: &str, handle: &str) -> String {
        let secret = data_encoding::BASE32_NOPAD.encode(&self.0);
        format!(
            "otpauth://totp/{issuer}:{handle}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}"
        )
    }

    /// The code for a time step.
    pub fn code_at_step(&self, step: i64) -> u32 {
        let mut mac = Hmac::<Sha1>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(&step.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        let offset = usize::from(digest[19] & 0x0f);
        let binary = u32::from_be_bytes([
            digest[offset] & 0x7f,
            digest[offset + 1],
            digest[offset + 2],
            digest[offset + 3],
        ]);
        binary % 10u32.pow(DIGITS)
    }

    pub fn code_at(&self, now: Millis) -> String {
        format!("{:06}", self.code_at_step(step_of(now)))
    }

    /// The step the code matches, when it is valid at `now` and newer than `last_used_step`.
    pub fn verify(&self, code: &str, now: Millis, last_used_step: i64) -> Option<i64> {
        let code = code.trim();
        if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let wanted: u32 = code.parse().ok()?;
        let current = step_of(now);
        let mut matched = None;
        // Compare against every candidate step so timing does not reveal which one matched.
        for step in [current - 1, current, current + 1] {
            let candidate = self.code_at_step(step);
            if crate::crypto::constant_time_eq(&candidate.to_be_bytes(), &wanted.to_be_bytes())
                && step > last_used_step
            {
                matched = Some(step);
            }
        }
        matched
    }
}

pub fn step_of(now: Millis) -> i64 {
    now.div_euclid(1000) / STEP_SECONDS
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 appendix B, SHA-1 key, truncated to six digits.
    #[test]
    fn rfc6238_vectors() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890");
        for (seconds, eight_digits) in [
            (59i64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
        ] {
            assert_eq!(
                secret.code_at_step(seconds / STEP_SECONDS),
                eight_digits % 1_000_000,
                "at {seconds}"
            );
        }
    }

    #[test]
    fn accepts_neighbouring_steps_once() {
        let secret = TotpSecret::generate();
        let now = 1_800_000_000_000;
        let step = step_of(now);
        let code = secret.code_at(now);
        assert_eq!(secret.verify(&code, now, 0), Some(step));
        // Replay of the same code is refused.
        assert_eq!(secret.verify(&code, now, step), None);
        // A code from the previous step is still accepted, two steps back is not.
        let previous = format!("{:06}", secret.code_at_step(step - 1));
        assert_eq!(secret.verify(&previous, now, 0), Some(step - 1));
        let stale = format!("{:06}", secret.code_at_step(step - 2));
        assert_eq!(secret.verify(&stale, now, 0), None);
    }

    #[test]
    fn malformed_codes_are_refused() {
        let secret = TotpSecret::generate();
        for code in ["", "12345", "1234567", "12345a", "-12345"] {
            assert_eq!(secret.verify(code, 1_800_000_000_000, 0), None, "{code:?}");
        }
    }

    #[test]
    fn uri_names_only_the_handle() {
        let secret = TotpSecret::from_bytes(&[0u8; 20]);
        let uri = secret.provisioning_uri("schuilnaam", "w17");
        assert!(uri.starts_with("otpauth://totp/schuilnaam:w17?secret=AAAA"));
        assert!(uri.contains("period=30"));
    }
}
