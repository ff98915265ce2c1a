//! TwiML: the XML answers a Twilio-compatible provider (Twilio, SignalWire, Telnyx TeXML) takes from a
//! voice or messaging webhook. Built from a few fixed shapes; every text and attribute value is
//! escaped. The refusal is one constant, so every refused call gets the same bytes.

use std::fmt::Write as _;

use super::PhoneNumber;

const HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// What every refused call hears, whatever the reason: unknown caller, withheld number, burned or
/// unserved number, outside the rules. Neutral, in Dutch, then the line is closed.
pub const REFUSAL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Say language=\"nl-NL\">Dit nummer is niet bereikbaar. Probeer het later opnieuw.</Say><Hangup/></Response>";

/// The answer to a text that needs no reply.
pub const EMPTY: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response></Response>";

/// `text` with `& < > " '` escaped, safe as element text and as an attribute value. Characters XML 1.0
/// cannot carry (control characters other than tab and line breaks) are dropped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

/// Ring one number with the alias as caller ID; when nobody answers within `timeout_seconds` (or the
/// line is busy), the provider asks `action` what next.
pub fn dial(
    caller_id: &PhoneNumber,
    target: &PhoneNumber,
    timeout_seconds: u32,
    action: &str,
) -> String {
    format!(
        "{HEAD}<Response><Dial callerId=\"{}\" timeout=\"{timeout_seconds}\" answerOnBridge=\"true\" action=\"{}\" method=\"POST\"><Number>{}</Number></Dial></Response>",
        escape(caller_id.as_str()),
        escape(action),
        escape(target.as_str()),
    )
}

/// Connect the call to `target` with the alias as caller ID (click-to-call and calls out from the
/// alias); nothing follows when it ends.
pub fn bridge(caller_id: &PhoneNumber, target: &PhoneNumber, timeout_seconds: u32) -> String {
    format!(
        "{HEAD}<Response><Dial callerId=\"{}\" timeout=\"{timeout_seconds}\" answerOnBridge=\"true\"><Number>{}</Number></Dial></Response>",
        escape(caller_id.as_str()),
        escape(target.as_str()),
    )
}

/// The voicemail greeting and a recording; `callback` is told when the recording is ready, `action`
/// when the caller hangs up or the time is up.
pub fn voicemail(max_seconds: u32, action: &str, callback: &str) -> String {
    format!(
        "{HEAD}<Response><Say language=\"nl-NL\">Er is nu niemand bereikbaar. Spreek na de toon uw bericht in.</Say><Record maxLength=\"{max_seconds}\" playBeep=\"true\" timeout=\"5\" action=\"{}\" method=\"POST\" recordingStatusCallback=\"{}\" recordingStatusCallbackMethod=\"POST\" recordingStatusCallbackEvent=\"completed\"/><Hangup/></Response>",
        escape(action),
        escape(callback),
    )
}

/// A worker calling their own alias from their registered phone: ask for the number to call.
pub fn ask_destination(action: &str) -> String {
    format!(
        "{HEAD}<Response><Gather input=\"dtmf\" action=\"{}\" method=\"POST\" finishOnKey=\"#\" numDigits=\"16\" timeout=\"10\"><Say language=\"nl-NL\">Toets het nummer dat u wilt bellen, gevolgd door een hekje.</Say></Gather><Say language=\"nl-NL\">Er is geen nummer ontvangen.</Say><Hangup/></Response>",
        escape(action),
    )
}

/// End the call without a word (after a completed call or a finished recording).
pub fn hangup() -> String {
    format!("{HEAD}<Response><Hangup/></Response>")
}

/// Say something (fixed texts of the relay), then hang up.
pub fn say_and_hang_up(text: &str) -> String {
    let mut out = String::from(HEAD);
    let _ = write!(
        out,
        "<Response><Say language=\"nl-NL\">{}</Say><Hangup/></Response>",
        escape(text)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_attributes_are_escaped() {
        assert_eq!(
            escape(r#"a<b>&"c"'d'"#),
            "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;"
        );
        assert_eq!(escape("nul\0bel\u{7}tab\tok"), "nulbeltab\tok");
        let out = say_and_hang_up("</Say><Dial>+31600000000</Dial>");
        assert!(!out.contains("<Dial>"), "{out}");
        assert!(out.contains("&lt;/Say&gt;&lt;Dial&gt;"), "{out}");
    }

    #[test]
    fn dial_names_the_alias_as_caller_id_and_escapes_the_action() {
        let alias = PhoneNumber::parse("+3197010000001").unwrap();
        let real = PhoneNumber::parse("+31612345678").unwrap();
        let out = dial(
            &alias,
            &real,
            20,
            "https://relay.example/phone/voice/dial?step=0&x=1",
        );
        assert_eq!(
            out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Dial callerId=\"+3197010000001\" timeout=\"20\" answerOnBridge=\"true\" action=\"https://relay.example/phone/voice/dial?step=0&amp;x=1\" method=\"POST\"><Number>+31612345678</Number></Dial></Response>"
        );
    }

    #[test]
    fn the_refusal_names_nothing() {
        assert!(REFUSAL.starts_with(HEAD));
        assert!(!REFUSAL.contains('+'));
        assert!(REFUSAL.ends_with("<Hangup/></Response>"));
    }
}
