//! `schuilnaam phone …` and `alias allow --phone`, run as the real binary with `--json`.

use serde_json::json;

use crate::helpers::{cli_json, fresh_database_url, run_cli, write_config_file, Backend};

fn worker_add(config: &std::path::Path, handle: &str) -> serde_json::Value {
    cli_json(
        config,
        &[
            "worker",
            "add",
            "--handle",
            handle,
            "--pseudonym",
            "LET-medewerker",
            "--phone",
            "0612345678",
            "--email",
            "w@example.nl",
        ],
    )
}

#[tokio::test]
async fn the_number_pool_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(Backend::Sqlite, dir.path()).await;
    let config = write_config_file(dir.path(), &url);

    let added = cli_json(
        &config,
        &["phone", "pool", "add", "097010000001", "+3197010000002"],
    );
    assert_eq!(
        added,
        json!({ "added": ["+3197010000001", "+3197010000002"] })
    );
    let (ok, _, stderr) = run_cli(&config, &["phone", "pool", "add", "+3197010000001"]);
    assert!(!ok && stderr.contains("already in the pool"), "{stderr}");
    let (ok, _, stderr) = run_cli(&config, &["phone", "pool", "add", "geen-nummer"]);
    assert!(!ok && stderr.contains("not a phone number"), "{stderr}");

    // `worker add` takes the first free number for the worker's first alias.
    let w1 = worker_add(&config, "w1");
    assert_eq!(w1["phone_alias"], "+3197010000001");
    let alias = w1["alias"].as_str().unwrap().to_string();

    cli_json(&config, &["team", "add", "dienst", "--alias", "dienst"]);
    let team = cli_json(&config, &["phone", "assign", "--team", "dienst"]);
    assert_eq!(team["number"], "+3197010000002");
    assert!(team["alias"].as_str().unwrap().starts_with("dienst@"));
    let (ok, _, stderr) = run_cli(&config, &["phone", "assign", "--worker", "w1"]);
    assert!(!ok && stderr.contains("already has a number"), "{stderr}");
    let w2 = worker_add(&config, "w2");
    assert_eq!(w2["phone_alias"], json!(null), "the pool is empty");
    let (ok, _, stderr) = run_cli(&config, &["phone", "assign", "--worker", "w2"]);
    assert!(!ok && stderr.contains("no free number"), "{stderr}");

    let list = cli_json(&config, &["phone", "pool", "list"]);
    assert_eq!(list[0]["number"], "+3197010000001");
    assert_eq!(list[0]["state"], "assigned");
    assert_eq!(list[0]["alias"], alias.as_str());
    assert_eq!(list[0]["owner"], "w1");
    assert_eq!(list[1]["owner"], "dienst");

    // A burned number stays out of the pool during the quarantine.
    let burned = cli_json(&config, &["phone", "burn", "+3197010000001"]);
    assert_eq!(burned["burned"], "+3197010000001");
    assert!(burned["quarantined_until"].as_str().unwrap().len() >= 20);
    let list = cli_json(&config, &["phone", "pool", "list"]);
    assert_eq!(list[0]["state"], "quarantined");
    assert_eq!(list[0].get("alias"), None);
    let (ok, _, _) = run_cli(&config, &["phone", "assign", "--worker", "w2"]);
    assert!(!ok, "a quarantined number is not handed out");
    let (ok, _, stderr) = run_cli(&config, &["phone", "burn", "+3197010000001"]);
    assert!(!ok && stderr.contains("not found"), "{stderr}");
    cli_json(&config, &["phone", "pool", "add", "+3197010000003"]);
    let assigned = cli_json(&config, &["phone", "assign", "--worker", "w2"]);
    assert_eq!(assigned["number"], "+3197010000003");

    // Contacts by phone: only a keyed hash is stored.
    let allowed = cli_json(
        &config,
        &["alias", "allow", &alias, "--phone", "06-87654321"],
    );
    assert_eq!(allowed, json!({ "alias": alias, "allowed": true }));
    let (ok, _, stderr) = run_cli(
        &config,
        &["alias", "allow", &alias, "--phone", "+31687654321"],
    );
    assert!(!ok && stderr.contains("already allowed"), "{stderr}");
    let (ok, _, _) = run_cli(&config, &["alias", "allow", &alias]);
    assert!(!ok, "either --contact or --phone");
    let database = std::fs::read(dir.path().join("schuilnaam.db")).unwrap();
    assert!(!database.windows(9).any(|w| w == b"687654321"));
    let removed = cli_json(
        &config,
        &["alias", "disallow", &alias, "--phone", "+31687654321"],
    );
    assert_eq!(removed["allowed"], false);

    let hours = cli_json(
        &config,
        &[
            "phone", "hours", "--worker", "w1", "--from", "08:00", "--until", "18:00",
        ],
    );
    assert_eq!(
        hours,
        json!({ "worker": "w1", "from": "08:00", "until": "18:00" })
    );
    let always = cli_json(&config, &["phone", "hours", "--worker", "w1", "--always"]);
    assert_eq!(always["always"], true);
    let (ok, _, stderr) = run_cli(
        &config,
        &[
            "phone", "hours", "--worker", "w1", "--from", "8", "--until", "18:00",
        ],
    );
    assert!(!ok && stderr.contains("HH:MM"), "{stderr}");
}
