//! The administration commands, run as the real binary against a temporary configuration.

use serde_json::{json, Value};

use crate::helpers::{cli_json, fresh_database_url, run_cli, write_config_file, Backend};

async fn config_in(dir: &std::path::Path) -> std::path::PathBuf {
    let url = fresh_database_url(Backend::Sqlite, dir).await;
    write_config_file(dir, &url)
}

#[tokio::test]
async fn organisations_workers_aliases_and_teams() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path()).await;

    let added = cli_json(
        &config,
        &[
            "org",
            "add",
            "--name",
            "Jeugdbescherming West",
            "--kind",
            "gi",
            "--domain",
            "jbwest.example",
            "--phone",
            "010-1234567",
        ],
    );
    assert_eq!(added["added"], json!("Jeugdbescherming West"));
    let issued = cli_json(
        &config,
        &[
            "dev-ca",
            "issue",
            "--org",
            "Jeugdbescherming West",
            "--out",
            dir.path().join("c").to_str().unwrap(),
        ],
    );
    assert_eq!(issued["fingerprint"].as_str().unwrap().len(), 64);
    for file in ["client.pem", "client-key.pem", "ca.pem"] {
        assert!(dir.path().join("c").join(file).exists(), "{file}");
    }
    use std::os::unix::fs::PermissionsExt;
    let key_mode = std::fs::metadata(dir.path().join("c/client-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);

    let orgs = cli_json(&config, &["org", "list"]);
    assert_eq!(orgs[0]["domains"], json!(["jbwest.example"]));
    assert_eq!(orgs[0]["phones"], json!(["+31101234567"]));
    assert_eq!(orgs[0]["certificates"].as_array().unwrap().len(), 1);
    assert_eq!(orgs[0]["enabled"], json!(true));
    let fingerprint = issued["fingerprint"].as_str().unwrap();
    cli_json(
        &config,
        &[
            "org",
            "unpin",
            "Jeugdbescherming West",
            "--fingerprint",
            fingerprint,
        ],
    );
    assert_eq!(
        cli_json(&config, &["org", "list"])[0]["certificates"],
        json!([])
    );
    let (ok, _, stderr) = run_cli(
        &config,
        &[
            "org",
            "unpin",
            "Jeugdbescherming West",
            "--fingerprint",
            fingerprint,
        ],
    );
    assert!(!ok && stderr.contains("not found"), "{stderr}");
    cli_json(&config, &["org", "disable", "Jeugdbescherming West"]);
    assert_eq!(
        cli_json(&config, &["org", "list"])[0]["enabled"],
        json!(false)
    );
    cli_json(&config, &["org", "enable", "Jeugdbescherming West"]);

    let worker = cli_json(
        &config,
        &[
            "worker",
            "add",
            "--handle",
            "w17",
            "--pseudonym",
            "LET-medewerker 17",
            "--phone",
            "06-12 34 56 78",
            "--email",
            "w17@example.nl",
        ],
    );
    let alias = worker["alias"].as_str().unwrap();
    let local = alias.strip_suffix("@relay.localhost").unwrap();
    assert_eq!(local.len(), 12);
    assert!(local
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    assert!(worker["totp_uri"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/schuilnaam:w17?"));
    assert!(worker["passphrase"].as_str().unwrap().len() >= 20);
    assert_eq!(worker["key_custody"], json!("server"));

    let second = cli_json(&config, &["alias", "add", "--worker", "w17"]);
    let second = second["address"].as_str().unwrap().to_string();
    assert_ne!(second, alias);
    cli_json(&config, &["alias", "burn", &second]);
    let aliases = cli_json(&config, &["alias", "list", "--worker", "w17"]);
    let states: Vec<(String, bool)> = aliases
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["address"].as_str().unwrap().to_string(),
                a["burned"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(states.contains(&(alias.to_string(), false)));
    assert!(states.contains(&(second.clone(), true)));

    cli_json(&config, &["team", "add", "let-jb", "--alias", "aanmelding"]);
    cli_json(
        &config,
        &["team", "member", "add", "let-jb", "--worker", "w17"],
    );
    let teams = cli_json(&config, &["team", "list"]);
    assert_eq!(teams[0]["members"], json!(["w17"]));
    assert_eq!(
        teams[0]["aliases"][0]["address"],
        json!("aanmelding@relay.localhost")
    );

    let workers = cli_json(&config, &["worker", "list"]);
    assert_eq!(workers[0]["handle"], json!("w17"));
    // The real phone and e-mail are not in the listing (nor stored in the clear: see leaks.rs).
    let listing = workers.to_string();
    assert!(!listing.contains("12345678") && !listing.contains("w17@example.nl"));

    // Real contact details can come on standard input instead of the command line.
    let mut child = std::process::Command::new(crate::helpers::binary())
        .arg("--config")
        .arg(&config)
        .args([
            "--json",
            "worker",
            "add",
            "--handle",
            "w18",
            "--pseudonym",
            "LET-medewerker 18",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"06 98765432\nw18@prive.example\n")
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let w18: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(w18["handle"], json!("w18"));

    let revoked = cli_json(&config, &["worker", "revoke-tokens", "--handle", "w17"]);
    assert_eq!(revoked["revoked"], json!(0));
    let removed = cli_json(&config, &["worker", "remove-passkeys", "--handle", "w17"]);
    assert_eq!(removed["removed"], json!(0));

    let verified = cli_json(&config, &["audit", "verify"]);
    assert!(verified["rows"].as_i64().unwrap() >= 10);
    let (ok, stdout, _) = run_cli(&config, &["audit", "tail", "--limit", "3"]);
    assert!(ok);
    assert_eq!(stdout.lines().count(), 3);
}

#[tokio::test]
async fn bad_input_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path()).await;
    cli_json(&config, &["org", "add", "--name", "GI", "--kind", "gi"]);
    cli_json(
        &config,
        &[
            "worker",
            "add",
            "--handle",
            "w1",
            "--pseudonym",
            "P",
            "--phone",
            "0612345678",
            "--email",
            "a@example.nl",
        ],
    );
    let cases: &[(&[&str], &str)] = &[
        (
            &["org", "add", "--name", "GI", "--kind", "gi"],
            "already exists",
        ),
        (
            &[
                "org",
                "add",
                "--name",
                "X",
                "--kind",
                "gi",
                "--domain",
                "not a domain",
            ],
            "domain",
        ),
        (
            &["org", "add", "--name", "Y", "--kind", "gi", "--phone", "12"],
            "phone",
        ),
        (&["org", "disable", "Bestaat Niet"], "not found"),
        (
            &["org", "unpin", "GI", "--fingerprint", "abc"],
            "64 hex digits",
        ),
        (
            &[
                "worker",
                "add",
                "--handle",
                "w1",
                "--pseudonym",
                "P",
                "--phone",
                "0612345678",
                "--email",
                "a@example.nl",
            ],
            "already exists",
        ),
        (
            &[
                "worker",
                "add",
                "--handle",
                "Jan Jansen",
                "--pseudonym",
                "P",
                "--phone",
                "0612345678",
                "--email",
                "a@example.nl",
            ],
            "handle",
        ),
        (
            &[
                "worker",
                "add",
                "--handle",
                "w2",
                "--pseudonym",
                "P",
                "--phone",
                "0612345678",
                "--email",
                "geen-adres",
            ],
            "e-mail",
        ),
        (
            &[
                "worker",
                "add",
                "--handle",
                "w3",
                "--pseudonym",
                "P",
                "--phone",
                "0612345678",
                "--email",
                "a@example.nl",
                "--recipient",
                "age1nietgeldig",
            ],
            "recipient",
        ),
        (
            &["alias", "burn", "bestaatniet@relay.localhost"],
            "not found",
        ),
        (&["alias", "burn", "geen adres"], "local@domain"),
        (&["alias", "add", "--worker", "w9"], "not found"),
        (
            &["team", "member", "add", "geen-team", "--worker", "w1"],
            "not found",
        ),
    ];
    for (args, expected) in cases {
        let (ok, _, stderr) = run_cli(&config, args);
        assert!(!ok, "{args:?} should fail");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // A missing explicit configuration file is an error, not a silent default.
    let (ok, _, stderr) = run_cli(&dir.path().join("nope.toml"), &["org", "list"]);
    assert!(!ok);
    assert!(stderr.contains("does not exist"), "{stderr}");
}

#[tokio::test]
async fn environment_overrides_the_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path()).await;
    let other = dir.path().join("other.db");
    let output = std::process::Command::new(crate::helpers::binary())
        .arg("--config")
        .arg(&config)
        .args(["--json", "org", "add", "--name", "Via Env", "--kind", "gi"])
        .env(
            "SCHUILNAAM_DATABASE__URL",
            format!("sqlite:{}", other.display()),
        )
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(other.exists(), "the override chose the database");
    // The file's database did not get the organisation.
    let orgs: Value = cli_json(&config, &["org", "list"]);
    assert_eq!(orgs, json!([]));
    // A bad override is reported.
    let output = std::process::Command::new(crate::helpers::binary())
        .arg("--config")
        .arg(&config)
        .args(["org", "list"])
        .env("SCHUILNAAM_WORKER_API__LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid configuration"));
}
