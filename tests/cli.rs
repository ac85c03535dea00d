//! The `tenant-worker` binary as an operator uses it: `publish` waits for and
//! prints the completion event, `status` shows the record, and bad arguments
//! fail with a message that says what is wrong, publishing nothing.

mod support;

use std::process::Output;

use serde_json::Value;
use support::*;

async fn cli(args: &[&str], nats_url: &str) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tenant-worker"));
    cmd.args(args)
        .env("NATS_URL", nats_url)
        .env("RUST_LOG", "warn");
    cmd.output().await.expect("binary runs")
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
            vec![
                "publish",
                "requested",
                "ok-id",
                "--plan",
                "free",
                "--values",
                "[1]",
            ],
            "--values must be a JSON object",
        ),
        (
            vec![
                "publish",
                "requested",
                "ok-id",
                "--plan",
                "free",
                "--values",
                "{oops",
            ],
            "--values is not valid JSON",
        ),
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
    for sub in ["run", "dev", "embedded-api", "publish", "status"] {
        assert!(text.contains(sub), "{sub} in --help:\n{text}");
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
        tenant_worker::embedded_api::FaultRule::new(503)
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
        tenant_worker::embedded_api::EmbeddedApiConfig {
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
