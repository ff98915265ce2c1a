//! Voice routing for a Kamailio proxy in front of the organisation's SIP trunk. Kamailio asks
//! `GET /phone/sip/route?from=…&to=…` for each INVITE and gets one line of JSON: forward to the worker's
//! real number on the trunk with the alias as caller ID, or reject. Every refusal is the same bytes.
//! (Kamailio's configuration, with topology hiding, is in the README.)

use serde::Serialize;

use super::PhoneNumber;

/// The one refusal.
pub const REJECT: &str = "{\"action\":\"reject\"}";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Forward {
        target: String,
        caller_id: PhoneNumber,
    },
    Reject,
}

#[derive(Serialize)]
struct Forward<'a> {
    action: &'static str,
    target: &'a str,
    caller_id: &'a str,
}

impl Answer {
    pub fn to_json(&self) -> String {
        match self {
            Answer::Reject => REJECT.to_string(),
            Answer::Forward { target, caller_id } => serde_json::to_string(&Forward {
                action: "forward",
                target,
                caller_id: caller_id.as_str(),
            })
            .expect("plain struct serialises"),
        }
    }
}

/// The SIP target for a real number: `{number}` in the template becomes its digits (no `+`).
pub fn target(template: &str, number: &PhoneNumber) -> String {
    template.replace("{number}", number.as_str().trim_start_matches('+'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_one_line_of_json() {
        let n = PhoneNumber::parse("+31612345678").unwrap();
        let alias = PhoneNumber::parse("+3197010000001").unwrap();
        let target = target("sip:{number}@trunk.example:5060", &n);
        assert_eq!(target, "sip:31612345678@trunk.example:5060");
        assert_eq!(
            Answer::Forward {
                target,
                caller_id: alias
            }
            .to_json(),
            r#"{"action":"forward","target":"sip:31612345678@trunk.example:5060","caller_id":"+3197010000001"}"#
        );
        assert_eq!(Answer::Reject.to_json(), r#"{"action":"reject"}"#);
    }
}
