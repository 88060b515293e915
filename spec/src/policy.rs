//! Site policy applied to one account's workspace: allowed registries, own
//! and department images, offered backends, and the account's quota (the most
//! generous of its LDAP groups). Pure: the caller supplies the groups.

use crate::diag::{Collector, Diagnostics, Pos};
use crate::image::ImageRef;
use crate::names::{MAX_ACCOUNT, dns_label_problem};
use crate::site::{Quota, Site};
use crate::workspace::{Backend, Container, Workspace};
use std::time::Duration;

/// The effective quota of an account and the group it comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct EffectiveQuota {
    pub group: String,
    pub containers: u32,
    pub cpus: f64,
    pub memory: u64,
    pub gpus: u32,
    /// Bytes the account's images may take in its registry namespace;
    /// `None`: no limit.
    pub registry: Option<u64>,
    /// Bytes the account's Docker volumes may hold; `None`: no limit.
    pub storage: Option<u64>,
}

/// The most generous quota among `groups`, dimension by dimension.
pub fn effective_quota(site: &Site, groups: &[String]) -> Option<EffectiveQuota> {
    let mut found: Vec<(&String, &Quota)> = site
        .policy
        .quotas
        .iter()
        .filter(|(g, _)| groups.contains(g))
        .collect();
    found.sort_by(|a, b| a.0.cmp(b.0));
    let first = found.first()?;
    let mut q = EffectiveQuota {
        group: found
            .iter()
            .map(|(g, _)| g.as_str())
            .collect::<Vec<_>>()
            .join("+"),
        containers: first.1.containers,
        cpus: first.1.cpus,
        memory: first.1.memory.bytes().unwrap_or(0),
        gpus: first.1.gpus,
        registry: first.1.registry_bytes(),
        storage: first.1.storage_bytes(),
    };
    for (_, other) in &found[1..] {
        q.containers = q.containers.max(other.containers);
        q.cpus = q.cpus.max(other.cpus);
        q.memory = q.memory.max(other.memory.bytes().unwrap_or(0));
        q.gpus = q.gpus.max(other.gpus);
        // A group without a registry limit is the most generous of all.
        q.registry = most_generous(q.registry, other.registry_bytes());
        q.storage = most_generous(q.storage, other.storage_bytes());
    }
    Some(q)
}

/// The larger of two limits, where `None` (no limit) is the largest.
fn most_generous(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    }
}

/// CPUs, memory bytes and GPUs a container asks for, with the site's defaults.
pub fn requested(site: &Site, c: &Container) -> (f64, u64, u32) {
    let d = &site.policy.default_resources;
    let r = c.resources.clone().unwrap_or_default();
    (
        r.cpus.map(|c| c.value).unwrap_or(d.cpus),
        r.memory
            .and_then(|m| m.bytes().ok())
            .unwrap_or_else(|| d.memory.bytes().unwrap_or(512 << 20)),
        r.gpus.map(|g| g.value).unwrap_or(0),
    )
}

/// The backend a container runs on.
pub fn backend_of(site: &Site, c: &Container) -> Backend {
    c.backend
        .as_ref()
        .map(|b| b.value)
        .unwrap_or(site.backends.default.value)
}

/// Whether `account` may use `image`: an allowed registry, or the department
/// registry in the account's own namespace. (Shared images are added by the
/// caller that knows the shares.)
pub fn image_allowed(site: &Site, account: &str, image: &ImageRef) -> Result<(), String> {
    image_allowed_with(site, account, image, &Shared::new())
}

/// Repositories their owners share, as [`share_key`]s.
pub type Shared = std::collections::BTreeSet<String>;

/// `registry/path` of an image: the unit of sharing. It is the only unit a
/// registry token can grant (`repository:alice/tools:pull`) and the unit
/// GitLab Runner's `allowed_images` matches, so Berth's use rules, the
/// runner's allow-list and registry tokens agree. Sharing any tag of a
/// repository shares every tag and digest of it; an unshared repository
/// lends none.
pub fn share_key(image: &ImageRef) -> String {
    image.repository()
}

/// `registry/path:tag` (or `registry/path@digest` for a reference without
/// a tag): the key under which a revision pins an image reference to a
/// digest. Two tags of one repository pin separately.
pub fn pin_key(image: &ImageRef) -> String {
    match (&image.tag, &image.digest) {
        (None, Some(digest)) => format!("{}@{digest}", image.repository()),
        (tag, _) => format!(
            "{}:{}",
            image.repository(),
            tag.as_deref().unwrap_or("latest")
        ),
    }
}

/// [`image_allowed`], also accepting images in `shared`.
pub fn image_allowed_with(
    site: &Site,
    account: &str,
    image: &ImageRef,
    shared: &Shared,
) -> Result<(), String> {
    if shared.contains(&share_key(image)) {
        return Ok(());
    }
    if site
        .policy
        .allowed_registries
        .iter()
        .any(|r| r.value == image.registry)
    {
        return Ok(());
    }
    if let Some(reg) = &site.registry
        && reg.host.value == image.registry
    {
        return match image.namespace() {
            Some(ns) if ns == account => Ok(()),
            Some(ns) => Err(format!(
                "image `{image}` belongs to `{ns}` and is not shared with you"
            )),
            None => Err(format!(
                "image `{image}` is outside any account namespace of the department registry"
            )),
        };
    }
    Err(format!(
        "registry `{}` is not allowed; allowed: {}",
        image.registry,
        allowed_list(site)
    ))
}

fn allowed_list(site: &Site) -> String {
    let mut list: Vec<String> = site
        .policy
        .allowed_registries
        .iter()
        .map(|r| r.value.clone())
        .collect();
    if let Some(reg) = &site.registry {
        list.push(format!("{}/<your account>", reg.host.value));
    }
    if list.is_empty() {
        "none".to_string()
    } else {
        list.join(", ")
    }
}

/// Checks `ws` for `account` in `groups` against the site. Reports all problems.
pub fn check(
    ws: &Workspace,
    site: &Site,
    account: &str,
    groups: &[String],
) -> Result<(), Diagnostics> {
    check_with(ws, site, account, groups, &Shared::new())
}

/// [`check`], with the images other accounts share.
pub fn check_with(
    ws: &Workspace,
    site: &Site,
    account: &str,
    groups: &[String],
    shared: &Shared,
) -> Result<(), Diagnostics> {
    let mut out = Collector::default();
    if let Some(problem) = dns_label_problem(account, MAX_ACCOUNT) {
        out.push(Pos::START, format!("account {problem}"));
    }
    for c in &ws.containers {
        if let Ok(image) = ImageRef::parse(&c.image)
            && let Err(why) = image_allowed_with(site, account, &image, shared)
        {
            out.push(c.image.pos, why);
        }
        let backend = backend_of(site, c);
        let offered = match backend {
            Backend::Docker => !site.backends.docker.is_empty(),
            Backend::Kubernetes => site.backends.kubernetes.is_some(),
        };
        if !offered {
            let pos = c.backend.as_ref().map_or(c.name.pos, |b| b.pos);
            out.push(
                pos,
                format!("this site offers no {} backend", backend.as_str()),
            );
        }
    }
    if let Some(images) = &ws.images {
        for share in &images.share {
            let Ok(image) = ImageRef::parse(&share.image) else {
                continue;
            };
            let own = site
                .registry
                .as_ref()
                .is_some_and(|r| r.host.value == image.registry)
                && image.namespace() == Some(account);
            if !own {
                out.push(share.image.pos, format!("only images in your own namespace of the department registry can be shared, not `{image}`"));
            }
        }
    }
    quota(ws, site, account, groups, &mut out);
    homes(ws, site, &mut out);
    out.finish()
}

/// Dates and grants in `ws` against the site at `now` (Unix seconds): a
/// `keep_until` at most `policy.idle.keep_max` away; access grants only
/// where the site has `access`, on Docker containers, to its grantable
/// groups, until at most `access.max` away. A date already past is
/// allowed (it keeps or grants nothing). Whether a granted account exists
/// and is in a grantable group is the directory's to say (the caller's).
pub fn check_dates(ws: &Workspace, site: &Site, now: i64) -> Result<(), Diagnostics> {
    let mut out = Collector::default();
    for c in ws.containers.iter().filter(|c| !c.access.is_empty()) {
        let Some(access) = &site.access else {
            out.push(
                c.access[0].until.pos,
                "access: this site lets no one into students' containers (no `access` in site.yaml)",
            );
            continue;
        };
        if backend_of(site, c) != Backend::Docker {
            out.push(
                c.access[0].until.pos,
                "access: only Docker containers can be shared (logs, terminal and files are theirs)",
            );
        }
        let max = crate::site::secs_or(&access.max, Duration::from_secs(30 * 86_400));
        for a in &c.access {
            if let Some(g) = &a.group
                && !access.grantable_groups.contains(&g.value)
            {
                out.push(
                    g.pos,
                    format!(
                        "access: group `{}` is not one this site lets you grant ({})",
                        crate::names::shorten(g),
                        access.grantable_groups.join(", ")
                    ),
                );
            }
            if let Ok(until) = crate::dates::until(&a.until)
                && until > now.saturating_add(max)
            {
                out.push(
                    a.until.pos,
                    format!(
                        "access until `{}` is further away than this site allows ({} from now, `access.max`)",
                        crate::names::shorten(&a.until),
                        access.max.value
                    ),
                );
            }
        }
    }
    let keep_max =
        crate::site::secs_or(&site.policy.idle.keep_max, Duration::from_secs(7 * 86_400));
    for c in &ws.containers {
        let Some(keep) = &c.keep_until else {
            continue;
        };
        if let Ok(until) = crate::dates::until(keep)
            && until > now.saturating_add(keep_max)
        {
            out.push(
                keep.pos,
                format!(
                    "keep_until `{}` is further away than this site allows ({} from now, `policy.idle.keep_max`)",
                    crate::names::shorten(keep),
                    site.policy.idle.keep_max.value
                ),
            );
        }
    }
    out.finish()
}

/// `home: true` needs a Docker host that mounts home directories; on
/// Kubernetes it is refused (no volume source for them is configured).
fn homes(ws: &Workspace, site: &Site, out: &mut Collector) {
    for c in ws.containers.iter().filter(|c| c.home) {
        if backend_of(site, c) != Backend::Docker {
            out.push(
                c.name.pos,
                "home: true: home directories are mounted on Docker hosts only; this container runs on kubernetes".to_string(),
            );
        } else if site.backends.docker.iter().all(|d| d.homes.is_none()) {
            out.push(
                c.name.pos,
                "home: true: this site mounts no home directories (no Docker host has `homes`)"
                    .to_string(),
            );
        }
    }
}

fn quota(ws: &Workspace, site: &Site, account: &str, groups: &[String], out: &mut Collector) {
    let Some(q) = effective_quota(site, groups) else {
        out.push(
            Pos::START,
            format!(
                "account `{account}` has no quota: none of its groups ({}) is in site policy",
                groups.join(", ")
            ),
        );
        return;
    };
    let (mut cpus, mut mem, mut gpus) = (0.0, 0u64, 0u32);
    let max_host_gpus = site
        .backends
        .docker
        .iter()
        .map(|d| crate::site::lendable(d.gpus, &d.gpu_cards).len() as u32)
        .max()
        .unwrap_or(0);
    let models: std::collections::BTreeSet<String> = site
        .backends
        .docker
        .iter()
        .flat_map(|d| crate::site::lendable(d.gpus, &d.gpu_cards))
        .map(|l| l.model)
        .collect();
    for c in &ws.containers {
        if let Some(m) = c.resources.as_ref().and_then(|r| r.gpu_model.as_ref())
            && !models.contains(&m.value)
        {
            out.push(
                m.pos,
                format!(
                    "no Docker host has GPUs of model `{}` (the site has: {})",
                    m.value,
                    if models.is_empty() {
                        "none".to_string()
                    } else {
                        models
                            .iter()
                            .map(String::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            );
        }
    }
    for (i, c) in ws.containers.iter().enumerate() {
        let (c_cpus, c_mem, c_gpus) = requested(site, c);
        let at = c.name.pos;
        if i as u32 == q.containers {
            out.push(
                at,
                format!(
                    "quota exceeded: {} containers declared, group `{}` allows {}",
                    ws.containers.len(),
                    q.group,
                    q.containers
                ),
            );
        }
        if cpus <= q.cpus && cpus + c_cpus > q.cpus + 1e-9 {
            out.push(
                at,
                format!(
                    "quota exceeded: {} CPUs requested in total, group `{}` allows {}",
                    total_cpus(site, ws),
                    q.group,
                    q.cpus
                ),
            );
        }
        if mem <= q.memory && mem.saturating_add(c_mem) > q.memory {
            out.push(
                at,
                format!(
                    "quota exceeded: {} bytes of memory requested in total, group `{}` allows {}",
                    total_mem(site, ws),
                    q.group,
                    q.memory
                ),
            );
        }
        if gpus <= q.gpus && gpus + c_gpus > q.gpus {
            out.push(
                at,
                format!(
                    "quota exceeded: GPUs requested beyond the {} that group `{}` allows",
                    q.gpus, q.group
                ),
            );
        }
        if c_gpus > max_host_gpus && backend_of(site, c) == Backend::Docker {
            out.push(at, format!("no docker host of this site has {c_gpus} GPUs"));
        }
        cpus += c_cpus;
        mem = mem.saturating_add(c_mem);
        gpus = gpus.saturating_add(c_gpus);
    }
}

fn total_cpus(site: &Site, ws: &Workspace) -> f64 {
    ws.containers.iter().map(|c| requested(site, c).0).sum()
}

fn total_mem(site: &Site, ws: &Workspace) -> u64 {
    ws.containers
        .iter()
        .map(|c| requested(site, c).1)
        .fold(0, u64::saturating_add)
}
