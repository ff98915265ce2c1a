//! Security property 1 for the phone path: after calls, texts, voicemail, texts out and click-to-call
//! with marker numbers and marker texts, no marker is in the log (debug level), the database or the
//! data directory. The relay runs as the real binary against the fake provider.

use std::path::Path;

use serde_json::{json, Value};

use crate::fake_provider::{self, FakeProvider};
use crate::helpers::{
    cli_json, client_for, fresh_database_url, totp_from_uri, totp_now, write_config_file, Backend,
    RelayProcess,
};
use crate::phone::{eventually, sid};

/// The worker's real phone, an allowed contact's and a stranger's: none may be written anywhere.
const REAL: &str = "+31611119999";
const CONTACT: &str = "+31622228888";
const STRANGER: &str = "+31633337777";
const PARTNER: &str = "+31201112222";
const ALIAS_NUMBER: &str = "+3197010000001";
const SMS_MARKER: &str = "SMS-INHOUD-MARKER-3c9d";
const SMS_OUT_MARKER: &str = "SMS-UIT-MARKER-71aa";
const VOICEMAIL_MARKER: &str = "VOICEMAIL-AUDIO-MARKER-e4b2";

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Every marker and the forms a number is written in (E.164, without +, national).
fn markers() -> Vec<String> {
    let mut markers = vec![
        SMS_MARKER.to_string(),
        SMS_OUT_MARKER.to_string(),
        VOICEMAIL_MARKER.to_string(),
    ];
    for number in [REAL, CONTACT, STRANGER] {
        let digits = &number[1..];
        markers.push(digits.to_string());
        markers.push(format!("0{}", &digits[2..]));
        markers.push(digits[2..].to_string());
    }
    markers
}

fn assert_absent(what: &str, haystack: &[u8]) {
    for marker in markers() {
        assert!(
            !haystack
                .windows(marker.len())
                .any(|window| window == marker.as_bytes()),
            "marker {marker:?} found in {what}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_number_or_text_of_a_call_or_sms_is_written_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(Backend::Sqlite, dir.path()).await;
    let config = write_config_file(dir.path(), &url);
    cli_json(
        &config,
        &[
            "org",
            "add",
            "--name",
            "GI Markerstad",
            "--kind",
            "gi",
            "--phone",
            PARTNER,
        ],
    );
    cli_json(&config, &["phone", "pool", "add", ALIAS_NUMBER]);
    let created = cli_json(
        &config,
        &[
            "worker",
            "add",
            "--handle",
            "w81",
            "--pseudonym",
            "LET-medewerker 81",
            "--phone",
            REAL,
            "--email",
            "w81@prive.example",
        ],
    );
    assert_eq!(created["phone_alias"], ALIAS_NUMBER);
    let alias = created["alias"].as_str().unwrap().to_string();
    cli_json(&config, &["alias", "allow", &alias, "--phone", CONTACT]);

    let fake = FakeProvider::start().await;
    let log = dir.path().join("relay.log");
    let api_ca = fake.ca_path.display().to_string();
    let relay = RelayProcess::start_with_env(
        &config,
        &log,
        "debug,schuilnaam=trace",
        &[
            ("SCHUILNAAM_PHONE__ENABLED", "true"),
            ("SCHUILNAAM_PHONE__LISTEN", "127.0.0.1:0"),
            (
                "SCHUILNAAM_PHONE__PUBLIC_BASE_URL",
                fake_provider::PUBLIC_BASE,
            ),
            ("SCHUILNAAM_PHONE__API_BASE_URL", fake.url.as_str()),
            ("SCHUILNAAM_PHONE__ACCOUNT_SID", fake_provider::ACCOUNT_SID),
            ("SCHUILNAAM_PHONE__AUTH_TOKEN", fake_provider::AUTH_TOKEN),
            ("SCHUILNAAM_PHONE__API_CA", api_ca.as_str()),
        ],
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let phone_addr: std::net::SocketAddr = text
        .lines()
        .find(|l| l.contains("listening"))
        .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("phone=")))
        .expect("phone listener in the log")
        .parse()
        .unwrap();
    let ca = dir.path().join("dev-ca/ca.pem");
    fake.relay_at(phone_addr, &std::fs::read(&ca).unwrap());

    let voice = |call_sid: String, from: &'static str| {
        let fake = &fake;
        async move {
            fake.webhook(
                "/phone/voice",
                &[
                    ("CallSid", call_sid.as_str()),
                    ("From", from),
                    ("To", ALIAS_NUMBER),
                ],
            )
            .await
        }
    };
    // A partner's call rings the real number (in the TwiML to the provider, nowhere else).
    let partner_call = sid("CA");
    let (_, dial) = voice(partner_call.clone(), PARTNER).await;
    assert!(dial.contains(REAL), "{dial}");
    // A stranger, the contact, then the contact's voicemail.
    voice(sid("CA"), STRANGER).await;
    let contact_call = sid("CA");
    voice(contact_call.clone(), CONTACT).await;
    let (_, record) = fake
        .webhook(
            "/phone/voice/dial?step=0",
            &[
                ("CallSid", contact_call.as_str()),
                ("DialCallStatus", "busy"),
            ],
        )
        .await;
    assert!(record.contains("<Record "));
    let recording = sid("RE");
    fake.add_recording(
        &recording,
        format!("RIFF....WAVE {VOICEMAIL_MARKER}").as_bytes(),
    );
    fake.webhook(
        "/phone/voice/recording",
        &[
            ("CallSid", contact_call.as_str()),
            ("RecordingSid", recording.as_str()),
            ("RecordingDuration", "3"),
        ],
    )
    .await;
    // Texts in from the contact and from a stranger.
    for from in [CONTACT, STRANGER] {
        let (status, _) = fake
            .webhook(
                "/phone/sms",
                &[
                    ("MessageSid", sid("SM").as_str()),
                    ("From", from),
                    ("To", ALIAS_NUMBER),
                    ("Body", SMS_MARKER),
                ],
            )
            .await;
        assert_eq!(status, 200);
    }
    // Kamailio's path is off on the hosted path, but probing it leaves nothing either.
    let worker = client_for(&ca, None);
    let probe = worker
        .get(format!(
            "https://{phone_addr}/phone/sip/route?from={}&to={}",
            &STRANGER[1..],
            &ALIAS_NUMBER[1..]
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(probe.status(), 403);

    // The worker reads, texts out and calls out.
    let login: Value = worker
        .post(format!("{}/v1/login", relay.worker_url))
        .json(&json!({ "handle": "w81", "passphrase": created["passphrase"], "totp": totp_now(&totp_from_uri(created["totp_uri"].as_str().unwrap())) }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut token = login["token"].as_str().unwrap().to_string();
    let changed = worker
        .post(format!("{}/v1/passphrase", relay.worker_url))
        .bearer_auth(&token)
        .json(&json!({ "current": created["passphrase"], "new": "een lange zelfgekozen zin" }))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 204);
    let login: Value = worker
        .post(format!("{}/v1/login", relay.worker_url))
        .json(&json!({ "handle": "w81", "passphrase": "een lange zelfgekozen zin", "totp": totp_now(&totp_from_uri(created["totp_uri"].as_str().unwrap())) }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    if let Some(fresh) = login["token"].as_str() {
        token = fresh.to_string();
    }
    let worker_url = relay.worker_url.clone();
    let list = || {
        let worker = worker.clone();
        let token = token.clone();
        let url = format!("{worker_url}/v1/messages");
        async move {
            worker
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Vec<Value>>()
                .await
                .unwrap()
        }
    };
    eventually("the text and the voicemail are stored", || async {
        list().await.len() == 2
    })
    .await;
    eventually("the recording is deleted at the provider", || async {
        !fake.has_recording(&recording)
    })
    .await;
    for message in list().await {
        let id = message["id"].as_str().unwrap();
        let opened = worker
            .get(format!("{worker_url}/v1/messages/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(opened.status(), 200);
        if message["channel"] == "voicemail" {
            let audio = worker
                .get(format!("{worker_url}/v1/messages/{id}/attachments/0"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assert!(audio
                .windows(VOICEMAIL_MARKER.len())
                .any(|w| w == VOICEMAIL_MARKER.as_bytes()));
        }
    }
    let sms = worker
        .post(format!("{worker_url}/v1/sms"))
        .bearer_auth(&token)
        .json(&json!({ "from_alias": alias, "to": CONTACT, "body": SMS_OUT_MARKER }))
        .send()
        .await
        .unwrap();
    assert_eq!(sms.status(), 202);
    let call = worker
        .post(format!("{worker_url}/v1/calls"))
        .bearer_auth(&token)
        .json(&json!({ "from_alias": alias, "to": CONTACT }))
        .send()
        .await
        .unwrap();
    assert_eq!(call.status(), 202);
    let placed = fake.calls();
    let (_, bridge) = fake
        .follow(
            &placed[0]["Url"],
            &[
                ("CallSid", sid("CA").as_str()),
                ("From", ALIAS_NUMBER),
                ("To", REAL),
            ],
        )
        .await;
    assert!(bridge.contains(CONTACT), "{bridge}");

    let mut relay = relay;
    relay.stop();
    assert_absent("the relay's log", &std::fs::read(&log).unwrap());
    for file in files_under(dir.path()) {
        // The CLI's output is not kept; everything under the data directory is checked.
        assert_absent(&file.display().to_string(), &std::fs::read(&file).unwrap());
    }
}
