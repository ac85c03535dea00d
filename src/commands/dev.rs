//! `tenant-worker dev` and `tenant-worker embedded-api`: everything on one
//! machine with no cluster, for trying the worker and for demos. Built only
//! with the `dev` feature (scripts/dev.sh turns it on): the embedded
//! Kubernetes API and the nats-server launcher are not in the worker's image.

use std::path::Path;
use std::time::Duration;

use async_nats::jetstream;

use super::output;
use crate::config::{DevArgs, EmbeddedApiArgs, PublishArgs, PublishKind};
use crate::error::Error;
use kube_double::{self as embedded_api, EmbeddedApi, EmbeddedApiConfig};
use tenant_worker_test_support::nats_server::NatsServer;

fn write_kubeconfig(path: &Path, text: &str) -> Result<(), Error> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Setup(format!("cannot create {}: {e}", dir.display())))?;
    }
    std::fs::write(path, text)
        .map_err(|e| Error::Setup(format!("cannot write kubeconfig {}: {e}", path.display())))
}

fn exe() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.to_str().map(str::to_owned))
        .unwrap_or_else(|| "tenant-worker".into())
}

/// Runs `tenant-worker dev` until `shutdown` resolves.
///
/// # Errors
/// Invalid settings, a nats-server that cannot start, a port in use.
pub async fn run(args: DevArgs, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    // Validate everything before starting anything.
    let _ = args.worker.settings("nats://validate")?;
    let (nats_url, _nats) = match &args.nats_url {
        Some(url) => (url.clone(), None),
        None => {
            let server = NatsServer::start(None).map_err(|e| Error::Setup(e.to_string()))?;
            (server.url(), Some(server))
        }
    };
    let settings = args.worker.settings(&nats_url)?;
    let api = EmbeddedApi::start(args.api_listen, EmbeddedApiConfig::default())
        .await
        .map_err(|e| {
            Error::Setup(format!(
                "cannot start the embedded Kubernetes API on {}: {e} (choose another with --api-listen)",
                args.api_listen
            ))
        })?;
    write_kubeconfig(&args.kubeconfig_out, &api.kubeconfig_yaml())?;
    let kubeconfig = args.kubeconfig_out.display();
    let bin = exe();
    output::line(format_args!(
        "\ntenant-worker dev is running\n\
         \x20 NATS (JetStream):        {nats_url}\n\
         \x20 embedded Kubernetes API: {} (a test double: state is in memory)\n\
         \x20 kubeconfig:              {kubeconfig}\n\n\
         Try, in another terminal:\n\
         \x20 export NATS_URL={nats_url}\n\
         \x20 {bin} publish requested acme --plan standard\n\
         \x20 kubectl --kubeconfig {kubeconfig} get ns\n\
         \x20 kubectl --kubeconfig {kubeconfig} -n tenant-acme get resourcequota,limitrange,networkpolicy,serviceaccount,role,rolebinding\n\
         \x20 kubectl --kubeconfig {kubeconfig} -n tenant-acme get deployment,service,configmap\n\
         \x20 kubectl --kubeconfig {kubeconfig} -n tenant-acme get secret -l owner=helm   # the Helm release records\n\
         \x20 {bin} status\n\
         \x20 {bin} publish deleted acme\n\n\
         Ctrl-C stops everything.\n",
        api.url()
    ))?;
    if args.demo {
        let url = nats_url.clone();
        let kubeconfig = kubeconfig.to_string();
        tokio::spawn(async move {
            if let Err(e) = demo(&url, &kubeconfig).await {
                tracing::error!(error = %e, "demo failed");
            }
        });
    }
    crate::worker::run(
        settings,
        crate::cluster::client_from(api.config())?,
        shutdown,
    )
    .await?;
    api.shutdown().await;
    Ok(())
}

/// Publishes a request for tenant `demo` and prints its completion event.
async fn demo(nats_url: &str, kubeconfig: &str) -> Result<(), Error> {
    // The worker creates the streams at start; give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let args = PublishArgs {
        nats: crate::config::NatsArgs::plain(nats_url),
        kind: PublishKind::Requested,
        tenant: "demo".into(),
        plan: Some("standard".into()),
        app_version: None,
        values: None,
        metadata: Some(r#"{"billing_account":"ba_demo"}"#.into()),
        reason: None,
        id: None,
        source: "signup".into(),
        wait: 30,
    };
    let event = super::publish::build_event(&args)?;
    let js = jetstream::new(args.nats.connect("tenant-worker-demo").await?);
    super::publish::publish_event(&js, &event).await?;
    output::line(format_args!(
        "demo: published tenant.requested for tenant demo on plan standard ({})",
        event.id
    ))?;
    let done =
        super::publish::wait_for_completion(&js, &event.subject, event.id, Duration::from_secs(30))
            .await?;
    output::line(format_args!(
        "demo: {} on {}\n{}\n\
         demo: look at it with\n  kubectl --kubeconfig {kubeconfig} -n tenant-demo get resourcequota,limitrange,networkpolicy,serviceaccount,role,rolebinding\n  kubectl --kubeconfig {kubeconfig} -n tenant-demo get deployment,service,configmap,secret\n",
        done["type"].as_str().unwrap_or("?"),
        done["data"]["namespace"].as_str().unwrap_or("?"),
        serde_json::to_string_pretty(&done).expect("JSON prints")
    ))
}

/// Runs `tenant-worker embedded-api` until `shutdown` resolves.
///
/// # Errors
/// A port in use or an unwritable kubeconfig path.
pub async fn embedded_api(
    args: EmbeddedApiArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Error::Setup(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Setup(e.to_string()))?;
    let url = format!("http://{addr}");
    write_kubeconfig(&args.kubeconfig_out, &embedded_api::kubeconfig_yaml(&url))?;
    output::line(format_args!(
        "embedded Kubernetes API (test double) on {url}; kubeconfig written to {}",
        args.kubeconfig_out.display()
    ))?;
    let config = EmbeddedApiConfig {
        namespace_termination_delay: Duration::from_millis(args.namespace_termination_delay_ms),
        ready_delay: Duration::from_millis(args.ready_delay_ms),
    };
    embedded_api::serve(listener, config, shutdown)
        .await
        .map_err(|e| Error::Setup(format!("embedded API: {e}")))
}
