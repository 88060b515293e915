//! `reconciler serve`: the production mode. An HTTP server (webhook,
//! health, metrics), a per-account coalescing queue drained by a bounded
//! pool of workers, a periodic resync of every account with jitter, retries
//! with backoff that never delete anything, commit statuses on GitLab, and
//! graceful shutdown: stop taking work, finish in-flight reconciles, exit.

mod api;
mod background;
mod dormancy;
mod lending;
mod mail;
mod previews;
mod registry_token;
mod retry;
mod work;

use background::{
    culling_loop, images_loop, post_statuses, refresh_all_views, refresh_view, resync_loop,
    storage_loop, usage_loop, watch,
};

use crate::clients::Context;
use crate::edges::metrics::Metrics;
use crate::edges::queue::Queue;
use crate::inputs::gitlab::{CommitState, GitLab};
use berth_webhook::{SyncRequest, SyncSink};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("secret variable {0} is not set")]
    MissingSecret(String),
    #[error(transparent)]
    GitLab(#[from] crate::inputs::gitlab::GitLabError),
    #[error("watching {path}: {source}")]
    Watch {
        path: String,
        #[source]
        source: notify::Error,
    },
}

#[derive(Clone, Debug)]
pub struct Options {
    pub listen: SocketAddr,
    /// Accounts reconciled at once.
    pub workers: usize,
    /// React to changes of local bare repositories under this directory.
    pub watch: Option<PathBuf>,
    /// After the shutdown signal, how long in-flight work may take before
    /// it is abandoned (a build, a slow host); the next start resyncs it.
    pub grace: Duration,
}

/// A commit status to post; best effort, in order, off the request path.
#[derive(Debug)]
struct StatusUpdate {
    project: u64,
    sha: String,
    state: CommitState,
    description: String,
}

/// The webhook's sink: queue the account, and tell GitLab it is pending.
struct PushSink {
    queue: Arc<Queue>,
    statuses: Option<mpsc::Sender<StatusUpdate>>,
    previews: Arc<previews::Previews>,
}

impl SyncSink for PushSink {
    fn submit(&self, request: SyncRequest) {
        if request.preview.is_some() {
            self.previews.submit(request);
            return;
        }
        if let (Some(tx), Some(project), Some(sha)) =
            (&self.statuses, request.project_id, &request.revision)
        {
            // A full channel drops the pending status rather than block GitLab.
            let _ = tx.try_send(StatusUpdate {
                project,
                sha: sha.clone(),
                state: CommitState::Pending,
                description: "queued".into(),
            });
        }
        self.queue.submit(request);
    }
}

pub(crate) struct Shared {
    ctx: Arc<Context>,
    queue: Arc<Queue>,
    metrics: Arc<Metrics>,
    statuses: Option<mpsc::Sender<StatusUpdate>>,
    retries: retry::Retries,
    /// The image catalogue as last read, served at `GET /images`: in full
    /// to the admin credential, its shared part to anyone.
    catalogue: Arc<tokio::sync::RwLock<Vec<crate::ops::catalogue::CatalogEntry>>>,
    /// The admin API token (`admin_token_env`); `None` disables the admin
    /// endpoints' full answers.
    admin_token: Option<String>,
    /// Asks for an early catalogue refresh (a push touched images).
    refresh: tokio::sync::Notify,
    /// The read model: each account's view as of its last reconcile.
    views: crate::edges::console::Views,
    /// Accounts whose view changed (the console's live updates).
    updates: tokio::sync::broadcast::Sender<String>,
    /// Why the last reconcile could not write the store, until one can.
    store_fault: std::sync::RwLock<Option<String>>,
    /// The registry token service, when the site has Berth serve it.
    tokens: Option<crate::edges::token::TokenService>,
    /// Logins with the department account (console and registry).
    logins: Arc<crate::edges::login::Logins>,
}

impl Shared {
    /// Whether the store took the last reconcile's writes: `/healthz` and
    /// the `berth_store_writable` gauge both follow this one record.
    fn set_store_fault(&self, fault: Option<String>) {
        self.metrics.set_store_writable(fault.is_none());
        *self.store_fault.write().unwrap_or_else(|p| p.into_inner()) = fault;
    }
}

/// How often `serve` re-reads the registry (the earlier console: 5 min)
/// and collects unused images.
const CATALOGUE_EVERY: Duration = Duration::from_secs(300);
const GC_EVERY: Duration = Duration::from_secs(3600);

/// Runs until `shutdown` resolves, then drains in-flight work and returns.
pub async fn serve(
    ctx: Arc<Context>,
    opts: Options,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let metrics = Arc::new(Metrics::default());
    let queue = Queue::new(metrics.clone());
    let (statuses, status_task) = match &ctx.site.gitlab {
        Some(gl) => match (&gl.url, &gl.token_env) {
            (Some(url), Some(token_env)) => {
                let client = GitLab::from_env(url, token_env)?;
                let (tx, rx) = mpsc::channel(4096);
                (Some(tx), Some(tokio::spawn(post_statuses(client, rx))))
            }
            _ => (None, None),
        },
        None => (None, None),
    };
    let secret = match ctx
        .site
        .gitlab
        .as_ref()
        .and_then(|g| g.webhook_secret_env.as_ref())
    {
        Some(var) => {
            std::env::var(&var.value).map_err(|_| ServeError::MissingSecret(var.value.clone()))?
        }
        // Without a secret no webhook can authenticate: the empty secret
        // is refused by the router (a site that polls instead).
        None => String::new(),
    };
    let admin_token = match &ctx.site.admin_token_env {
        Some(var) => Some(
            std::env::var(&var.value)
                .ok()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| ServeError::MissingSecret(var.value.clone()))?,
        ),
        None => None,
    };
    let preview_queue = Arc::new(previews::Previews::default());
    let sink: Arc<PushSink> = Arc::new(PushSink {
        queue: queue.clone(),
        statuses: statuses.clone(),
        previews: preview_queue.clone(),
    });
    let mut config = berth_webhook::Config::new(secret);
    config.repositories = ctx.site.repositories.clone();
    let app = berth_webhook::router(config, sink.clone(), metrics.clone());
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: opts.listen,
            source,
        })?;
    let _watcher = match &opts.watch {
        Some(dir) => Some(watch(dir.clone(), queue.clone())?),
        None => None,
    };
    // Logged before anything can answer: whoever sees /healthz answer
    // finds this line already written.
    tracing::info!(listen = %opts.listen, workers = opts.workers, "serving");
    let logins = Arc::new(crate::edges::login::Logins::new(&ctx.site));
    let shared = Arc::new(Shared {
        ctx: ctx.clone(),
        queue: queue.clone(),
        metrics,
        statuses,
        retries: retry::Retries::default(),
        catalogue: Arc::new(tokio::sync::RwLock::new(Vec::new())),
        admin_token,
        views: Arc::new(tokio::sync::RwLock::new(BTreeMap::new())),
        updates: tokio::sync::broadcast::channel(1024).0,
        store_fault: std::sync::RwLock::new(None),
        refresh: tokio::sync::Notify::new(),
        tokens: ctx
            .registry_keys
            .clone()
            .map(|keys| crate::edges::token::TokenService::new(&ctx.site, keys, logins.clone())),
        logins: logins.clone(),
    });
    let (refresh_tx, refresh_rx) = mpsc::channel(256);
    let console = Arc::new(crate::edges::console::Console::new(
        ctx.clone(),
        shared.views.clone(),
        shared.catalogue.clone(),
        shared.updates.clone(),
        shared.logins.clone(),
        refresh_tx,
    ));
    let app = app
        .merge(api::routes(shared.clone()))
        .merge(registry_token::routes(shared.clone()))
        .merge(crate::edges::console::routes(console));
    tokio::spawn(background::refresh_requested(shared.clone(), refresh_rx));
    tokio::spawn(refresh_all_views(shared.clone()));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let http = {
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
        })
    };
    let workers: Vec<_> = (0..opts.workers.max(1))
        .map(|_| tokio::spawn(work::worker(shared.clone())))
        .collect();
    let resync = tokio::spawn(resync_loop(shared.clone(), stop_rx.clone()));
    let images = tokio::spawn(images_loop(shared.clone(), stop_rx.clone()));
    let culling = tokio::spawn(culling_loop(shared.clone(), stop_rx.clone()));
    let storage = tokio::spawn(storage_loop(shared.clone(), stop_rx.clone()));
    let usage = tokio::spawn(usage_loop(shared.clone(), stop_rx.clone()));
    let lending = tokio::spawn(lending::lending_loop(shared.clone(), stop_rx.clone()));
    let mail = tokio::spawn(mail::mail_loop(shared.clone(), stop_rx.clone()));
    let dormancy = tokio::spawn(dormancy::dormancy_loop(shared.clone(), stop_rx.clone()));
    let preview_worker = tokio::spawn(previews::worker(
        ctx.clone(),
        preview_queue,
        stop_rx.clone(),
    ));
    let poller = ctx.site.poll_interval().map(|every| {
        tokio::spawn(background::poll_loop(
            shared.clone(),
            sink.clone(),
            every,
            stop_rx.clone(),
        ))
    });

    shutdown.await;
    tracing::info!("shutting down: finishing in-flight reconciles");
    let _ = stop_tx.send(true);
    queue.close();
    let grace = tokio::time::Instant::now() + opts.grace;
    let in_flight = async {
        for w in workers {
            let _ = w.await;
        }
        let _ = resync.await;
        let _ = images.await;
        let _ = culling.await;
        let _ = storage.await;
        let _ = usage.await;
        let _ = lending.await;
        let _ = mail.await;
        let _ = dormancy.await;
        let _ = preview_worker.await;
        if let Some(p) = poller {
            let _ = p.await;
        }
        let _ = http.await;
    };
    if tokio::time::timeout_at(grace, in_flight).await.is_err() {
        // A student's build or a slow host must not keep the service from
        // stopping: what was cut short is converged again at the next start.
        tracing::warn!(
            grace_secs = opts.grace.as_secs(),
            "in-flight work did not finish within the grace period; abandoning it"
        );
        return Ok(());
    }
    drop(shared);
    if let Some(task) = status_task {
        // Let queued statuses go out, but never hang shutdown on GitLab.
        let _ = tokio::time::timeout_at(grace, task).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
