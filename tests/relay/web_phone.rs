//! Phone aliases in the web app: the alias's number on the aliases page, "Sms sturen" and "Bellen
//! via mijn alias" through the same domain functions as `/v1/sms` and `/v1/calls` (leak guard,
//! partners and allowed contacts only), and a text that came in shown in the inbox.

use crate::fake_provider;
use crate::helpers::Backend;
use crate::on_both_backends;
use crate::phone::{world, ALIAS_NUMBER, PARTNER_PHONE, REAL_PHONE, STRANGER_PHONE};
use crate::web_support::{csrf_of, page_login};

on_both_backends!(texts_and_calls_leave_from_the_aliases_page);

async fn texts_and_calls_leave_from_the_aliases_page(backend: Backend) {
    let mut w = world(backend).await;
    let client = page_login(&w.app, &mut w.worker).await;
    let page = client.text("/aliassen").await;
    assert!(page.contains(ALIAS_NUMBER), "the alias's number is shown");
    assert!(!page.contains("612345678"), "never the real number");
    let sms_path = format!("/aliassen/{}/sms", w.worker.alias);
    let call_path = format!("/aliassen/{}/bellen", w.worker.alias);
    let csrf = csrf_of(&page);

    // A text to the partner leaves from the alias's number.
    let sent = client
        .post(
            &sms_path,
            &[
                ("csrf", &csrf),
                ("to", "020-1234567"),
                ("body", "Ik bel u morgen."),
            ],
        )
        .await;
    assert_eq!(sent.status(), 303);
    assert_eq!(sent.headers()["location"], "/aliassen?ok=sms");
    let messages = w.fake.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["From"], ALIAS_NUMBER);
    assert_eq!(messages[0]["To"], PARTNER_PHONE);
    assert_eq!(messages[0]["Body"], "Ik bel u morgen.");

    // Refused on the page itself, nothing sent: the worker's own number (the leak guard), a
    // stranger, no number at all, a wrong CSRF token, someone else's alias.
    let leak = client
        .post(
            &sms_path,
            &[
                ("csrf", &csrf),
                ("to", PARTNER_PHONE),
                ("body", "Bel me op 06-12345678"),
            ],
        )
        .await;
    assert_eq!(leak.status(), 422);
    assert!(leak.headers().get("location").is_none());
    let explained = leak.text().await.unwrap();
    assert!(explained.contains("naar jou kan leiden"), "{explained}");
    let stranger = client
        .post(
            &sms_path,
            &[("csrf", &csrf), ("to", STRANGER_PHONE), ("body", "Hallo")],
        )
        .await;
    assert_eq!(stranger.status(), 422);
    let not_a_number = client
        .post(&call_path, &[("csrf", &csrf), ("to", "geen nummer")])
        .await;
    assert_eq!(not_a_number.status(), 422);
    assert!(not_a_number
        .text()
        .await
        .unwrap()
        .contains("Dat is geen telefoonnummer"));
    let forged = client
        .post(
            &sms_path,
            &[("csrf", "x"), ("to", PARTNER_PHONE), ("body", "Hallo")],
        )
        .await;
    assert_eq!(forged.status(), 403);
    let other = w.app.add_worker("w9").await;
    let not_mine = client
        .post(
            &format!("/aliassen/{}/sms", other.alias),
            &[("csrf", &csrf), ("to", PARTNER_PHONE), ("body", "Hallo")],
        )
        .await;
    assert_eq!(not_mine.status(), 422);
    assert_eq!(w.fake.messages().len(), 1, "nothing else was sent");
    assert!(w.fake.calls().is_empty());

    // Calling through the alias: the relay rings the worker's own phone from the alias's number.
    let placed = client
        .post(&call_path, &[("csrf", &csrf), ("to", PARTNER_PHONE)])
        .await;
    assert_eq!(placed.status(), 303);
    assert_eq!(placed.headers()["location"], "/aliassen?ok=bellen");
    let calls = w.fake.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["From"], ALIAS_NUMBER);
    assert_eq!(calls[0]["To"], REAL_PHONE);

    // A text from the partner is in the inbox, marked as one.
    let sid = format!("SM{}", schuilnaam::crypto::random_id());
    let answer = w
        .fake
        .webhook(
            "/phone/sms",
            &[
                ("MessageSid", sid.as_str()),
                ("AccountSid", fake_provider::ACCOUNT_SID),
                ("From", PARTNER_PHONE),
                ("To", ALIAS_NUMBER),
                ("Body", "Graag terugbellen"),
                ("NumMedia", "0"),
            ],
        )
        .await;
    assert_eq!(answer.0, 200);
    let inbox = client.text("/").await;
    assert!(inbox.contains("sms"), "{inbox}");
    let id = crate::web_support::first_message_link(&inbox).expect("the text is listed");
    let opened = client.text(&format!("/berichten/{id}")).await;
    assert!(opened.contains("Graag terugbellen"));
    assert!(opened.contains("Sms sturen"), "the page says how to answer");
    w.app.stop().await;
}
