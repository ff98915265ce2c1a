//! `X-Twilio-Signature`, exactly as the Twilio-compatible providers (Twilio, SignalWire) define it:
//! base64(HMAC-SHA1(auth token, URL + every POST parameter name and value)), the parameters sorted by
//! name (byte order), each distinct value of a repeated name once, in sorted order. The URL is the one
//! the provider was given, query string included; the variant with the default port (`:443`) and the
//! one without are both accepted, as the providers' own libraries do. A JSON body is signed through
//! the URL only: it carries `bodySHA256` (hex SHA-256 of the body) in its query.
//!
//! Telnyx (TeXML) signs differently: Ed25519 with the account's public key over
//! `{telnyx-timestamp}|{raw body}`, the signature base64 in `telnyx-signature-ed25519`; a timestamp
//! more than `TELNYX_TOLERANCE_SECONDS` away from the relay's clock is refused (a replay).
//!
//! Comparison is in constant time. Nothing here logs.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The signature of a form-encoded request: `params` as decoded (name, value) pairs, in any order.
pub fn compute(auth_token: &[u8], url: &str, params: &[(String, String)]) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token).expect("HMAC takes any key length");
    mac.update(url.as_bytes());
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    sorted.sort_unstable();
    sorted.dedup();
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    data_encoding::BASE64.encode(&mac.finalize().into_bytes())
}

/// Whether `signature` signs a form-encoded request to `url` with `params`, with or without the
/// default port in the URL.
pub fn verify_form(
    auth_token: &[u8],
    url: &str,
    params: &[(String, String)],
    signature: &str,
) -> bool {
    url_variants(url)
        .iter()
        .any(|variant| equal(&compute(auth_token, variant, params), signature))
}

/// Whether `signature` signs a JSON request: the URL (with its `bodySHA256`) signs like a request
/// without parameters, and `bodySHA256` must be the SHA-256 of the body.
pub fn verify_json(auth_token: &[u8], url: &str, body: &[u8], signature: &str) -> bool {
    let Some(claimed) = query_param(url, "bodySHA256") else {
        return false;
    };
    let actual = hex::encode(Sha256::digest(body));
    // Both checks always run: the answer takes as long whichever fails.
    let signed = verify_form(auth_token, url, &[], signature);
    let body_matches = equal(&actual, &claimed.to_ascii_lowercase());
    signed & body_matches
}

/// How far a Telnyx timestamp may be from the relay's clock, either way (the providers' libraries
/// use the same five minutes).
pub const TELNYX_TOLERANCE_SECONDS: i64 = 300;

/// Whether `signature` (base64) is the Ed25519 signature, by `public_key`, of `timestamp|body`, and
/// `timestamp` (Unix seconds) lies within the tolerance of `now_seconds`.
pub fn verify_ed25519(
    public_key: &[u8; 32],
    timestamp: &str,
    body: &[u8],
    signature: &str,
    now_seconds: i64,
) -> bool {
    let fresh = timestamp.len() <= 12
        && !timestamp.is_empty()
        && timestamp.bytes().all(|b| b.is_ascii_digit())
        && timestamp
            .parse::<i64>()
            .is_ok_and(|at| (at - now_seconds).abs() <= TELNYX_TOLERANCE_SECONDS);
    let Ok(signature) = data_encoding::BASE64.decode(signature.trim().as_bytes()) else {
        return false;
    };
    let mut signed = Vec::with_capacity(timestamp.len() + 1 + body.len());
    signed.extend_from_slice(timestamp.as_bytes());
    signed.push(b'|');
    signed.extend_from_slice(body);
    let valid = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key)
        .verify(&signed, &signature)
        .is_ok();
    fresh & valid
}

/// A Telnyx public key as the portal shows it: base64 of the 32-byte Ed25519 key.
pub fn parse_ed25519_public_key(text: &str) -> Option<[u8; 32]> {
    let bytes = data_encoding::BASE64.decode(text.trim().as_bytes()).ok()?;
    bytes.try_into().ok()
}

/// The URL as given, plus the same URL with the scheme's default port added (when it has none) or
/// removed (when it has the default one). Other ports are left alone.
pub fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_string()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return variants;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return variants,
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    // user-info never appears in a webhook URL we accept, but keep it intact if it does.
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((user, host)) => (format!("{user}@"), host),
        None => (String::new(), authority),
    };
    let port_start = if hostport.starts_with('[') {
        hostport.find("]:").map(|i| i + 1)
    } else {
        hostport.rfind(':')
    };
    let other = match port_start {
        Some(colon) if &hostport[colon + 1..] == default_port => {
            format!("{scheme}://{userinfo}{}{tail}", &hostport[..colon])
        }
        Some(_) => return variants,
        None => format!("{scheme}://{userinfo}{hostport}:{default_port}{tail}"),
    };
    variants.push(other);
    variants
}

/// The decoded value of the first `name` parameter in a URL's query.
fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or_default();
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

fn equal(a: &str, b: &str) -> bool {
    crate::crypto::constant_time_eq(a.as_bytes(), b.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::KeyPair as _;

    fn telnyx_key() -> ring::signature::Ed25519KeyPair {
        ring::signature::Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap()
    }

    fn telnyx_sign(key: &ring::signature::Ed25519KeyPair, timestamp: &str, body: &[u8]) -> String {
        let signed = [timestamp.as_bytes(), b"|", body].concat();
        data_encoding::BASE64.encode(key.sign(&signed).as_ref())
    }

    #[test]
    fn telnyx_signs_timestamp_bar_body_within_five_minutes() {
        let key = telnyx_key();
        let public: [u8; 32] = key.public_key().as_ref().try_into().unwrap();
        let body = b"CallSid=v3%3Aabc&From=%2B31201234567&To=%2B31851234567";
        let now = 1_800_000_000;
        let good = telnyx_sign(&key, "1800000000", body);
        assert!(verify_ed25519(&public, "1800000000", body, &good, now));
        assert!(verify_ed25519(
            &public,
            "1800000000",
            body,
            &good,
            now + 300
        ));
        assert!(
            !verify_ed25519(&public, "1800000000", body, &good, now + 301),
            "stale"
        );
        assert!(
            !verify_ed25519(&public, "1800000000", body, &good, now - 301),
            "future"
        );
        let mut tampered = body.to_vec();
        tampered[8] = b'w';
        assert!(!verify_ed25519(
            &public,
            "1800000000",
            &tampered,
            &good,
            now
        ));
        assert!(
            !verify_ed25519(&public, "1800000001", body, &good, now),
            "timestamp is signed"
        );
        let other: [u8; 32] = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[8; 32])
            .unwrap()
            .public_key()
            .as_ref()
            .try_into()
            .unwrap();
        assert!(!verify_ed25519(&other, "1800000000", body, &good, now));
        for bad in ["", "not base64", &good[..good.len() - 4]] {
            assert!(
                !verify_ed25519(&public, "1800000000", body, bad, now),
                "{bad}"
            );
        }
        for stamp in ["", "+1800000000", "1800000000.0", " 1800000000"] {
            let signature = telnyx_sign(&key, stamp, body);
            assert!(
                !verify_ed25519(&public, stamp, body, &signature, now),
                "{stamp:?}"
            );
        }
    }

    #[test]
    fn a_telnyx_public_key_is_32_bytes_of_base64() {
        let key = data_encoding::BASE64.encode(&[1; 32]);
        assert_eq!(parse_ed25519_public_key(&key), Some([1; 32]));
        assert_eq!(
            parse_ed25519_public_key(&format!(" {key}\n")),
            Some([1; 32])
        );
        assert_eq!(
            parse_ed25519_public_key(&data_encoding::BASE64.encode(&[1; 31])),
            None
        );
        assert_eq!(parse_ed25519_public_key("not a key"), None);
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The example in the provider's documentation on validating requests (and its libraries' tests).
    const DOC_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const DOC_TOKEN: &[u8] = b"12345";
    const DOC_SIGNATURE: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";

    fn doc_params() -> Vec<(String, String)> {
        pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ])
    }

    #[test]
    fn the_published_example_signs_as_documented() {
        assert_eq!(compute(DOC_TOKEN, DOC_URL, &doc_params()), DOC_SIGNATURE);
        let mut reversed = doc_params();
        reversed.reverse();
        assert_eq!(compute(DOC_TOKEN, DOC_URL, &reversed), DOC_SIGNATURE);
        assert!(verify_form(
            DOC_TOKEN,
            DOC_URL,
            &doc_params(),
            DOC_SIGNATURE
        ));
    }

    #[test]
    fn the_default_port_may_be_given_or_left_out() {
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        // Signed over the URL without the port, presented with it; and the other way round.
        assert!(verify_form(
            DOC_TOKEN,
            with_port,
            &doc_params(),
            DOC_SIGNATURE
        ));
        let signed_with_port = compute(DOC_TOKEN, with_port, &doc_params());
        assert_ne!(signed_with_port, DOC_SIGNATURE);
        assert!(verify_form(
            DOC_TOKEN,
            DOC_URL,
            &doc_params(),
            &signed_with_port
        ));
        // Another port is another URL.
        let other_port = compute(
            DOC_TOKEN,
            "https://mycompany.com:8443/myapp.php?foo=1&bar=2",
            &doc_params(),
        );
        assert!(!verify_form(DOC_TOKEN, DOC_URL, &doc_params(), &other_port));
        assert_eq!(
            url_variants("https://[::1]:443/x"),
            vec![
                "https://[::1]:443/x".to_string(),
                "https://[::1]/x".to_string()
            ]
        );
        assert_eq!(url_variants("https://h.example:8444/x").len(), 1);
    }

    #[test]
    fn repeated_names_take_each_distinct_value_once_in_order() {
        let url = "https://relay.example/phone/sms";
        let a = compute(b"t", url, &pairs(&[("x", "2"), ("x", "1"), ("x", "1")]));
        let b = compute(b"t", url, &pairs(&[("x", "1"), ("x", "2")]));
        assert_eq!(a, b);
        assert_ne!(a, compute(b"t", url, &pairs(&[("x", "1")])));
        // The same as the concatenation the provider documents: x1x2.
        let mut mac = Hmac::<Sha1>::new_from_slice(b"t").unwrap();
        mac.update(format!("{url}x1x2").as_bytes());
        assert_eq!(
            a,
            data_encoding::BASE64.encode(&mac.finalize().into_bytes())
        );
    }

    #[test]
    fn a_json_body_is_signed_through_body_sha256() {
        // SignalWire's published vector for a JSON body.
        let url = "https://example.ngrok.io/webhook?bodySHA256=69f3cbfc18e386ef8236cb7008cd5a54b7fed637a8cb3373b5a1591d7f0fd5f4";
        let body = br#"{"event":"call.state"}"#;
        let token = b"PSKtest1234567890abcdef";
        assert!(verify_json(
            token,
            url,
            body,
            "dfO9ek8mxyFtn2nMz24plPmPfIY="
        ));
        assert!(!verify_json(
            token,
            url,
            br#"{"event":"call.other"}"#,
            "dfO9ek8mxyFtn2nMz24plPmPfIY="
        ));
        assert!(!verify_json(
            token,
            "https://example.ngrok.io/webhook",
            body,
            "dfO9ek8mxyFtn2nMz24plPmPfIY="
        ));
        // Twilio's sample body carries the bodySHA256 its sample URL names.
        let body = br#"{"CallSid":"CA1234567890ABCDE","Caller":"+12349013030"}"#;
        assert_eq!(
            hex::encode(Sha256::digest(body)),
            "5ccde7145dfb8f56479710896586cb9d5911809d83afbe34627818790db0aec9"
        );
    }

    #[test]
    fn anything_changed_is_refused() {
        let mut tampered = doc_params();
        tampered[2].1 = "9999".into();
        assert!(!verify_form(DOC_TOKEN, DOC_URL, &tampered, DOC_SIGNATURE));
        let mut added = doc_params();
        added.push(("Extra".into(), "1".into()));
        assert!(!verify_form(DOC_TOKEN, DOC_URL, &added, DOC_SIGNATURE));
        assert!(!verify_form(
            DOC_TOKEN,
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &doc_params(),
            DOC_SIGNATURE
        ));
        assert!(!verify_form(
            b"54321",
            DOC_URL,
            &doc_params(),
            DOC_SIGNATURE
        ));
        assert!(!verify_form(DOC_TOKEN, DOC_URL, &doc_params(), ""));
        assert!(!verify_form(
            DOC_TOKEN,
            DOC_URL,
            &doc_params(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8"
        ));
    }
}
