//! The on-call duty in the web app: who is on call now, the worker's alerts with acknowledge and
//! resolve buttons, and paging the duty by hand; the same rules as the worker API.

use std::time::Duration;

use crate::helpers::Backend;
use crate::on_both_backends;
use crate::oncall_support::{advance, alert_row, relay, team_with_rota, Pager, PHONE};
use crate::web_support::{csrf_of, page_login};

on_both_backends!(the_duty_page_pages_acknowledges_and_resolves);

const MINUTE: Duration = Duration::from_secs(60);

/// The alert id in the first acknowledge or resolve form of the page.
fn first_alert_id(page: &str) -> String {
    let marker = "/dienst/meldingen/";
    let at = page.find(marker).expect("an alert on the page") + marker.len();
    page[at..at + 32].to_string()
}

async fn the_duty_page_pages_acknowledges_and_resolves(backend: Backend) {
    let pager = Pager::default();
    let app = relay(backend, &pager, &PHONE).await;
    let mut team = team_with_rota(&app, "let-jb", &["h1", "h2"]).await;
    let mut stranger = app.add_worker("h9").await;
    let client = page_login(&app, &mut team.members[0]).await;

    let page = client.text("/dienst").await;
    assert!(page.contains("h1 (dienst), h2 (achterwacht)"), "{page}");
    assert!(page.contains("Geen open meldingen."));

    // Paging by hand: the primary is paged with the content-free text.
    let paged = client
        .post(
            "/dienst/oproepen",
            &[("csrf", csrf_of(&page).as_str()), ("team", "let-jb")],
        )
        .await;
    assert_eq!(paged.status(), 303);
    assert_eq!(paged.headers()["location"], "/dienst?ok=opgeroepen");
    let pages = pager.wait_for(1).await;
    let code = pages[0].code().unwrap().to_string();
    let page = client.text("/dienst").await;
    assert!(page.contains(&format!("Code {code}")), "{page}");
    let id = first_alert_id(&page);
    assert_eq!(alert_row(&app, &id).await.0, "open");

    // A wrong CSRF token: 403, nothing changes. A worker outside the team: the same 404 as a
    // missing alert, nothing changes.
    let forged = client
        .post(
            &format!("/dienst/meldingen/{id}/bevestigen"),
            &[("csrf", "0".repeat(64).as_str())],
        )
        .await;
    assert_eq!(forged.status(), 403);
    let other = page_login(&app, &mut stranger).await;
    let other_page = other.text("/dienst").await;
    assert!(other_page.contains("Je zit niet in een team met een rooster."));
    assert!(!other_page.contains(&code));
    for path in [
        format!("/dienst/meldingen/{id}/bevestigen"),
        format!("/dienst/meldingen/{}/bevestigen", "0".repeat(32)),
        "/dienst/meldingen/niet-een-id/bevestigen".to_string(),
    ] {
        let refused = other
            .post(&path, &[("csrf", csrf_of(&other_page).as_str())])
            .await;
        assert_eq!(refused.status(), 404, "{path}");
    }
    let refused = other
        .post(
            "/dienst/oproepen",
            &[("csrf", csrf_of(&other_page).as_str()), ("team", "let-jb")],
        )
        .await;
    assert_eq!(refused.status(), 404, "paging a team one is not in");
    assert_eq!(alert_row(&app, &id).await.0, "open");

    // Acknowledged from the page: no further notification goes out, however long it waits.
    let acknowledged = client
        .post(
            &format!("/dienst/meldingen/{id}/bevestigen"),
            &[("csrf", csrf_of(&page).as_str())],
        )
        .await;
    assert_eq!(acknowledged.headers()["location"], "/dienst?ok=bevestigd");
    assert_eq!(alert_row(&app, &id).await.0, "acknowledged");
    let sent = pager.pages().len();
    // Past the steps at 3, 6 and 10 minutes, within the session's idle timeout (15 minutes).
    for _ in 0..4 {
        advance(&app, 3 * MINUTE).await;
    }
    assert_eq!(
        pager.pages().len(),
        sent,
        "nothing after the acknowledgement"
    );
    let page = client.text("/dienst").await;
    assert!(page.contains("bevestigd"));
    assert!(!page.contains(&format!("/dienst/meldingen/{id}/bevestigen")));

    // Resolved: off the list.
    let resolved = client
        .post(
            &format!("/dienst/meldingen/{id}/afhandelen"),
            &[("csrf", csrf_of(&page).as_str())],
        )
        .await;
    assert_eq!(resolved.headers()["location"], "/dienst?ok=afgehandeld");
    assert_eq!(alert_row(&app, &id).await.0, "resolved");
    assert!(client
        .text("/dienst")
        .await
        .contains("Geen open meldingen."));
    app.stop().await;
}
