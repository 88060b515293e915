//! `serve`'s lending tick: every few seconds it ends grants that are over
//! (their containers stopped first, then the cards given back, the
//! container marked stopped like a culled one so that resyncs leave it
//! until the student starts it again), shortens grants a booking claims,
//! warns holders, and lends freed cards to those waiting (their accounts
//! are reconciled so the containers start with the cards). Idle cards are
//! read from each host's DCGM exporter where the site names one.

pub mod dcgm;

use crate::backends::docker::Purpose;
use crate::clients::{Context, Result};
use crate::engine::reconcile::lending::{cards, rules};
use berth_core::desired::GpuKey;
use berth_core::lending::{self, Change};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What a tick did, for `serve` to follow up.
#[derive(Debug, Default)]
pub struct Ticked {
    /// Accounts whose waiting containers got cards: reconcile them.
    pub started: BTreeSet<String>,
    /// Accounts whose grants ended: refresh their views.
    pub ended: BTreeSet<String>,
}

/// Since when each grant's cards have all been idle (kept in memory: a
/// restart of `serve` starts counting again).
#[derive(Default)]
pub struct Idle {
    since: BTreeMap<GpuKey, i64>,
    /// Made at the first read of an exporter.
    http: Option<reqwest::Client>,
}

impl Idle {
    /// Reads each host's exporter and updates which grants are idle.
    async fn update(&mut self, ctx: &Context, state: &lending::State, now: i64) {
        let site = &ctx.site;
        let below = site.policy.gpus.idle_below;
        if self.http.is_none() {
            crate::base::tls::install_provider();
            match reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .build()
            {
                Ok(c) => self.http = Some(c),
                Err(e) => {
                    tracing::warn!(cause = %e, "an HTTP client for GPU metrics");
                    return;
                }
            }
        }
        let Some(http) = self.http.clone() else {
            return;
        };
        let mut readings = BTreeMap::new();
        for d in &site.backends.docker {
            let Some(url) = &d.gpu_metrics else { continue };
            let text = match http.get(url.as_str()).send().await {
                Ok(r) if r.status().is_success() => match r.bytes().await {
                    Ok(b) if b.len() <= dcgm::MAX_BYTES => String::from_utf8_lossy(&b).into_owned(),
                    _ => continue,
                },
                Ok(r) => {
                    tracing::warn!(endpoint = %d.name.value, status = %r.status(), "GPU metrics");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(endpoint = %d.name.value, cause = %e, "GPU metrics");
                    continue;
                }
            };
            let devices = berth_spec::site::lendable(d.gpus, &d.gpu_cards);
            readings.insert(d.name.value.clone(), (dcgm::parse(&text), devices));
        }
        let mut idle_now = BTreeSet::new();
        for g in &state.grants {
            let Some((read, devices)) = readings.get(&g.endpoint) else {
                continue;
            };
            let all_idle = g.cards.iter().all(|c| {
                let device = devices.iter().find(|l| &l.id == c);
                dcgm::of(
                    read,
                    c,
                    device.and_then(|l| l.parent.as_deref()),
                    device.and_then(|l| l.instance),
                )
                .is_some_and(|u| u < below)
            });
            if all_idle {
                idle_now.insert(g.key.clone());
            }
        }
        self.since.retain(|k, _| idle_now.contains(k));
        for k in idle_now {
            self.since.entry(k).or_insert(now);
        }
    }
}

/// One tick.
pub async fn tick(ctx: &Arc<Context>, idle: &mut Idle) -> Result<Ticked> {
    let now = crate::store::now_ms();
    let mut state = ctx.store.call(move |s| s.lending(now)).await?;
    state.cards = cards(&ctx.site);
    if ctx.site.policy.gpus.idle_after.is_some() {
        idle.update(ctx, &state, now).await;
    }
    let shares = ctx.store.call(move |s| s.gpu_shares(now)).await?;
    let changes = lending::step(now, &state, &shares, &idle.since, &rules(&ctx.site));
    let mut out = Ticked::default();
    // Ends first: a card is given back only once its container stopped.
    for c in &changes {
        let Change::End { key, why } = c else {
            continue;
        };
        let Some(g) = state.grants.iter().find(|g| &g.key == key) else {
            continue;
        };
        if let Some(backend) = ctx.dockerd(&g.endpoint) {
            let name = berth_spec::names::qualified(&key.account, &key.container);
            match backend.owned(&key.account, &name, Purpose::Operate).await {
                Ok(Some(o)) if o.running => {
                    if let Err(e) = backend.stop_owned(&o).await {
                        tracing::warn!(container = %name, cause = %e, "ending a GPU grant");
                        continue;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(container = %name, cause = %e, "ending a GPU grant");
                    continue;
                }
            }
        }
        let (key, why) = (key.clone(), *why);
        let cards = g.cards.join(", ");
        ctx.store
            .call(move |s| {
                s.gpu_end(&key, now)?;
                let reason = format!("GPU grant ended: {why} (cards {cards} given back)");
                let name = berth_spec::names::qualified(&key.account, &key.container);
                s.set_culled(&key.account, &name, &reason)?;
                s.notify(
                    &key.account,
                    berth_core::notify::Category::GpuEnding,
                    &format!(
                        "`{}` was stopped: {reason}; its volumes stay",
                        key.container
                    ),
                )?;
                s.audit(
                    &key.account,
                    "gpu-ended",
                    None,
                    &format!("`{}`: {reason}", key.container),
                )
                .map(drop)
            })
            .await?;
        out.ended.insert(g.key.account.clone());
    }
    let rest: Vec<Change> = changes
        .iter()
        .filter(|c| !matches!(c, Change::End { .. }))
        .cloned()
        .collect();
    if !rest.is_empty() {
        let written = rest.clone();
        ctx.store
            .call(move |s| s.apply_lending(now, &written))
            .await?;
    }
    for c in rest {
        let (account, what) = match &c {
            Change::Start(g) => {
                out.started.insert(g.key.account.clone());
                (
                    g.key.account.clone(),
                    format!(
                        "`{}` lent GPU(s) {} until {}",
                        g.key.container,
                        g.cards.join(", "),
                        berth_core::time::rfc3339(g.end / 1000)
                    ),
                )
            }
            Change::Warn { key, end, why } => (
                key.account.clone(),
                format!(
                    "`{}`: its GPU grant ends at {} ({why})",
                    key.container,
                    berth_core::time::rfc3339(end / 1000)
                ),
            ),
            Change::Shorten { key, end, booking } => (
                key.account.clone(),
                format!(
                    "`{}`: its GPU grant now ends at {}, before booking #{booking}",
                    key.container,
                    berth_core::time::rfc3339(end / 1000)
                ),
            ),
            Change::End { .. } => continue,
        };
        let kind = match &c {
            Change::Start(_) => "gpu-lent",
            Change::Warn { .. } => "gpu-warned",
            _ => "gpu-shortened",
        };
        let category = match kind {
            "gpu-lent" => berth_core::notify::Category::GpuLent,
            _ => berth_core::notify::Category::GpuEnding,
        };
        ctx.store.submit("a lending audit line", move |s| {
            s.audit(&account, kind, None, &what)?;
            s.notify(&account, category, &what)
        });
    }
    Ok(out)
}

/// One card as admins and students see it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CardLine {
    pub endpoint: String,
    pub id: String,
    pub model: String,
    /// `account/container` holding it.
    pub holder: Option<String>,
    /// Unix ms the holder's grant ends.
    pub until: Option<i64>,
    /// The group a booking reserves it for now or next, and when.
    pub booked: Option<String>,
}

/// A container waiting for cards.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WaitLine {
    pub account: String,
    pub container: String,
    pub endpoint: String,
    pub count: u32,
    pub position: usize,
    /// Unix ms it may start (an estimate; none when no card can serve it).
    pub estimate: Option<i64>,
    pub since: i64,
}

/// Every card, who holds it until when, who waits, and the bookings.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Overview {
    pub cards: Vec<CardLine>,
    pub waiting: Vec<WaitLine>,
    pub bookings: Vec<lending::Booking>,
    pub grants: Vec<lending::Grant>,
}

/// The lending state as shown (status, console, `reconciler gpu list`).
pub async fn overview(ctx: &Arc<Context>) -> Result<Overview> {
    let now = crate::store::now_ms();
    let mut state = ctx.store.call(move |s| s.lending(now)).await?;
    state.cards = cards(&ctx.site);
    let shares = ctx.store.call(move |s| s.gpu_shares(now)).await?;
    Ok(describe(now, &state, &shares))
}

/// [`overview`] of a state (pure).
pub fn describe(now: i64, state: &lending::State, shares: &lending::Shares) -> Overview {
    let places = lending::queue::places(now, state, shares);
    let cards = state
        .cards
        .iter()
        .map(|c| {
            let grant = state
                .grants
                .iter()
                .find(|g| g.endpoint == c.endpoint && g.cards.contains(&c.id));
            let booking = state
                .bookings
                .iter()
                .filter(|b| b.endpoint == c.endpoint && b.cards.contains(&c.id) && b.end > now)
                .min_by_key(|b| b.start);
            CardLine {
                endpoint: c.endpoint.clone(),
                id: c.id.clone(),
                model: c.model.clone(),
                holder: grant.map(|g| format!("{}/{}", g.key.account, g.key.container)),
                until: grant.map(|g| g.end),
                booked: booking.map(|b| {
                    format!(
                        "{} from {} to {}",
                        b.group,
                        berth_core::time::rfc3339(b.start / 1000),
                        berth_core::time::rfc3339(b.end / 1000)
                    )
                }),
            }
        })
        .collect();
    let mut waiting: Vec<WaitLine> = state
        .queue
        .iter()
        .map(|r| {
            let place = places.get(&r.key);
            WaitLine {
                account: r.key.account.clone(),
                container: r.key.container.clone(),
                endpoint: r.endpoint.clone(),
                count: r.count,
                position: place.map_or(0, |p| p.position),
                estimate: place.and_then(|p| p.estimate),
                since: r.since,
            }
        })
        .collect();
    waiting.sort_by(|a, b| (&a.endpoint, a.position).cmp(&(&b.endpoint, b.position)));
    Overview {
        cards,
        waiting,
        bookings: state.bookings.clone(),
        grants: state.grants.clone(),
    }
}

/// Gives `account`'s `container` grant `length` (e.g. `2h`) more from
/// now, at most its group's `gpu_time_max`: only while nobody waits on
/// its host and never into another group's booking. Its new end.
pub async fn extend(
    ctx: &Arc<Context>,
    account: &str,
    container: &str,
    length: &str,
) -> std::result::Result<i64, String> {
    let asked = berth_spec::site::parse_duration(length)?;
    let now = crate::store::now_ms();
    let state = ctx
        .store
        .call(move |s| s.lending(now))
        .await
        .map_err(|e| e.to_string())?;
    let key = GpuKey {
        account: account.into(),
        container: container.into(),
    };
    let group = state
        .grants
        .iter()
        .find(|g| g.key == key)
        .map(|g| g.group.clone())
        .ok_or_else(|| format!("`{container}` of `{account}` holds no GPUs"))?;
    let max = crate::engine::reconcile::lending::length_for(
        &ctx.site,
        &group,
        Some(&berth_spec::Located::new(format!(
            "{}s",
            berth_spec::site::LONGEST_GRANT_SECS
        ))),
    );
    let end = lending::extend(
        now,
        &state,
        &key,
        i64::try_from(asked.as_millis()).unwrap_or(i64::MAX),
        max,
    )
    .map_err(|e| e.to_string())?;
    let what = format!(
        "`{container}`: GPU grant extended to {}",
        berth_core::time::rfc3339(end / 1000)
    );
    let account = account.to_string();
    ctx.store
        .call(move |s| {
            s.gpu_set_end(&key, end)?;
            s.audit(&account, "gpu-extended", None, &what).map(drop)
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(end)
}

/// One GPU container's lending in a sentence (status, console, the
/// commit status).
pub fn line(g: &crate::ops::view::GpuView) -> String {
    match g.state.as_str() {
        "lent" => format!(
            "`{}`: GPU(s) {} lent until {}{}",
            g.container,
            g.cards.join(", "),
            g.until.as_deref().unwrap_or("?"),
            if g.ending {
                " — ending soon: the container stops then (its volumes stay)"
            } else {
                ""
            }
        ),
        _ => format!(
            "`{}`: waiting for GPUs, #{} in line{}",
            g.container,
            g.position.unwrap_or(0),
            g.estimate
                .as_deref()
                .map(|e| format!(", may start about {e}"))
                .unwrap_or_else(|| ", no card of its model is free".into())
        ),
    }
}

/// Books cards for `ask.group` (by `by`, an admin or a booker): the
/// booking made, with its id. Other groups' grants on those cards are
/// shortened at the next tick.
pub async fn book(
    ctx: &Arc<Context>,
    ask: lending::booking::Ask,
    by: &str,
) -> std::result::Result<lending::Booking, String> {
    if !ctx.site.policy.quotas.contains_key(&ask.group) {
        return Err(format!("`{}` has no quota in site.yaml", ask.group));
    }
    let now = crate::store::now_ms();
    let mut state = ctx
        .store
        .call(move |s| s.lending(now))
        .await
        .map_err(|e| e.to_string())?;
    state.cards = cards(&ctx.site);
    let booking = lending::booking::book(now, &state, &ask).map_err(|e| e.to_string())?;
    let (stored, by) = (booking.clone(), by.to_string());
    let id = ctx
        .store
        .call(move |s| {
            let id = s.gpu_book(&stored, &by)?;
            s.audit(
                &by,
                "gpu-booked",
                None,
                &format!(
                    "booking #{id}: {} of {} for `{}`, {} to {}",
                    stored.cards.join(", "),
                    stored.endpoint,
                    stored.group,
                    berth_core::time::rfc3339(stored.start / 1000),
                    berth_core::time::rfc3339(stored.end / 1000)
                ),
            )?;
            Ok::<_, crate::store::StoreError>(id)
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(lending::Booking { id, ..booking })
}
