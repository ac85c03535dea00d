//! The `tenant-worker` binary: parses the command line, sets up logging, and
//! hands over to the library.
#![forbid(unsafe_code)]

use std::io::Write as _;

use clap::Parser;
use tenant_worker::commands;
use tenant_worker::config::{Cli, Command};

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown signal received");
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    #[cfg(feature = "failpoints")]
    let _failpoints = tenant_worker::failpoint::setup();
    let default_level = match cli.command {
        Command::Publish(_)
        | Command::Status(_)
        | Command::Render(_)
        | Command::Routes(_)
        | Command::Reconcile(_)
        | Command::Replay(_) => "warn",
        Command::Run(_) => "info",
        #[cfg(feature = "dev")]
        Command::Dev(_) | Command::EmbeddedApi(_) => "info",
    };
    let _telemetry = tenant_worker::telemetry::init(cli.log_format, default_level);
    let result = match cli.command {
        Command::Run(args) => {
            async {
                let settings = args.worker.settings(&args.nats)?;
                let kube = tenant_worker::cluster::connect(args.kubeconfig.as_deref()).await?;
                tenant_worker::run(settings, kube, shutdown_signal()).await
            }
            .await
        }
        #[cfg(feature = "dev")]
        Command::Dev(args) => commands::dev::run(args, shutdown_signal()).await,
        #[cfg(feature = "dev")]
        Command::EmbeddedApi(args) => commands::dev::embedded_api(args, shutdown_signal()).await,
        Command::Publish(args) => commands::publish::run(&args).await,
        Command::Status(args) => commands::status::run(&args).await,
        Command::Routes(tenant_worker::config::RoutesCommand::Watch(args)) => {
            commands::routes::watch(&args, shutdown_signal()).await
        }
        Command::Routes(tenant_worker::config::RoutesCommand::Rebuild(args)) => {
            commands::routes::rebuild(&args).await
        }
        Command::Render(args) => commands::render::run(&args).await,
        Command::Reconcile(args) => commands::reconcile::run(&args).await,
        Command::Replay(args) => commands::replay::run(&args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The reader has all it wanted (`| head`): nothing went wrong.
        Err(e) if e.is_stdout_closed() => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Not eprintln!, which panics when stderr is closed too.
            let _ = writeln!(std::io::stderr(), "error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
