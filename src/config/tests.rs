use super::*;

#[test]
fn embedded_default_is_valid() {
    let config = Config::embedded_default().unwrap();
    assert_eq!(config.database.url, "sqlite:data/schuilnaam.db");
    assert!(config.worker_api.listen.ip().is_loopback());
    assert!(config.partner_api.listen.ip().is_loopback());
    assert!(config.admin.listen.ip().is_loopback());
    assert_eq!(config.phone.listen.to_string(), "127.0.0.1:8444");
    assert!(!config.phone.enabled);
}

#[test]
fn the_passkey_origin_is_a_host_name_over_https() {
    let rp = |origin: &str| relying_party_of(origin).map(|rp| (rp.id, rp.origin));
    let pair = |id: &str, origin: &str| Some((id.to_string(), origin.to_string()));
    assert_eq!(
        rp("https://Relay.Example"),
        pair("relay.example", "https://relay.example")
    );
    assert_eq!(
        rp("https://relay.example:443"),
        pair("relay.example", "https://relay.example")
    );
    assert_eq!(
        rp("https://relay.example:8443"),
        pair("relay.example", "https://relay.example:8443")
    );
    for bad in [
        "http://relay.example",
        "https://relay.example/",
        "https://relay.example/inloggen",
        "https://127.0.0.1:8443",
        "https://[::1]:8443",
        "https://relay.example:0",
        "https://relay.example:99999",
        "https://-relay.example",
        "https://relay..example",
        "https://user@relay.example",
        "relay.example",
        "https://",
    ] {
        assert_eq!(rp(bad), None, "{bad}");
    }
    let mut config = Config::embedded_default().unwrap();
    let dev = config.worker_api.relying_party(18443).unwrap();
    assert_eq!(
        (dev.id.as_str(), dev.origin.as_str()),
        ("localhost", "https://localhost:18443")
    );
    config.worker_api.public_origin = "https://10.0.0.1".into();
    assert!(config.validate().is_err());
}

#[test]
fn every_listener_caps_connections_per_address() {
    let config = Config::embedded_default().unwrap();
    assert_eq!(config.worker_api.max_connections_per_address, 64);
    assert_eq!(config.partner_api.max_connections_per_address, 64);
    assert_eq!(config.phone.max_connections_per_address, 64);
    let zeroed: [fn(&mut Config); 3] = [
        |c| c.worker_api.max_connections_per_address = 0,
        |c| c.partner_api.max_connections_per_address = 0,
        |c| c.phone.max_connections_per_address = 0,
    ];
    for zero in zeroed {
        let mut config = Config::embedded_default().unwrap();
        zero(&mut config);
        let error = config.validate().unwrap_err().to_string();
        assert!(
            error.contains("max_connections_per_address must be positive"),
            "{error}"
        );
    }
}

#[test]
fn phone_secrets_are_redacted_and_bad_settings_refused() {
    let mut config = Config::embedded_default().unwrap();
    config.phone.auth_token = "tok-s3cret".into();
    config.phone.kannel_password = "kan-s3cret".into();
    assert!(!format!("{config:?}").contains("s3cret"));
    assert_refused_in(
        "phone",
        &[
            ("enabled = true\npublic_base_url = \"http://x.example\"", "public_base_url"),
            ("enabled = true\napi_base_url = \"http://api.example\"", "api_base_url"),
            ("enabled = true\nprovider = \"kannel+sip\"\nkannel_sendsms_url = \"http://smsc.example/x\"", "kannel_sendsms_url"),
            ("quarantine_days = 0", "quarantine_days"),
        ],
    );
}

/// Each `(text, expected)`: a configuration file with `text` in `[section]` is refused, and the
/// error says `expected`.
fn assert_refused_in(section: &str, cases: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    for (text, expected) in cases {
        std::fs::write(&path, format!("[{section}]\n{text}\n")).unwrap();
        let err = Config::load(&path, true).unwrap_err().to_string();
        assert!(err.contains(expected), "{text}: {err}");
    }
}

#[test]
fn database_password_is_redacted() {
    assert_eq!(
        redact_url("postgres://relay:s3cret@db.internal/schuilnaam"),
        "postgres://relay:***@db.internal/schuilnaam"
    );
    assert_eq!(redact_url("sqlite:data/x.db"), "sqlite:data/x.db");
    assert_eq!(
        redact_url("postgres://db/x?user=relay&password=s3cret&sslmode=require"),
        "postgres://db/x?user=relay&password=***&sslmode=require"
    );
    let config = DatabaseConfig {
        url: "postgres://relay:s3cret@db/x".into(),
        max_connections: 1,
    };
    assert!(!format!("{config:?}").contains("s3cret"));
}

#[test]
fn production_example_is_valid() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/schuilnaam.production.example.toml");
    let config = Config::load(&path, true).unwrap();
    assert!(config.database.url.starts_with("postgres://"));
    assert!(!config.tls.client_ca.as_os_str().is_empty());
}

#[test]
fn production_certificate_needs_a_partner_ca() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "[tls]\ncert = \"/x/cert.pem\"\nkey = \"/x/key.pem\"\n",
    )
    .unwrap();
    let err = Config::load(&path, true).unwrap_err();
    assert!(err.to_string().contains("client_ca"), "{err}");
}

#[test]
fn missing_explicit_file_is_an_error() {
    let err = Config::load(Path::new("/nonexistent/schuilnaam.toml"), true).unwrap_err();
    assert!(matches!(err, ConfigError::Missing(_)));
}

#[test]
fn dkim_settings_from_before_two_keys_are_refused_with_the_new_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    for old in [
        "dkim_key = \"/etc/schuilnaam/dkim-key.pem\"",
        "dkim_selector = \"schuilnaam\"",
    ] {
        std::fs::write(&path, format!("[outbound]\n{old}\n")).unwrap();
        let err = Config::load(&path, true).unwrap_err().to_string();
        assert!(
            err.contains("dkim_ed25519_key") && err.contains("dkim_rsa_key"),
            "{err}"
        );
    }
}

#[test]
fn dkim_defaults_and_checks() {
    let config = Config::embedded_default().unwrap();
    assert_eq!(config.dkim_rsa_key_path(), Path::new("data/dkim-rsa.pem"));
    assert_eq!(
        config.dkim_ed25519_key_path(),
        Path::new("data/dkim-key.pem")
    );
    assert_eq!(config.outbound.dkim_rsa_selector, "schuilnaam-rsa");
    assert_eq!(config.outbound.dkim_ed25519_selector, "schuilnaam");
    assert_refused_in(
        "outbound",
        &[
            ("dkim_rsa_selector = \"schuilnaam\"", "must differ"),
            (
                "dkim_ed25519_selector = \"bad_selector\"",
                "dkim_ed25519_selector",
            ),
            ("dkim_rsa_key = \"data/dkim-key.pem\"", "different files"),
        ],
    );
}

#[test]
fn unknown_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[relay]\ndomian = \"x.example\"\n").unwrap();
    let err = Config::load(&path, true).unwrap_err();
    assert!(err.to_string().contains("domian"), "{err}");
}
