//! Integration tests of the embedded Kubernetes API, through the `kube`
//! client over HTTP (and `kubectl`, when installed), as a user of the double
//! would check it.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, Namespace, ResourceQuota, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::Status;
use kube_double::{EmbeddedApi, EmbeddedApiConfig, FaultRule, RandomFaultKind, RandomFaults};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const MANAGER: &str = "tenant-worker";

async fn start() -> EmbeddedApi {
    start_with(EmbeddedApiConfig::default()).await
}

async fn start_with(config: EmbeddedApiConfig) -> EmbeddedApi {
    EmbeddedApi::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .expect("embedded api starts")
}

/// A client without kube's built-in retry of 429/503/504, to see those codes.
fn client_without_retries(api: &EmbeddedApi) -> kube::Client {
    let mut config = kube::Config::new(api.url().parse().unwrap());
    config.default_retry = false;
    kube::Client::try_from(config).unwrap()
}

/// A client with kube's defaults, including its retry of 429/503/504 (the
/// worker turns that off and retries by its own policy).
fn client_with_kube_retries(api: &EmbeddedApi) -> kube::Client {
    kube::Client::try_from(kube::Config::new(api.url().parse().unwrap())).unwrap()
}

fn apply_params() -> PatchParams {
    PatchParams::apply(MANAGER).force()
}

/// Builds a typed object from JSON, as tests write manifests.
fn obj<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("test manifest is valid for its type")
}

/// The `Status` of a failed call; panics when the call succeeded.
fn status_of<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> Box<Status> {
    match r {
        Err(kube::Error::Api(s)) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn apply_namespace(client: &kube::Client, name: &str) -> Namespace {
    let ns: Namespace =
        obj(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}));
    Api::<Namespace>::all(client.clone())
        .patch(name, &apply_params(), &Patch::Apply(&ns))
        .await
        .unwrap()
}

fn config_map(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    obj(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "labels": labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        },
        "data": data.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
    }))
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    obj(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27",
                                         "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}
            }
        }
    }))
}

fn names<K: kube::Resource>(items: &[K]) -> Vec<String> {
    items
        .iter()
        .map(|o| o.meta().name.clone().unwrap_or_default())
        .collect()
}

/// Polls `f` until it returns true, for at most `timeout`.
async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn discovery_version_and_builtin_namespaces() -> Result<()> {
    let api = start().await;
    let client = api.client();
    let version = client.apiserver_version().await?;
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "33")
    );
    let namespaces = Api::<Namespace>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    let ns_names = names(&namespaces.items);
    for expected in ["default", "kube-node-lease", "kube-public", "kube-system"] {
        assert!(ns_names.contains(&expected.to_string()), "{ns_names:?}");
    }
    // kube's discovery resolves every served group.
    let discovery = kube::discovery::Discovery::new(client.clone())
        .run()
        .await?;
    let groups: Vec<String> = discovery.groups().map(|g| g.name().to_string()).collect();
    for g in [
        "",
        "apps",
        "batch",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "autoscaling",
        "policy",
    ] {
        assert!(groups.contains(&g.to_string()), "{groups:?}");
    }
    Ok(())
}

#[tokio::test]
async fn kubeconfig_is_usable_by_kube_config() -> Result<()> {
    let api = start().await;
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&api.kubeconfig_yaml())?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    assert_eq!(
        config.cluster_url.to_string().trim_end_matches('/'),
        api.url()
    );
    let client = kube::Client::try_from(config)?;
    let got = Api::<Namespace>::all(client).get("default").await?;
    assert_eq!(got.status.unwrap().phase.as_deref(), Some("Active"));
    Ok(())
}

#[tokio::test]
async fn create_get_and_list_with_selectors_across_namespaces() -> Result<()> {
    let api = start().await;
    let client = api.client();
    for ns in ["team-a", "team-b"] {
        apply_namespace(&client, ns).await;
    }
    let pp = PostParams::default();
    let a = Api::<ConfigMap>::namespaced(client.clone(), "team-a");
    let b = Api::<ConfigMap>::namespaced(client.clone(), "team-b");
    a.create(
        &pp,
        &config_map("web", &[("app", "web"), ("tier", "front")], &[("k", "v")]),
    )
    .await?;
    a.create(
        &pp,
        &config_map("db", &[("app", "db"), ("tier", "back")], &[]),
    )
    .await?;
    b.create(&pp, &config_map("web", &[("app", "web")], &[]))
        .await?;
    b.create(
        &pp,
        &config_map("cache", &[("app", "cache"), ("tier", "back")], &[]),
    )
    .await?;

    let created = a.get("web").await?;
    let meta = &created.metadata;
    assert!(uuid::Uuid::parse_str(meta.uid.as_deref().unwrap()).is_ok());
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));
    assert!(
        meta.resource_version
            .as_deref()
            .unwrap()
            .parse::<u64>()
            .is_ok()
    );
    assert_eq!(created.data.unwrap()["k"], "v");

    let all = Api::<ConfigMap>::all(client.clone());
    let select = |s: &str| ListParams::default().labels(s);
    let list = all.list(&select("app=web")).await?;
    assert_eq!(list.items.len(), 2, "one web per namespace");
    assert!(list.metadata.resource_version.is_some());
    let mut in_set = names(&all.list(&select("app in (db,cache)")).await?.items);
    in_set.sort();
    assert_eq!(in_set, ["cache", "db"]);
    assert_eq!(
        names(&a.list(&select("app,tier!=back")).await?.items),
        ["web"]
    );
    assert_eq!(names(&a.list(&select("app==db")).await?.items), ["db"]);
    assert_eq!(names(&b.list(&select("!tier,app")).await?.items), ["web"]);
    assert_eq!(
        names(&all.list(&select("tier,app notin (db)")).await?.items),
        ["web", "cache"]
    );
    // Field selectors on name and namespace.
    let by_field = all
        .list(&ListParams::default().fields("metadata.namespace=team-b,metadata.name=cache"))
        .await?;
    assert_eq!(names(&by_field.items), ["cache"]);
    let bad_field = status_of(all.list(&ListParams::default().fields("data.k=v")).await);
    assert_eq!(
        (bad_field.code, bad_field.reason.as_str()),
        (400, "BadRequest")
    );
    // Every namespace got the kube-root-ca.crt a real cluster adds.
    assert!(a.get("kube-root-ca.crt").await.is_ok());
    // A namespace that does not exist lists as empty, like a real server.
    let none = Api::<ConfigMap>::namespaced(client.clone(), "nope")
        .list(&ListParams::default())
        .await?;
    assert!(none.items.is_empty());
    Ok(())
}

#[tokio::test]
async fn list_paging_and_metadata_only_lists() -> Result<()> {
    let api = start().await;
    let client = api.client();
    apply_namespace(&client, "paging").await;
    let cms = Api::<ConfigMap>::namespaced(client.clone(), "paging");
    for i in 0..5 {
        cms.create(
            &PostParams::default(),
            &config_map(&format!("cm-{i}"), &[("set", "x")], &[]),
        )
        .await?;
    }
    let mut seen = Vec::new();
    let mut lp = ListParams::default().labels("set=x").limit(2);
    loop {
        let page = cms.list(&lp).await?;
        assert!(page.items.len() <= 2);
        seen.extend(names(&page.items));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(seen, ["cm-0", "cm-1", "cm-2", "cm-3", "cm-4"]);
    let meta = cms
        .list_metadata(&ListParams::default().labels("set=x"))
        .await?;
    assert_eq!(meta.items.len(), 5);
    assert_eq!(meta.items[0].metadata.labels.as_ref().unwrap()["set"], "x");
    let one = cms.get_metadata("cm-3").await?;
    assert_eq!(one.metadata.name.as_deref(), Some("cm-3"));
    Ok(())
}

#[tokio::test]
async fn server_side_apply_removes_dropped_fields_and_is_idempotent() -> Result<()> {
    let api = start().await;
    let client = api.client();
    apply_namespace(&client, "ssa").await;
    let cms = Api::<ConfigMap>::namespaced(client.clone(), "ssa");
    let pp = apply_params();

    let v1 = config_map(
        "settings",
        &[("app", "web"), ("old", "yes")],
        &[("a", "1"), ("b", "2")],
    );
    let first = cms.patch("settings", &pp, &Patch::Apply(&v1)).await?;
    let rv1 = first.metadata.resource_version.clone().unwrap();
    assert_eq!(first.data.as_ref().unwrap().len(), 2);
    let managed = first.metadata.managed_fields.as_ref().unwrap();
    assert_eq!(managed[0].manager.as_deref(), Some(MANAGER));
    assert_eq!(managed[0].operation.as_deref(), Some("Apply"));

    // Re-apply without `b` and without the `old` label: both are removed.
    let v2 = config_map("settings", &[("app", "web")], &[("a", "1")]);
    let second = cms.patch("settings", &pp, &Patch::Apply(&v2)).await?;
    let rv2 = second.metadata.resource_version.clone().unwrap();
    assert_ne!(rv1, rv2);
    assert_eq!(
        second.data.as_ref().unwrap().keys().collect::<Vec<_>>(),
        ["a"]
    );
    assert!(!second.metadata.labels.as_ref().unwrap().contains_key("old"));
    assert_eq!(second.metadata.generation, Some(2));

    // Identical re-apply: nothing changes, not even the resourceVersion.
    let third = cms.patch("settings", &pp, &Patch::Apply(&v2)).await?;
    assert_eq!(
        third.metadata.resource_version.as_deref(),
        Some(rv2.as_str())
    );
    assert_eq!(third.metadata.generation, Some(2));
    assert_eq!(
        cms.get("settings")
            .await?
            .metadata
            .resource_version
            .as_deref(),
        Some(rv2.as_str())
    );

    // Fields another manager set survive this manager's re-apply.
    let other = PatchParams::apply("someone-else");
    cms.patch(
        "settings",
        &other,
        &Patch::Apply(&config_map("settings", &[], &[("c", "3")])),
    )
    .await?;
    let after = cms.patch("settings", &pp, &Patch::Apply(&v2)).await?;
    assert_eq!(after.data.unwrap().len(), 2, "a (ours) and c (theirs)");
    Ok(())
}

#[tokio::test]
async fn apply_conflicts_need_force() -> Result<()> {
    let api = start().await;
    let client = api.client();
    apply_namespace(&client, "conflicts").await;
    let cms = Api::<ConfigMap>::namespaced(client.clone(), "conflicts");
    cms.patch(
        "x",
        &PatchParams::apply("one"),
        &Patch::Apply(&config_map("x", &[], &[("k", "1")])),
    )
    .await?;
    let s = status_of(
        cms.patch(
            "x",
            &PatchParams::apply("two"),
            &Patch::Apply(&config_map("x", &[], &[("k", "2")])),
        )
        .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert!(s.message.contains("conflict with \"one\""), "{}", s.message);
    let forced = cms
        .patch(
            "x",
            &PatchParams::apply("two").force(),
            &Patch::Apply(&config_map("x", &[], &[("k", "2")])),
        )
        .await?;
    assert_eq!(forced.data.unwrap()["k"], "2");
    Ok(())
}

#[tokio::test]
async fn typed_apply_of_tenant_objects() -> Result<()> {
    let api = start().await;
    let client = api.client();
    let ns = apply_namespace(&client, "tenant-acme").await;
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Active"));
    assert_eq!(ns.spec.unwrap().finalizers.unwrap(), ["kubernetes"]);
    assert_eq!(
        ns.metadata.labels.unwrap()["kubernetes.io/metadata.name"],
        "tenant-acme"
    );

    let pp = apply_params();
    let quota: ResourceQuota = obj(json!({"apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "tenant-quota"},
        "spec": {"hard": {"requests.cpu": "2", "limits.memory": "4Gi", "count/configmaps": "20"}}}));
    Api::<ResourceQuota>::namespaced(client.clone(), "tenant-acme")
        .patch("tenant-quota", &pp, &Patch::Apply(&quota))
        .await?;
    let limits: LimitRange = obj(json!({"apiVersion": "v1", "kind": "LimitRange",
        "metadata": {"name": "tenant-limits"},
        "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m"}}]}}));
    Api::<LimitRange>::namespaced(client.clone(), "tenant-acme")
        .patch("tenant-limits", &pp, &Patch::Apply(&limits))
        .await?;
    let netpol: NetworkPolicy = obj(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}),
    );
    let np = Api::<NetworkPolicy>::namespaced(client.clone(), "tenant-acme")
        .patch("default-deny", &pp, &Patch::Apply(&netpol))
        .await?;
    assert_eq!(
        np.spec.unwrap().policy_types.unwrap(),
        ["Ingress", "Egress"]
    );
    let sa: ServiceAccount =
        obj(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app"}}));
    Api::<ServiceAccount>::namespaced(client.clone(), "tenant-acme")
        .patch("app", &pp, &Patch::Apply(&sa))
        .await?;
    let role: Role = obj(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "tenant-admin"},
        "rules": [{"apiGroups": ["", "apps"], "resources": ["*"], "verbs": ["*"]}]}),
    );
    Api::<Role>::namespaced(client.clone(), "tenant-acme")
        .patch("tenant-admin", &pp, &Patch::Apply(&role))
        .await?;
    let binding: RoleBinding = obj(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "tenant-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "tenant-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "tenant-acme"}]}),
    );
    Api::<RoleBinding>::namespaced(client.clone(), "tenant-acme")
        .patch("tenant-admin", &pp, &Patch::Apply(&binding))
        .await?;
    let svc: Service = obj(
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}),
    );
    let svc = Api::<Service>::namespaced(client.clone(), "tenant-acme")
        .patch("web", &pp, &Patch::Apply(&svc))
        .await?;
    assert!(svc.spec.unwrap().cluster_ip.unwrap().starts_with("10.96."));

    // The quota controller reports usage (object counts) soon after.
    let quotas = Api::<ResourceQuota>::namespaced(client.clone(), "tenant-acme");
    let counted = eventually(Duration::from_secs(3), || async {
        let q = quotas.get("tenant-quota").await.unwrap();
        q.status
            .and_then(|s| s.used)
            .is_some_and(|u| u.get("count/configmaps").map(|q| q.0.as_str()) == Some("1"))
    })
    .await;
    assert!(
        counted,
        "quota status counts the kube-root-ca.crt configmap"
    );
    Ok(())
}

#[tokio::test]
async fn errors_are_kubernetes_status_objects() -> Result<()> {
    let api = start().await;
    let client = api.client();
    apply_namespace(&client, "errs").await;
    let cms = Api::<ConfigMap>::namespaced(client.clone(), "errs");

    let s = status_of(cms.get("missing").await);
    assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
    assert_eq!(s.message, "configmaps \"missing\" not found");
    assert_eq!(s.details.as_ref().unwrap().name, "missing");

    cms.create(&PostParams::default(), &config_map("dup", &[], &[]))
        .await?;
    let s = status_of(
        cms.create(&PostParams::default(), &config_map("dup", &[], &[]))
            .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"));

    // Replace with a stale resourceVersion.
    let current = cms.get("dup").await?;
    let mut changed = current.clone();
    changed.data = Some(BTreeMap::from([("x".to_string(), "1".to_string())]));
    cms.replace("dup", &PostParams::default(), &changed).await?;
    let mut stale = current;
    stale.data = Some(BTreeMap::from([("x".to_string(), "2".to_string())]));
    let s = status_of(cms.replace("dup", &PostParams::default(), &stale).await);
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));

    let s = status_of(
        cms.create(
            &PostParams::default(),
            &config_map("bad", &[("app", "not valid!")], &[]),
        )
        .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    assert!(s.message.contains("metadata.labels"), "{}", s.message);

    let s = status_of(
        cms.create(&PostParams::default(), &config_map("Bad_Name", &[], &[]))
            .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));

    // A Service port without protocol is refused on server-side apply.
    let svc: Service = obj(
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80}]}}),
    );
    let services = Api::<Service>::namespaced(client.clone(), "errs");
    let s = status_of(
        services
            .patch("web", &apply_params(), &Patch::Apply(&svc))
            .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    assert!(s.message.contains("protocol"), "{}", s.message);

    // A Deployment whose selector does not match its template.
    let mut d = deployment("web", 1);
    d.spec.as_mut().unwrap().selector.match_labels =
        Some(BTreeMap::from([("app".into(), "other".into())]));
    let s = status_of(
        Api::<Deployment>::namespaced(client.clone(), "errs")
            .create(&PostParams::default(), &d)
            .await,
    );
    assert_eq!(s.code, 422);

    // Creating in a namespace that does not exist.
    let s = status_of(
        Api::<ConfigMap>::namespaced(client.clone(), "ghost")
            .create(&PostParams::default(), &config_map("c", &[], &[]))
            .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
    assert_eq!(s.message, "namespaces \"ghost\" not found");

    // A body whose namespace differs from the URL's.
    let mut elsewhere = config_map("c", &[], &[]);
    elsewhere.metadata.namespace = Some("default".into());
    let s = status_of(cms.create(&PostParams::default(), &elsewhere).await);
    assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"));

    // A type error is a decode error, with serde's message.
    let raw = http::Request::post("/api/v1/namespaces/errs/services")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(
            &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"ports": [{"port": "eighty"}]}}),
        )?)?;
    let s = status_of(client.request_text(raw).await);
    assert_eq!(s.code, 400);
    assert!(s.message.contains("spec.ports[0].port"), "{}", s.message);

    // Apply without fieldManager.
    let raw = http::Request::patch("/api/v1/namespaces/errs/configmaps/c")
        .header("content-type", "application/apply-patch+yaml")
        .body(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n".to_vec())?;
    let s = status_of(client.request_text(raw).await);
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));

    // Watches are refused honestly.
    let raw =
        http::Request::get("/api/v1/namespaces/errs/configmaps?watch=true").body(Vec::new())?;
    let s = status_of(client.request_text(raw).await);
    assert_eq!((s.code, s.reason.as_str()), (405, "MethodNotAllowed"));

    // Unknown resources.
    let raw = http::Request::get("/apis/example.com/v1/widgets").body(Vec::new())?;
    assert_eq!(status_of(client.request_text(raw).await).code, 404);
    Ok(())
}

#[tokio::test]
async fn patches_merge_strategic_and_json() -> Result<()> {
    let api = start().await;
    let client = api.client();
    apply_namespace(&client, "patches").await;
    let cms = Api::<ConfigMap>::namespaced(client.clone(), "patches");
    cms.create(&PostParams::default(), &config_map("p", &[], &[("a", "1")]))
        .await?;
    let merged = cms
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"b": "2", "a": null}})),
        )
        .await?;
    assert_eq!(
        merged.data.unwrap(),
        BTreeMap::from([("b".to_string(), "2".to_string())])
    );
    let strategic = cms
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {"s": "1"}}})),
        )
        .await?;
    assert_eq!(strategic.metadata.labels.unwrap()["s"], "1");
    let raw = http::Request::patch("/api/v1/namespaces/patches/configmaps/p")
        .header("content-type", "application/json-patch+json")
        .body(serde_json::to_vec(
            &json!([{"op": "add", "path": "/data/c", "value": "3"}]),
        )?)?;
    let patched: ConfigMap = client.request(raw).await?;
    assert_eq!(patched.data.unwrap()["c"], "3");
    let s = status_of(
        cms.patch("missing", &PatchParams::default(), &Patch::Merge(json!({})))
            .await,
    );
    assert_eq!(s.code, 404);
    Ok(())
}

#[tokio::test]
async fn namespace_deletion_terminates_then_removes_content() -> Result<()> {
    let api = start_with(EmbeddedApiConfig {
        namespace_termination_delay: Duration::from_millis(400),
        ..EmbeddedApiConfig::default()
    })
    .await;
    let client = api.client();
    apply_namespace(&client, "doomed").await;
    let cms = Api::<ConfigMap>::namespaced(client.clone(), "doomed");
    cms.patch(
        "inside",
        &apply_params(),
        &Patch::Apply(&config_map("inside", &[], &[])),
    )
    .await?;
    let namespaces = Api::<Namespace>::all(client.clone());

    let deleted = namespaces
        .delete("doomed", &DeleteParams::background())
        .await?;
    let ns = deleted
        .left()
        .expect("a namespace delete returns the namespace");
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Terminating"));
    assert!(ns.metadata.deletion_timestamp.is_some());

    for attempt in [
        cms.create(&PostParams::default(), &config_map("late", &[], &[]))
            .await,
        cms.patch(
            "late",
            &apply_params(),
            &Patch::Apply(&config_map("late", &[], &[])),
        )
        .await,
    ] {
        let s = status_of(attempt);
        assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
        assert!(s.message.contains(
            "unable to create new content in namespace doomed because it is being terminated"
        ));
        assert_eq!(s.details.unwrap().causes[0].reason, "NamespaceTerminating");
    }
    // Still there while terminating; then it and its content are gone.
    assert!(cms.get("inside").await.is_ok());
    let gone = eventually(Duration::from_secs(5), || async {
        namespaces.get_opt("doomed").await.unwrap().is_none()
    })
    .await;
    assert!(gone, "namespace removed after the termination delay");
    assert_eq!(status_of(cms.get("inside").await).code, 404);
    assert!(
        Api::<ConfigMap>::all(client.clone())
            .list(&ListParams::default().fields("metadata.namespace=doomed"))
            .await?
            .items
            .is_empty()
    );
    // Protected namespaces stay.
    let s = status_of(namespaces.delete("default", &DeleteParams::default()).await);
    assert_eq!(s.code, 403);
    Ok(())
}

#[tokio::test]
async fn delete_objects_and_collections() -> Result<()> {
    let api = start().await;
    let client = api.client();
    apply_namespace(&client, "del").await;
    let cms = Api::<ConfigMap>::namespaced(client.clone(), "del");
    for (name, owner) in [("a", "us"), ("b", "us"), ("c", "them")] {
        cms.create(
            &PostParams::default(),
            &config_map(name, &[("owner", owner)], &[]),
        )
        .await?;
    }
    assert!(cms.delete("a", &DeleteParams::default()).await.is_ok());
    assert_eq!(
        status_of(cms.delete("a", &DeleteParams::default()).await).code,
        404
    );
    let removed = cms
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("owner=us"),
        )
        .await?;
    assert_eq!(names(&removed.left().unwrap().items), ["b"]);
    assert_eq!(
        names(
            &cms.list(&ListParams::default().labels("owner"))
                .await?
                .items
        ),
        ["c"]
    );

    // Finalizers hold an object until they are removed.
    let mut held = config_map("held", &[], &[]);
    held.metadata.finalizers = Some(vec!["example.com/cleanup".into()]);
    cms.create(&PostParams::default(), &held).await?;
    cms.delete("held", &DeleteParams::default()).await?;
    assert!(cms.get("held").await?.metadata.deletion_timestamp.is_some());
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    assert_eq!(status_of(cms.get("held").await).code, 404);
    Ok(())
}

#[tokio::test]
async fn fault_rule_fails_network_policy_applies_twice_then_succeeds() -> Result<()> {
    let api = start().await;
    let client = api.client();
    apply_namespace(&client, "faulty").await;
    api.faults().add_rule(
        FaultRule::new(500)
            .method("PATCH")
            .resource("networkpolicies")
            .times(2),
    );
    let netpols = Api::<NetworkPolicy>::namespaced(client.clone(), "faulty");
    let np: NetworkPolicy = obj(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "deny"}, "spec": {"podSelector": {}}}),
    );
    for _ in 0..2 {
        let s = status_of(
            netpols
                .patch("deny", &apply_params(), &Patch::Apply(&np))
                .await,
        );
        assert_eq!((s.code, s.reason.as_str()), (500, "InternalError"));
    }
    netpols
        .patch("deny", &apply_params(), &Patch::Apply(&np))
        .await?;
    assert_eq!(api.faults().request_count("PATCH", "networkpolicies"), 3);
    assert_eq!(api.faults().request_count("PATCH", "namespaces"), 1);
    // Other resources were never affected.
    Api::<ConfigMap>::namespaced(client.clone(), "faulty")
        .patch(
            "c",
            &apply_params(),
            &Patch::Apply(&config_map("c", &[], &[])),
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn random_faults_latency_and_throttling() -> Result<()> {
    let api = start().await;
    let client = api.client();
    let namespaces = Api::<Namespace>::all(client.clone());

    api.faults().set_random(
        RandomFaults::new(1.0)
            .seed(7)
            .kinds(&[RandomFaultKind::ServerError]),
    );
    for _ in 0..3 {
        assert_eq!(status_of(namespaces.get("default").await).code, 500);
    }
    // Discovery is never faulted, so clients can still find their way.
    client.apiserver_version().await?;
    api.faults().clear_random();
    namespaces.get("default").await?;

    // 429 carries Retry-After; a client without retries sees it ...
    let bare = Api::<Namespace>::all(client_without_retries(&api));
    api.faults()
        .add_rule(FaultRule::new(429).resource("namespaces").times(1));
    let s = status_of(bare.get("default").await);
    assert_eq!((s.code, s.reason.as_str()), (429, "TooManyRequests"));
    assert_eq!(s.details.unwrap().retry_after_seconds, 1);
    // ... while kube's default client retries it after Retry-After.
    api.faults()
        .add_rule(FaultRule::new(429).resource("namespaces").times(1));
    Api::<Namespace>::all(client_with_kube_retries(&api))
        .get("default")
        .await?;

    // The timeout-like stall answers 504 after the stall.
    api.faults().set_random(
        RandomFaults::new(1.0)
            .kinds(&[RandomFaultKind::Timeout])
            .stall(Duration::from_millis(100)),
    );
    let started = std::time::Instant::now();
    let s = status_of(bare.get("default").await);
    assert_eq!((s.code, s.reason.as_str()), (504, "Timeout"));
    assert!(started.elapsed() >= Duration::from_millis(100));
    api.faults().clear();

    api.faults().set_latency(Duration::from_millis(150));
    let started = std::time::Instant::now();
    namespaces.get("default").await?;
    assert!(started.elapsed() >= Duration::from_millis(150));
    api.faults().clear();
    assert!(api.faults().request_count("GET", "namespaces") >= 8);
    Ok(())
}

#[tokio::test]
async fn faults_are_controllable_over_http() -> Result<()> {
    let api = start().await;
    let client = api.client();
    let control = |method: &str, body: Value| {
        http::Request::builder()
            .method(method)
            .uri("/_embedded/faults")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap())
            .unwrap()
    };
    client
        .request_text(control(
            "POST",
            json!({"rules": [{"method": "GET", "resource": "configmaps", "namespace": "default", "status": 503}]}),
        ))
        .await?;
    let cms = Api::<ConfigMap>::namespaced(client_without_retries(&api), "default");
    let s = status_of(cms.list(&ListParams::default()).await);
    assert_eq!((s.code, s.reason.as_str()), (503, "ServiceUnavailable"));
    client.request_text(control("DELETE", json!({}))).await?;
    cms.list(&ListParams::default()).await?;
    let counts: Value = client
        .request(http::Request::get("/_embedded/requests").body(Vec::new())?)
        .await?;
    assert!(
        counts
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["method"] == "GET" && c["resource"] == "configmaps" && c["count"] == 2),
        "{counts}"
    );
    Ok(())
}

#[tokio::test]
async fn workloads_become_ready_after_delay_unless_held() -> Result<()> {
    let api = start_with(EmbeddedApiConfig {
        ready_delay: Duration::from_millis(300),
        ..EmbeddedApiConfig::default()
    })
    .await;
    let client = api.client();
    apply_namespace(&client, "apps").await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), "apps");
    api.faults().keep_unready("apps", "Deployment", "held");

    let web = deployments
        .patch("web", &apply_params(), &Patch::Apply(&deployment("web", 2)))
        .await?;
    assert_eq!(
        web.status.unwrap().available_replicas,
        None,
        "not ready right after create"
    );
    deployments
        .patch(
            "held",
            &apply_params(),
            &Patch::Apply(&deployment("held", 1)),
        )
        .await?;

    let available = |name: &'static str| {
        let deployments = deployments.clone();
        async move {
            deployments
                .get(name)
                .await
                .unwrap()
                .status
                .and_then(|s| s.available_replicas)
        }
    };
    assert!(
        eventually(Duration::from_secs(5), || async {
            available("web").await == Some(2)
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(available("held").await, None, "held back by keep_unready");
    api.faults().release_unready("apps", "Deployment", "held");
    assert!(
        eventually(Duration::from_secs(5), || async {
            available("held").await == Some(1)
        })
        .await
    );

    // A spec change makes it progress again, then ready again.
    let scaled = deployments
        .patch("web", &apply_params(), &Patch::Apply(&deployment("web", 3)))
        .await?;
    assert_eq!(scaled.metadata.generation, Some(2));
    assert_eq!(scaled.status.unwrap().available_replicas, None);
    assert!(
        eventually(Duration::from_secs(5), || async {
            available("web").await == Some(3)
        })
        .await
    );

    let job: Job = obj(
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "m", "image": "busybox:1.36"}]}}}}),
    );
    let jobs = Api::<Job>::namespaced(client.clone(), "apps");
    jobs.patch("migrate", &apply_params(), &Patch::Apply(&job))
        .await?;
    assert!(
        eventually(Duration::from_secs(5), || async {
            jobs.get("migrate")
                .await
                .unwrap()
                .status
                .and_then(|s| s.succeeded)
                == Some(1)
        })
        .await
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_applies() -> Result<()> {
    let api = start().await;
    let client = api.client();
    apply_namespace(&client, "busy").await;
    let cms = Api::<ConfigMap>::namespaced(client.clone(), "busy");
    let applies = (0..200).map(|i| {
        let cms = cms.clone();
        async move {
            let name = format!("cm-{i}");
            cms.patch(
                &name,
                &apply_params(),
                &Patch::Apply(&config_map(&name, &[("batch", "1")], &[("i", "x")])),
            )
            .await
        }
    });
    let results = futures::future::join_all(applies).await;
    assert!(results.iter().all(Result::is_ok));
    let mut rvs: Vec<String> = results
        .into_iter()
        .map(|r| r.unwrap().metadata.resource_version.unwrap())
        .collect();
    rvs.sort();
    rvs.dedup();
    assert_eq!(rvs.len(), 200, "every write got its own resourceVersion");
    assert_eq!(
        cms.list(&ListParams::default().labels("batch=1"))
            .await?
            .items
            .len(),
        200
    );
    Ok(())
}

#[tokio::test]
async fn shutdown_stops_the_server() -> Result<()> {
    let api = start().await;
    // A client with an idle keep-alive connection must not keep the server up.
    let client = api.client();
    client.apiserver_version().await?;
    tokio::time::timeout(Duration::from_secs(5), api.shutdown())
        .await
        .expect("shutdown completes promptly");
    assert!(client.apiserver_version().await.is_err());
    Ok(())
}

/// `kubectl` from PATH, if installed.
fn kubectl() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|p| p.is_file())
}

async fn run_kubectl(kubectl: &std::path::Path, dir: &std::path::Path, args: &[&str]) -> String {
    let out = tokio::process::Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(dir.join("kubeconfig"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .args(args)
        .env("HOME", dir)
        .env_remove("KUBECONFIG")
        .output()
        .await
        .expect("kubectl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\n{stdout}\n{stderr}"
    );
    // Shown with --nocapture, to eyeball that output looks like a real cluster's.
    eprintln!("$ kubectl {}\n{stdout}{stderr}", args.join(" "));
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_and_describe() -> Result<()> {
    let Some(kubectl) = kubectl() else {
        eprintln!("kubectl_get_and_describe skipped: kubectl is not on PATH");
        return Ok(());
    };
    let api = start().await;
    let client = api.client();
    apply_namespace(&client, "tenant-acme").await;
    let pp = apply_params();
    let quota: ResourceQuota = obj(json!({"apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "tenant-quota"},
        "spec": {"hard": {"requests.cpu": "2", "limits.memory": "4Gi", "count/configmaps": "20"}}}));
    Api::<ResourceQuota>::namespaced(client.clone(), "tenant-acme")
        .patch("tenant-quota", &pp, &Patch::Apply(&quota))
        .await?;
    let limits: LimitRange = obj(
        json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "tenant-limits"},
        "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m"}}]}}),
    );
    Api::<LimitRange>::namespaced(client.clone(), "tenant-acme")
        .patch("tenant-limits", &pp, &Patch::Apply(&limits))
        .await?;
    let netpol: NetworkPolicy = obj(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny"}, "spec": {"podSelector": {}}}),
    );
    Api::<NetworkPolicy>::namespaced(client.clone(), "tenant-acme")
        .patch("default-deny", &pp, &Patch::Apply(&netpol))
        .await?;
    Api::<Deployment>::namespaced(client.clone(), "tenant-acme")
        .patch("web", &pp, &Patch::Apply(&deployment("web", 2)))
        .await?;
    let svc: Service = obj(
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP"}]}}),
    );
    Api::<Service>::namespaced(client.clone(), "tenant-acme")
        .patch("web", &pp, &Patch::Apply(&svc))
        .await?;
    // Let the quota controller count before describing.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("kubeconfig"), api.kubeconfig_yaml())?;
    let k = |args: &'static [&'static str]| {
        let kubectl = kubectl.clone();
        let dir = dir.path().to_path_buf();
        async move { run_kubectl(&kubectl, &dir, args).await }
    };

    let ns = k(&["get", "ns"]).await;
    assert!(
        ns.contains("NAME") && ns.contains("STATUS") && ns.contains("AGE"),
        "{ns}"
    );
    assert!(
        ns.lines()
            .any(|l| l.starts_with("tenant-acme") && l.contains("Active")),
        "{ns}"
    );
    assert!(ns.contains("kube-system"), "{ns}");

    let quota = k(&["get", "resourcequota", "-n", "tenant-acme"]).await;
    assert!(
        quota.contains("tenant-quota") && quota.contains("requests.cpu: 0/2"),
        "{quota}"
    );

    let many = k(&[
        "get",
        "resourcequota,limitrange,networkpolicy,serviceaccount,role,rolebinding",
        "-n",
        "tenant-acme",
    ])
    .await;
    for expected in [
        "resourcequota/tenant-quota",
        "limitrange/tenant-limits",
        "networkpolicy.networking.k8s.io/default-deny",
        "serviceaccount/default",
    ] {
        assert!(many.contains(expected), "{expected} missing in:\n{many}");
    }

    let described = k(&["describe", "ns", "tenant-acme"]).await;
    for expected in [
        "Name:",
        "tenant-acme",
        "Status:",
        "Active",
        "tenant-quota",
        "requests.cpu",
        "Resource Limits",
        "Container",
    ] {
        assert!(
            described.contains(expected),
            "{expected} missing in:\n{described}"
        );
    }

    let yaml = k(&["get", "ns", "tenant-acme", "-o", "yaml"]).await;
    assert!(
        yaml.contains("name: tenant-acme") && yaml.contains("phase: Active"),
        "{yaml}"
    );

    let all = k(&["get", "all", "-A"]).await;
    assert!(
        all.contains("deployment.apps/web") && all.contains("service/web"),
        "{all}"
    );
    Ok(())
}
