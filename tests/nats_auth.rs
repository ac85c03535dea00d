//! NATS security: the binary connects with a token, a user and password, an
//! nkey seed, a credentials file (operator mode) and TLS (own CA, client
//! certificate), by flag and by environment variable, to a nats-server
//! configured for each (the test writes the configuration); a connection the
//! server refuses is an error that says why, at once.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser as _;
use serde_json::json;
use tenant_worker::contract::STATE_BUCKET;
use tenant_worker::settings::{NatsAuth, NatsSettings, NatsTls, Secret};
use tenant_worker_test_support::nats_server::NatsServer;

const BIN: &str = env!("CARGO_BIN_EXE_tenant-worker");

/// Every environment variable the NATS flags read: the tests set their own.
const NATS_ENV: &[&str] = &[
    "NATS_URL",
    "NATS_CREDS",
    "NATS_NKEY",
    "NATS_TOKEN",
    "NATS_USER",
    "NATS_PASSWORD",
    "NATS_CA",
    "NATS_CERT",
    "NATS_KEY",
    "NATS_TLS_REQUIRED",
];

/// Runs the binary with `args` and `env` (and no other NATS variable), killing
/// it after 10 s: a refused connection must fail fast, not hang.
fn tw(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    for var in NATS_ENV {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let started = Instant::now();
    while child.try_wait().expect("wait works").is_none() {
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "tenant-worker {args:?} still running after 10 s; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// `status --json` against `url` with `extra` flags and `env`.
fn status(url: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut args = vec!["status", "--json", "--nats-url", url];
    args.extend_from_slice(extra);
    tw(&args, env)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "expected success, got {:?}; stderr: {}",
        out.status,
        stderr(out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.trim(), "[]", "an empty tenant_state lists no tenant");
}

/// Asserts a clean failure (exit 1, no panic) whose message has all of `words`.
#[track_caller]
fn assert_refused(out: &Output, words: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "expected exit 1; stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for word in words {
        assert!(err.contains(word), "stderr lacks {word:?}: {err}");
    }
}

/// Connects with `settings` (the library's path) and creates the bucket
/// `status` reads.
async fn create_state_bucket(settings: &NatsSettings) {
    let client = settings.connect().await.expect("the library connects");
    let js = jetstream::new(client);
    js.create_key_value(jetstream::kv::Config {
        bucket: STATE_BUCKET.into(),
        ..Default::default()
    })
    .await
    .expect("tenant_state is created");
}

fn settings(server: &NatsServer, auth: NatsAuth, tls: NatsTls) -> NatsSettings {
    NatsSettings {
        auth,
        tls,
        ..NatsSettings::plain(server.url(), "nats-auth-test")
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("test file written");
    path
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

#[tokio::test]
async fn token() {
    let server =
        NatsServer::start_with_config(None, Some("authorization { token: \"t0ken-s3cret\" }"))
            .expect("nats-server starts");
    let url = server.url();
    create_state_bucket(&settings(
        &server,
        NatsAuth::Token(Secret::new("t0ken-s3cret")),
        NatsTls::default(),
    ))
    .await;

    assert_ok(&status(&url, &["--nats-token", "t0ken-s3cret"], &[]));
    assert_ok(&status(&url, &[], &[("NATS_TOKEN", "t0ken-s3cret")]));

    let none = status(&url, &[], &[]);
    assert_refused(&none, &["refused", "authorization violation"]);
    let wrong = status(&url, &[], &[("NATS_TOKEN", "not-the-token")]);
    assert_refused(&wrong, &["refused", "authorization violation"]);
    assert!(
        !stderr(&wrong).contains("not-the-token"),
        "{}",
        stderr(&wrong)
    );

    // The help shows which variable is read, never its value.
    let help = tw(&["status", "--help"], &[("NATS_TOKEN", "t0ken-s3cret")]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("NATS_TOKEN"), "{text}");
    assert!(!text.contains("t0ken-s3cret"), "{text}");
}

#[tokio::test]
async fn user_and_password() {
    let server = NatsServer::start_with_config(
        None,
        Some("authorization { users: [ { user: alice, password: \"pa55-word\" } ] }"),
    )
    .expect("nats-server starts");
    let url = server.url();
    create_state_bucket(&settings(
        &server,
        NatsAuth::UserPassword {
            user: "alice".into(),
            password: Secret::new("pa55-word"),
        },
        NatsTls::default(),
    ))
    .await;

    assert_ok(&status(
        &url,
        &["--nats-user", "alice", "--nats-password", "pa55-word"],
        &[],
    ));
    assert_ok(&status(
        &url,
        &[],
        &[("NATS_USER", "alice"), ("NATS_PASSWORD", "pa55-word")],
    ));
    let wrong = status(
        &url,
        &["--nats-user", "alice", "--nats-password", "guess"],
        &[],
    );
    assert_refused(&wrong, &["refused", "authorization violation"]);
    assert_refused(&status(&url, &[], &[]), &["authorization violation"]);
}

#[tokio::test]
async fn nkey_seed_file() {
    let user = nkeys::KeyPair::new_user();
    let server = NatsServer::start_with_config(
        None,
        Some(&format!(
            "authorization {{ users: [ {{ nkey: {} }} ] }}",
            user.public_key()
        )),
    )
    .expect("nats-server starts");
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let seed = write(dir.path(), "user.nk", &(user.seed().unwrap() + "\n"));
    create_state_bucket(&settings(
        &server,
        NatsAuth::NkeySeedFile(seed.clone()),
        NatsTls::default(),
    ))
    .await;

    assert_ok(&status(&url, &["--nats-nkey", s(&seed)], &[]));
    assert_ok(&status(&url, &[], &[("NATS_NKEY", s(&seed))]));

    let stranger = write(
        dir.path(),
        "other.nk",
        &nkeys::KeyPair::new_user().seed().unwrap(),
    );
    assert_refused(
        &status(&url, &["--nats-nkey", s(&stranger)], &[]),
        &["refused", "authorization violation"],
    );
    assert_refused(&status(&url, &[], &[]), &["authorization violation"]);
}

/// A NATS JWT: base64url(header).base64url(claims).base64url(ed25519
/// signature of the first two parts by `issuer`).
fn jwt(issuer: &nkeys::KeyPair, subject: &str, name: &str, nats: serde_json::Value) -> String {
    let header = json!({"typ": "JWT", "alg": "ed25519-nkey"});
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "jti": uuid::Uuid::new_v4().simple().to_string().to_uppercase(),
        "iat": iat,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = issuer.sign(signing_input.as_bytes()).unwrap();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// An account JWT signed by `operator`; with JetStream unless `system`
/// (the server refuses JetStream on the system account).
fn account_jwt(
    operator: &nkeys::KeyPair,
    account: &nkeys::KeyPair,
    name: &str,
    system: bool,
) -> String {
    let mut limits = json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1,
    });
    if !system {
        for key in ["mem_storage", "disk_storage", "streams", "consumer"] {
            limits[key] = json!(-1);
        }
    }
    jwt(
        operator,
        &account.public_key(),
        name,
        json!({
            "limits": limits,
            "default_permissions": {"pub": {}, "sub": {}},
            "type": "account",
            "version": 2,
        }),
    )
}

/// A credentials file for a new user of `account`, as `nsc` writes them.
fn creds(account: &nkeys::KeyPair) -> String {
    let user = nkeys::KeyPair::new_user();
    let token = jwt(
        account,
        &user.public_key(),
        "worker",
        json!({
            "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
            "type": "user", "version": 2,
        }),
    );
    format!(
        "-----BEGIN NATS USER JWT-----\n{token}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n",
        user.seed().unwrap()
    )
}

#[tokio::test]
async fn credentials_file_in_operator_mode() {
    let operator = nkeys::KeyPair::new_operator();
    let system = nkeys::KeyPair::new_account();
    let app = nkeys::KeyPair::new_account();
    let operator_jwt = jwt(
        &operator,
        &operator.public_key(),
        "test-operator",
        json!({"system_account": system.public_key(), "type": "operator", "version": 2}),
    );
    let config = format!(
        "operator: {operator_jwt}\n\
         system_account: {sys}\n\
         resolver: MEMORY\n\
         resolver_preload: {{\n  {sys}: {sys_jwt}\n  {app}: {app_jwt}\n}}\n",
        sys = system.public_key(),
        sys_jwt = account_jwt(&operator, &system, "SYS", true),
        app = app.public_key(),
        app_jwt = account_jwt(&operator, &app, "APP", false),
    );
    let server = NatsServer::start_with_config(None, Some(&config)).expect("nats-server starts");
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let creds_file = write(dir.path(), "worker.creds", &creds(&app));
    create_state_bucket(&settings(
        &server,
        NatsAuth::CredsFile(creds_file.clone()),
        NatsTls::default(),
    ))
    .await;

    assert_ok(&status(&url, &["--nats-creds", s(&creds_file)], &[]));
    assert_ok(&status(&url, &[], &[("NATS_CREDS", s(&creds_file))]));

    // A user of an account the operator never signed.
    let stranger = write(
        dir.path(),
        "stranger.creds",
        &creds(&nkeys::KeyPair::new_account()),
    );
    assert_refused(
        &status(&url, &["--nats-creds", s(&stranger)], &[]),
        &["refused", "authorization violation"],
    );
    assert_refused(&status(&url, &[], &[]), &["authorization violation"]);
}

/// A CA, and a server (127.0.0.1, localhost) and client certificate it signs,
/// written as PEM files: `(ca, server cert, server key, client cert, client key)`.
fn pki(dir: &Path) -> [PathBuf; 5] {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "tenant-worker test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    server
        .distinguished_name
        .push(DnType::CommonName, "nats-server");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &issuer).unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client = CertificateParams::new(vec!["tenant-worker".into()]).unwrap();
    client
        .distinguished_name
        .push(DnType::CommonName, "tenant-worker");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client.signed_by(&client_key, &issuer).unwrap();

    [
        write(dir, "ca.pem", &ca_cert.pem()),
        write(dir, "server.pem", &server_cert.pem()),
        write(dir, "server-key.pem", &server_key.serialize_pem()),
        write(dir, "client.pem", &client_cert.pem()),
        write(dir, "client-key.pem", &client_key.serialize_pem()),
    ]
}

#[tokio::test]
async fn tls_with_own_ca_and_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let [ca, server_cert, server_key, client_cert, client_key] = pki(dir.path());
    let config = format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  verify: true\n  timeout: 2\n}}\n",
        s(&server_cert),
        s(&server_key),
        s(&ca)
    );
    let server = NatsServer::start_with_config(None, Some(&config)).expect("nats-server starts");
    let url = server.url();
    create_state_bucket(&settings(
        &server,
        NatsAuth::None,
        NatsTls {
            ca_file: Some(ca.clone()),
            client_cert: Some((client_cert.clone(), client_key.clone())),
            required: true,
        },
    ))
    .await;

    let flags = [
        "--nats-tls-ca",
        s(&ca),
        "--nats-tls-cert",
        s(&client_cert),
        "--nats-tls-key",
        s(&client_key),
    ];
    assert_ok(&status(&url, &flags, &[]));
    assert_ok(&status(
        &url,
        &["--nats-tls-required"],
        &[
            ("NATS_CA", s(&ca)),
            ("NATS_CERT", s(&client_cert)),
            ("NATS_KEY", s(&client_key)),
        ],
    ));
    // The same through tls://.
    let tls_url = url.replacen("nats://", "tls://", 1);
    assert_ok(&status(&tls_url, &flags, &[]));

    // The server verifies clients: no client certificate, no connection.
    assert_refused(
        &status(&url, &["--nats-tls-ca", s(&ca)], &[]),
        &["TLS connection was refused"],
    );
    // Without the CA, the server's certificate is not trusted.
    assert_refused(
        &status(
            &url,
            &[
                "--nats-tls-cert",
                s(&client_cert),
                "--nats-tls-key",
                s(&client_key),
            ],
            &[],
        ),
        &["TLS connection was refused"],
    );
}

#[tokio::test]
async fn tls_required_refuses_a_plain_server() {
    let server = NatsServer::start(None).expect("nats-server starts");
    assert_refused(
        &status(&server.url(), &["--nats-tls-required"], &[]),
        &["TLS"],
    );
}

#[test]
fn unreadable_files_are_named_before_connecting() {
    // Nothing listens there: a file error must come first, and at once.
    let port = tenant_worker_test_support::nats_server::free_port().unwrap();
    let url = format!("nats://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.creds");
    for (flag, env) in [
        ("--nats-creds", "NATS_CREDS"),
        ("--nats-nkey", "NATS_NKEY"),
        ("--nats-tls-ca", "NATS_CA"),
    ] {
        let out = status(&url, &[flag, s(&missing)], &[]);
        assert_refused(&out, &[flag, s(&missing), "cannot read"]);
        let out = status(&url, &[], &[(env, s(&missing))]);
        assert_refused(&out, &[flag, s(&missing)]);
    }
    let out = status(
        &url,
        &[
            "--nats-tls-cert",
            s(&missing),
            "--nats-tls-key",
            s(&missing),
        ],
        &[],
    );
    assert_refused(&out, &["--nats-tls-cert", s(&missing)]);

    let garbage = write(dir.path(), "garbage.creds", "not a creds file");
    let out = status(&url, &["--nats-creds", s(&garbage)], &[]);
    assert_refused(&out, &["--nats-creds", "not a NATS credentials file"]);
    let out = status(&url, &["--nats-nkey", s(&garbage)], &[]);
    assert_refused(&out, &["--nats-nkey", "no user nkey seed"]);
}

#[test]
fn conflicting_or_incomplete_flags_are_refused() {
    let url = "nats://127.0.0.1:1";
    for (args, env, words) in [
        (
            vec!["--nats-creds", "a", "--nats-token", "t"],
            vec![],
            vec!["--nats-creds", "--nats-token", "cannot be used with"],
        ),
        (
            vec!["--nats-nkey", "a"],
            vec![("NATS_USER", "u"), ("NATS_PASSWORD", "p")],
            vec!["--nats-nkey", "cannot be used with"],
        ),
        (
            vec![
                "--nats-token",
                "t",
                "--nats-user",
                "u",
                "--nats-password",
                "p",
            ],
            vec![],
            vec!["--nats-token", "cannot be used with"],
        ),
        (
            vec!["--nats-user", "u"],
            vec![],
            vec!["--nats-password", "required"],
        ),
        (
            vec!["--nats-tls-cert", "c.pem"],
            vec![],
            vec!["--nats-tls-key", "required"],
        ),
        (
            vec!["--nats-tls-key", "k.pem"],
            vec![],
            vec!["--nats-tls-cert", "required"],
        ),
    ] {
        let out = status(url, &args, &env);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        for word in words {
            assert!(err.contains(word), "{args:?}: stderr lacks {word:?}: {err}");
        }
    }
}

#[test]
fn every_nats_command_takes_the_flags_and_dev_stays_plain() {
    for command in [
        vec!["run"],
        vec!["publish"],
        vec!["status"],
        vec!["routes", "watch"],
        vec!["routes", "rebuild"],
        vec!["reconcile"],
        vec!["replay"],
    ] {
        let mut args = command.clone();
        args.push("--help");
        let help = String::from_utf8_lossy(&tw(&args, &[]).stdout).into_owned();
        for flag in [
            "--nats-creds",
            "--nats-nkey",
            "--nats-token",
            "--nats-user",
            "--nats-password",
            "--nats-tls-ca",
            "--nats-tls-cert",
            "--nats-tls-key",
            "--nats-tls-required",
        ] {
            assert!(help.contains(flag), "{command:?} --help lacks {flag}");
        }
    }
    if cfg!(feature = "dev") {
        let help = String::from_utf8_lossy(&tw(&["dev", "--help"], &[]).stdout).into_owned();
        assert!(!help.contains("--nats-creds"), "{help}");
    }
}

#[test]
fn settings_debug_never_shows_secrets() {
    let token = settings_with(NatsAuth::Token(Secret::new("t0ken-s3cret")));
    let password = settings_with(NatsAuth::UserPassword {
        user: "alice".into(),
        password: Secret::new("pa55-word"),
    });
    for (settings, secret) in [(token, "t0ken-s3cret"), (password, "pa55-word")] {
        let debug = format!("{settings:?}");
        assert!(!debug.contains(secret), "{debug}");
        assert!(debug.contains("redacted"), "{debug}");
    }
    let cli = tenant_worker::config::Cli::try_parse_from([
        "tenant-worker",
        "status",
        "--nats-user",
        "alice",
        "--nats-password",
        "pa55-word",
    ])
    .unwrap();
    let debug = format!("{cli:?}");
    assert!(!debug.contains("pa55-word"), "{debug}");
}

fn settings_with(auth: NatsAuth) -> NatsSettings {
    NatsSettings {
        auth,
        ..NatsSettings::plain("nats://127.0.0.1:4222", "t")
    }
}
