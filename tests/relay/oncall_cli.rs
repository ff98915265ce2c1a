//! `schuilnaam oncall …` as the real binary: rota, overrides, who is on call, the schedule with its
//! gaps, policies, a manual page and the alert's life, every command with `--json`.

use jiff::civil::Date;
use serde_json::{json, Value};

use crate::helpers::{cli_json, fresh_database_url, run_cli, write_config_file, Backend};

/// A date a month ahead in Europe/Amsterdam (overrides must not be over already), as text.
fn ahead(days: i64) -> Date {
    jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::get("Europe/Amsterdam").unwrap())
        .date()
        .checked_add(jiff::Span::new().days(days))
        .unwrap()
}

#[tokio::test]
async fn rota_overrides_schedule_policy_and_alerts_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(Backend::Sqlite, dir.path()).await;
    let config = write_config_file(dir.path(), &url);
    for handle in ["w1", "w2", "w3"] {
        cli_json(
            &config,
            &[
                "worker",
                "add",
                "--handle",
                handle,
                "--pseudonym",
                &format!("LET-medewerker {handle}"),
                "--phone",
                "0612345678",
                "--email",
                "medewerker@example.nl",
            ],
        );
    }
    cli_json(&config, &["team", "add", "let-jb", "--alias", "aanmelding"]);
    for handle in ["w1", "w2", "w3"] {
        cli_json(
            &config,
            &["team", "member", "add", "let-jb", "--worker", handle],
        );
    }
    let start = ahead(30);
    let day2 = ahead(31);

    // The rota: daily, handing over at 09:00 local time.
    let rota = cli_json(
        &config,
        &[
            "oncall",
            "rota",
            "let-jb",
            "--members",
            "w1,w2,w3",
            "--rotation",
            "daily",
            "--handover",
            "09:00",
            "--from",
            &start.to_string(),
        ],
    );
    assert_eq!(rota["rotation"], "daily");
    assert_eq!(rota["handover"], "09:00");
    assert_eq!(rota["members"], json!(["w1", "w2", "w3"]));
    assert_eq!(cli_json(&config, &["oncall", "rota", "let-jb"]), rota);
    let (ok, _, stderr) = run_cli(
        &config,
        &["oncall", "rota", "let-jb", "--members", "w1,nobody"],
    );
    assert!(!ok && stderr.contains("not a member"), "{stderr}");

    // Who is on call: before the rota starts nobody; the next day w2, with w3 as secondary.
    let now = |at: String| cli_json(&config, &["oncall", "now", "let-jb", "--at", &at]);
    let before = now(format!("{start} 08:59"));
    assert_eq!(before["gap"], true);
    assert_eq!(before["primary"], Value::Null);
    assert_eq!(before["next"]["primary"], "w1");
    assert!(before["next"]["at"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{start}T09:00:00+0")));
    let on_day2 = now(format!("{day2} 10:00"));
    assert_eq!(
        (on_day2["primary"].clone(), on_day2["secondary"].clone()),
        (json!("w2"), json!("w3"))
    );

    // An override: w3 takes the primary place for two hours; w2 becomes secondary meanwhile.
    let added = cli_json(
        &config,
        &[
            "oncall",
            "override",
            "let-jb",
            "--worker",
            "w3",
            "--from",
            &format!("{day2} 12:00"),
            "--until",
            &format!("{day2} 14:00"),
        ],
    );
    let override_id = added["id"].as_str().unwrap().to_string();
    assert_eq!(added["role"], "primary");
    let during = now(format!("{day2} 13:00"));
    assert_eq!(
        (during["primary"].clone(), during["secondary"].clone()),
        (json!("w3"), json!("w2"))
    );
    assert_eq!(now(format!("{day2} 14:00"))["primary"], "w2");
    let listed = cli_json(&config, &["oncall", "override", "list", "let-jb"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    cli_json(&config, &["oncall", "override", "remove", &override_id]);
    assert_eq!(now(format!("{day2} 13:00"))["primary"], "w2");
    assert_eq!(
        cli_json(&config, &["oncall", "override", "list", "let-jb"]),
        json!([])
    );

    // The schedule: the month before the rota starts is a gap, flagged.
    let schedule = cli_json(&config, &["oncall", "schedule", "let-jb", "--days", "14"]);
    assert_eq!(schedule["gaps"], 1);
    assert_eq!(schedule["segments"].as_array().unwrap().len(), 1);
    assert_eq!(schedule["segments"][0]["gap"], true);
    let (ok, human, _) = run_cli(&config, &["oncall", "schedule", "let-jb", "--days", "40"]);
    assert!(ok);
    assert!(human.contains("GAP: nobody on call"), "{human}");
    assert!(human.contains("primary w1, secondary w2"), "{human}");

    // Policies: the default, a team's own file, a refused file, back to the default.
    let policy = cli_json(&config, &["oncall", "policy", "let-jb"]);
    assert_eq!(policy["source"], "default");
    assert_eq!(policy["policy"]["step"].as_array().unwrap().len(), 4);
    let file = dir.path().join("policy.toml");
    std::fs::write(
        &file,
        "repeat_every = \"5m\"\n[[step]]\nafter = \"0s\"\nnotify = [\"primary\"]\nchannels = [\"sms\"]\n\
         [[step]]\nafter = \"2m\"\nnotify = [\"secondary\", \"primary\"]\nchannels = [\"sms\", \"call\"]\n",
    )
    .unwrap();
    let own = cli_json(
        &config,
        &["oncall", "policy", "let-jb", file.to_str().unwrap()],
    );
    assert_eq!(own["source"], "team");
    assert_eq!(own["policy"]["repeat_every"], "5m");
    assert_eq!(
        own["policy"]["step"][1]["notify"],
        json!(["secondary", "primary"])
    );
    std::fs::write(&file, "repeat_every = \"10s\"\n[[step]]\nafter = \"0s\"\nnotify = [\"primary\"]\nchannels = [\"sms\"]\n").unwrap();
    let (ok, _, stderr) = run_cli(
        &config,
        &["oncall", "policy", "let-jb", file.to_str().unwrap()],
    );
    assert!(!ok && stderr.contains("at least 1m"), "{stderr}");
    let reset = cli_json(&config, &["oncall", "policy", "let-jb", "--reset"]);
    assert_eq!(reset["source"], "default");

    // A manual page, and the alert's life.
    let page = cli_json(&config, &["oncall", "page", "let-jb"]);
    let (id, code) = (
        page["id"].as_str().unwrap().to_string(),
        page["code"].as_str().unwrap().to_string(),
    );
    assert_eq!(code.len(), 4);
    let alerts = cli_json(&config, &["oncall", "alerts"]);
    assert_eq!(alerts[0]["id"], id.as_str());
    assert_eq!(alerts[0]["state"], "open");
    assert_eq!(alerts[0]["kind"], "page");
    let acked = cli_json(&config, &["oncall", "ack", &code]);
    assert_eq!(acked["result"], "done");
    assert_eq!(
        cli_json(&config, &["oncall", "alerts", "let-jb"])[0]["state"],
        "acknowledged"
    );
    assert_eq!(
        cli_json(&config, &["oncall", "ack", &id])["result"],
        "already_closed"
    );
    assert_eq!(
        cli_json(&config, &["oncall", "resolve", &id])["result"],
        "done"
    );
    assert_eq!(cli_json(&config, &["oncall", "alerts"]), json!([]));
    let all = cli_json(&config, &["oncall", "alerts", "--all"]);
    assert_eq!(all[0]["state"], "resolved");
    assert!(all[0]["resolved_by"].as_str().unwrap().starts_with("cli:"));

    // Each change is in the audit log.
    let log = cli_json(&config, &["audit", "tail", "--limit", "40"]);
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for action in [
        "oncall.rota_set",
        "oncall.override_added",
        "oncall.override_removed",
        "oncall.policy_set",
        "oncall.policy_reset",
        "oncall.alert_raised",
        "oncall.alert_acknowledged",
        "oncall.alert_resolved",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
}
