//! The `tenant-worker` binary as an operator uses it: `publish` waits for and
//! prints the completion event, `status` shows the record, and bad arguments
//! fail with a message that says what is wrong, publishing nothing.

use std::process::Output;

use crate::support::*;
use serde_json::Value;

async fn cli(args: &[&str], nats_url: &str) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tenant-worker"));
    cmd.args(args)
        .env("NATS_URL", nats_url)
        .env("RUST_LOG", "warn");
    cmd.output().await.expect("binary runs")
}

/// `publish requested ok-id --plan free --values <values>`.
fn requested_with_values(values: &str) -> Vec<&str> {
    vec![
        "publish",
        "requested",
        "ok-id",
        "--plan",
        "free",
        "--values",
        values,
    ]
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn publish_waits_for_the_completion_event_and_status_shows_the_tenant() {
    let h = Harness::start().await;
    let url = h.nats.url();
    let out = cli(
        &[
            "publish",
            "requested",
            "cli-co",
            "--plan",
            "premium",
            "--metadata",
            r#"{"order":"o-1"}"#,
        ],
        &url,
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("published tenant.requested "), "{text}");
    let json_start = text.find('{').expect("completion event printed");
    let completion: Value = serde_json::from_str(&text[json_start..]).unwrap();
    assert_eq!(completion["type"], "tenant.provisioned");
    assert_eq!(completion["data"]["metadata"]["order"], "o-1");

    h.wait_idle().await;
    let out = cli(&["status", "cli-co", "--json"], &url).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let record: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(record["status"], "ready");
    assert_eq!(record["plan"], "premium");

    let out = cli(&["status"], &url).await;
    let table = stdout(&out);
    assert!(
        table.lines().next().unwrap().starts_with("TENANT"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("cli-co") && l.contains("ready") && l.contains("premium")),
        "{table}"
    );
}

#[tokio::test]
async fn bad_arguments_fail_clearly_and_publish_nothing() {
    let h = Harness::start().await;
    let url = h.nats.url();
    for (args, expected) in [
        (
            vec!["publish", "requested", "Bad_Id", "--plan", "free"],
            "DNS-1123",
        ),
        (vec!["publish", "requested", "ok-id"], "--plan"),
        (
            vec!["publish", "upgraded", "ok-id"],
            "would be dead-lettered",
        ),
        (
            requested_with_values("[1]"),
            "--values must be a JSON object",
        ),
        (requested_with_values("{oops"), "--values is not valid JSON"),
        (vec!["status", "Nope"], "DNS-1123"),
        (vec!["status", "nobody"], "no record for tenant nobody"),
    ] {
        let out = cli(&args, &url).await;
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let mut lifecycle = h.js.get_stream("TENANT_LIFECYCLE").await.unwrap();
    assert_eq!(
        lifecycle.info().await.unwrap().state.messages,
        0,
        "nothing published"
    );
}

#[tokio::test]
async fn help_explains_every_subcommand() {
    let out = cli(&["--help"], "nats://127.0.0.1:1").await;
    let text = stdout(&out);
    for sub in [
        "run",
        "publish",
        "status",
        "routes",
        "render",
        "reconcile",
        "replay",
    ] {
        assert!(text.contains(sub), "{sub} in --help:\n{text}");
    }
    // `dev` and `embedded-api` exist in builds with the `dev` feature only
    // (scripts/dev.sh and scripts/test.sh turn it on).
    for sub in ["dev", "embedded-api"] {
        assert_eq!(
            text.contains(&format!("\n  {sub} ")),
            cfg!(feature = "dev"),
            "{sub} in --help:\n{text}"
        );
    }
    let out = cli(&["run", "--help"], "nats://127.0.0.1:1").await;
    assert!(
        stdout(&out).contains("TENANT_WORKER_CONCURRENCY"),
        "env vars shown"
    );
}

#[tokio::test]
async fn status_shows_the_saga_in_flight_and_its_steps() {
    let h = Harness::start().await;
    let url = h.nats.url();
    // The quota step keeps failing transiently, so the saga stays open after
    // its namespace step.
    h.api.faults().add_rule(
        kube_double::FaultRule::new(503)
            .method("PATCH")
            .resource("resourcequotas")
            .namespace("tenant-slowpoke"),
    );
    let event = requested("slowpoke", "premium");
    h.publish(&event).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let record = loop {
        let out = cli(&["status", "slowpoke", "--json"], &url).await;
        if out.status.success() {
            let record: Value = serde_json::from_str(&stdout(&out)).unwrap();
            if record["saga"]["attempts"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
            {
                break record;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no saga in flight");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(record["status"], "provisioning");
    let saga = &record["saga"];
    assert_eq!(saga["event_id"], event.id.to_string());
    assert_eq!(saga["intent"], "requested");
    assert_eq!(saga["plan"], "premium");
    assert_eq!(saga["phase"], "forward");
    assert_eq!(saga["steps"][0]["step"], "namespace");
    assert_eq!(saga["steps"][0]["state"], "done");
    assert!(
        saga["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("503"),
        "{saga:#}"
    );

    let out = cli(&["status"], &url).await;
    let table = stdout(&out);
    assert!(
        table.contains("requested premium forward [namespace]"),
        "{table}"
    );
}

#[tokio::test]
async fn routes_watch_follows_a_tenant_from_route_to_removal() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let h = Harness::start_with(
        |_| {},
        kube_double::EmbeddedApiConfig {
            namespace_termination_delay: std::time::Duration::from_secs(1),
            ..Default::default()
        },
    )
    .await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tenant-worker"))
        .args(["routes", "watch", "--json", "--nats-url", &h.nats.url()])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async || -> Value {
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("a route change in time")
            .unwrap()
            .expect("watch still running");
        serde_json::from_str(&line).unwrap()
    };

    let req = requested("routed", "standard");
    let req_seq = h.publish(&req).await;
    let added = next().await;
    assert_eq!(
        (added["op"].as_str(), added["tenant"].as_str()),
        (Some("put"), Some("routed"))
    );
    assert_eq!(added["route"]["generation"], req_seq);
    assert_eq!(
        added["route"]["host"],
        "app.tenant-routed.svc.cluster.local"
    );
    // Published only once the release is ready.
    let deployments =
        kube::Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(h.kube(), "tenant-routed")
            .list(&Default::default())
            .await
            .unwrap();
    let status = deployments.items[0].status.clone().unwrap();
    assert_eq!(status.available_replicas, status.replicas, "{status:?}");
    h.completion("routed", req.id).await;

    let up = upgraded("routed", "premium");
    let up_seq = h.publish(&up).await;
    let updated = next().await;
    assert_eq!(updated["op"], "put");
    assert_eq!(updated["route"]["plan"], "premium");
    assert_eq!(updated["route"]["generation"], up_seq);
    assert!(up_seq > req_seq, "the generation grows");

    let del = deleted("routed");
    h.publish(&del).await;
    let removed = next().await;
    assert_eq!(
        (removed["op"].as_str(), removed["tenant"].as_str()),
        (Some("delete"), Some("routed"))
    );
    // Withdrawn while the namespace still exists: no traffic to a dying tenant.
    assert!(
        kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(h.kube())
            .get_opt("tenant-routed")
            .await
            .unwrap()
            .is_some(),
        "the route goes before the namespace"
    );
    assert_eq!(
        h.completion("routed", del.id).await["type"],
        "tenant.deprovisioned"
    );
}

#[tokio::test]
async fn routes_rebuild_restores_the_table_from_records_and_cluster() {
    let h = Harness::start().await;
    let url = h.nats.url();
    let kept = requested("kept", "standard");
    let lost = requested("lost", "free");
    h.publish(&kept).await;
    let lost_seq = h.publish(&lost).await;
    h.completion("kept", kept.id).await;
    h.completion("lost", lost.id).await;
    h.wait_idle().await;

    // Damage the table: a route lost, one tampered with, one for nobody.
    let routes = h.js.get_key_value("tenant_routes").await.unwrap();
    routes.delete("lost").await.unwrap();
    let mut tampered = h.kv("tenant_routes", "kept").await.unwrap();
    tampered["plan"] = "premium".into();
    routes
        .put("kept", serde_json::to_vec(&tampered).unwrap().into())
        .await
        .unwrap();
    let ghost = serde_json::json!({"namespace": "tenant-ghost", "host": "app.tenant-ghost.svc.cluster.local",
        "port": 8080, "app_version": "1.0.0", "plan": "free", "status": "ready", "generation": 1});
    routes
        .put("ghost", serde_json::to_vec(&ghost).unwrap().into())
        .await
        .unwrap();
    let kubeconfig = h.kubeconfig();
    let kubeconfig = kubeconfig.to_str().unwrap();

    let dry = cli(
        &["routes", "rebuild", "--dry-run", "--kubeconfig", kubeconfig],
        &url,
    )
    .await;
    assert!(dry.status.success(), "{}", stderr(&dry));
    let text = stdout(&dry);
    assert!(
        text.contains("+ lost") && text.contains("+ kept") && text.contains("- ghost"),
        "{text}"
    );
    assert!(text.contains("2 set, 1 withdrawn, 0 unchanged"), "{text}");
    assert!(
        h.kv("tenant_routes", "lost").await.is_none(),
        "a dry run writes nothing"
    );

    let out = cli(&["routes", "rebuild", "--kubeconfig", kubeconfig], &url).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("routes rebuilt: 2 set, 1 withdrawn"),
        "{}",
        stdout(&out)
    );
    let restored = h.kv("tenant_routes", "lost").await.expect("route restored");
    assert_eq!(restored["plan"], "free");
    assert_eq!(restored["generation"], lost_seq);
    assert_eq!(
        h.kv("tenant_routes", "kept").await.unwrap()["plan"],
        "standard"
    );
    assert!(h.kv("tenant_routes", "ghost").await.is_none());

    // Rebuilding again changes nothing.
    let again = cli(&["routes", "rebuild", "--kubeconfig", kubeconfig], &url).await;
    assert!(
        stdout(&again).contains("0 set, 0 withdrawn, 2 unchanged"),
        "{}",
        stdout(&again)
    );
}

/// `tenant-worker render <args>`, offline unless the arguments say otherwise.
async fn render(args: &[&str]) -> Output {
    let mut all = vec!["render"];
    all.extend_from_slice(args);
    cli(&all, "nats://127.0.0.1:1").await
}

fn fixture_chart(name: &str) -> String {
    format!(
        "{}/tests/fixtures/charts/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[tokio::test]
async fn render_checks_the_charts_kube_version_as_helm_does() {
    let out = render(&["acme", "--plan", "standard", "--kube-version", "1.19.0"]).await;
    assert!(!out.status.success());
    assert!(stdout(&out).is_empty(), "nothing printed");
    assert!(
        stderr(&out).contains(
            "chart requires kubeVersion: >=1.20.0-0 which is incompatible with Kubernetes v1.19.0"
        ),
        "{}",
        stderr(&out)
    );

    // 1.20 is enough; Helm's default API versions still offer policy/v1.
    let out = render(&["acme", "--plan", "standard", "--kube-version", "v1.20.2"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("apiVersion: policy/v1\nkind: PodDisruptionBudget"),
        "{}",
        stdout(&out)
    );

    let out = render(&["acme", "--kube-version", "one.twenty"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--kube-version \"one.twenty\" is not a Kubernetes version"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn render_adds_api_versions_as_helm_template_does() {
    let chart = fixture_chart("capabilities");
    let plain = render(&["acme", "--chart", &chart]).await;
    assert!(plain.status.success(), "{}", stderr(&plain));
    let text = stdout(&plain);
    assert!(!text.contains("ServiceMonitor"), "{text}");
    assert!(text.contains("kubeVersion: \"v1.36.0\""), "{text}");
    assert!(text.contains("hasPolicyV1: \"true\""), "{text}");

    for flags in [
        vec!["--api-versions", "monitoring.coreos.com/v1"],
        vec!["-a", "example.com/v1", "-a", "monitoring.coreos.com/v1"],
        vec!["--api-versions", "example.com/v1,monitoring.coreos.com/v1"],
    ] {
        let mut args = vec!["acme", "--chart", &chart];
        args.extend(flags.iter().copied());
        let out = render(&args).await;
        assert!(out.status.success(), "{flags:?}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains("apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor"),
            "{flags:?}: {text}"
        );
        assert!(
            text.contains("hasPolicyV1: \"true\""),
            "defaults kept: {text}"
        );
    }
}

#[tokio::test]
async fn render_with_a_kubeconfig_uses_the_clusters_capabilities() {
    let api = kube_double::EmbeddedApi::start("127.0.0.1:0".parse().unwrap(), Default::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig_yaml()).unwrap();
    let kubeconfig = kubeconfig.to_str().unwrap();
    let chart = fixture_chart("capabilities");

    let out = render(&["acme", "--chart", &chart, "--kubeconfig", kubeconfig]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for line in [
        "kubeVersion: \"v1.33.0-embedded\"",
        "major: \"1\"",
        "minor: \"33\"",
        "hasDeploymentKind: \"true\"",
        "hasPolicyV1: \"true\"",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    assert!(!text.contains("ServiceMonitor"), "not served: {text}");

    // The flags replace the cluster's version and add to its APIs.
    let out = render(&[
        "acme",
        "--chart",
        &chart,
        "--kubeconfig",
        kubeconfig,
        "--kube-version",
        "1.30.1",
        "--api-versions",
        "monitoring.coreos.com/v1",
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("kubeVersion: \"v1.30.1\""), "{text}");
    assert!(text.contains("hasDeploymentKind: \"true\""), "{text}");
    assert!(text.contains("kind: ServiceMonitor"), "{text}");

    // The sample chart renders on the embedded API as on Helm's defaults.
    let sample = ["acme", "--plan", "premium"];
    let offline = render(&sample).await;
    let mut on_cluster = sample.to_vec();
    on_cluster.extend(["--kubeconfig", kubeconfig]);
    let on_cluster = render(&on_cluster).await;
    assert!(on_cluster.status.success(), "{}", stderr(&on_cluster));
    assert_eq!(stdout(&on_cluster), stdout(&offline));
    assert!(
        stdout(&on_cluster).contains("apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler")
    );
}

/// `render` is `helm template`: `lookup` finds nothing, so the chart
/// generates its password, and random functions draw anew at each run.
#[tokio::test]
async fn render_draws_random_values_and_looks_up_nothing_as_helm_template_does() {
    let chart = fixture_chart("generated-password");
    let password = |out: &Output| {
        let text = stdout(out);
        let line = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("password: "))
            .unwrap_or_else(|| panic!("a password in {text}"))
            .to_owned();
        let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, line)
            .expect("base64");
        String::from_utf8(bytes).expect("UTF-8")
    };
    let first = render(&["acme", "--chart", &chart]).await;
    assert!(first.status.success(), "{}", stderr(&first));
    let second = render(&["acme", "--chart", &chart]).await;
    assert!(second.status.success(), "{}", stderr(&second));
    let (a, b) = (password(&first), password(&second));
    assert!(
        a.len() == 24 && a.chars().all(|c| c.is_ascii_alphanumeric()),
        "{a}"
    );
    assert_ne!(a, b, "a new password at each run");
}

/// A reader that stops after a few bytes (`| head -c 64`) ends the command
/// quietly: no panic, no backtrace, exit status 0.
#[test]
fn a_reader_that_stops_early_ends_the_command_quietly() {
    use std::io::Read;
    // Far more output than a pipe holds (64 KiB), so the writer is still
    // writing when the reader goes.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    std::fs::write(
        dir.path().join("Chart.yaml"),
        "apiVersion: v2\nname: big\nversion: 1.0.0\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("templates/big.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n\
         {{- range $i := until 5000 }}\n  key{{ $i }}: {{ repeat 60 \"x\" | quote }}\n{{- end }}\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tenant-worker"))
        .args(["render", "acme", "--chart"])
        .arg(dir.path())
        .env("RUST_BACKTRACE", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 64];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    // The pipe's read end is closed here.
    assert!(head.starts_with(b"---\n# Source: big/templates/big.yaml\n"));
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe") && !err.contains("backtrace"),
        "{err}"
    );
    assert!(err.is_empty(), "nothing on stderr: {err}");
    assert_eq!(out.status.code(), Some(0));
}

/// Log lines to a pipe or a file are plain text: no ANSI colour codes.
#[tokio::test]
async fn logs_on_a_pipe_carry_no_colour_codes() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let h = Harness::start_bare(Default::default()).await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tenant-worker"))
        .args([
            "run",
            "--nats-url",
            &h.nats.url(),
            "--metrics-listen",
            "off",
        ])
        .arg("--kubeconfig")
        .arg(h.kubeconfig())
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    while !log.contains("tenant-worker consuming") {
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("the worker logs its start in time")
            .unwrap()
            .expect("the worker keeps running");
        log.push_str(&line);
        log.push('\n');
    }
    child.kill().await.unwrap();
    assert!(!log.contains('\x1b'), "colour codes in {log:?}");
    assert!(log.contains(" INFO "), "{log}");
}
