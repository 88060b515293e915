//! The image catalogue: every image of the department registry (owner,
//! name, tag, digest, size) joined with what the store knows (who shares it
//! with which description, who runs it). Registry API calls: one
//! `_catalog` listing, one `tags/list` per repository, one manifest GET per
//! tag, 16 at a time.

use crate::clients::{Context, ReconcileError};
use futures::StreamExt;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CatalogEntry {
    /// The namespace: the owning account.
    pub owner: String,
    /// Path below the namespace.
    pub name: String,
    pub tag: String,
    /// `registry/owner/name:tag`.
    pub reference: String,
    pub digest: String,
    pub size: u64,
    pub shared: bool,
    pub description: Option<String>,
    /// Accounts whose accepted revision runs this image.
    pub users: Vec<String>,
}

/// One shared repository as anyone may see it: what it is and how much it
/// is used, never who owns the unshared rest or who runs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SharedRepository {
    /// `registry/owner/name`: the unit of sharing.
    pub repository: String,
    pub tags: Vec<String>,
    pub description: Option<String>,
    /// How many accounts' accepted revisions run one of its images.
    pub accounts_using: usize,
}

/// The public catalogue: shared repositories only.
pub fn shared_view(entries: &[CatalogEntry]) -> Vec<SharedRepository> {
    let mut by_repo: BTreeMap<String, (SharedRepository, std::collections::BTreeSet<&str>)> =
        BTreeMap::new();
    for e in entries.iter().filter(|e| e.shared) {
        let repository = match e.reference.rsplit_once(':') {
            Some((repo, _)) => repo.to_string(),
            None => e.reference.clone(),
        };
        let (view, users) = by_repo.entry(repository.clone()).or_insert_with(|| {
            (
                SharedRepository {
                    repository,
                    tags: vec![],
                    description: None,
                    accounts_using: 0,
                },
                Default::default(),
            )
        });
        view.tags.push(e.tag.clone());
        if view.description.is_none() {
            view.description = e.description.clone();
        }
        users.extend(e.users.iter().map(String::as_str));
    }
    by_repo
        .into_values()
        .map(|(mut view, users)| {
            view.accounts_using = users.len();
            view
        })
        .collect()
}

/// Reads the registry and the store. `None` when the site has no registry.
pub async fn catalogue(ctx: &Context) -> Result<Option<Vec<CatalogEntry>>, ReconcileError> {
    let Some(registry) = &ctx.registry else {
        return Ok(None);
    };
    let host = registry.host().to_string();
    let (shares, pins) = ctx
        .store
        .call(|s| -> Result<_, crate::store::StoreError> { Ok((s.shares()?, s.all_pins()?)) })
        .await?;
    let shares: BTreeMap<String, (String, String)> = shares
        .into_iter()
        .map(|s| (s.repository, (s.owner, s.description)))
        .collect();
    let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pin in pins {
        users.entry(pin.image).or_default().push(pin.account);
    }
    let repositories = registry.catalog().await?;
    let tagged: Vec<(String, Vec<String>)> = futures::stream::iter(repositories)
        .map(|repo| async move { registry.tags(&repo).await.map(|tags| (repo, tags)) })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let pairs: Vec<(String, String)> = tagged
        .into_iter()
        .flat_map(|(repo, tags)| tags.into_iter().map(move |t| (repo.clone(), t)))
        .collect();
    let manifests: Vec<_> =
        futures::stream::iter(pairs)
            .map(|(repo, tag)| async move {
                registry.manifest(&repo, &tag).await.map(|m| (repo, tag, m))
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
    let mut out = Vec::new();
    for item in manifests {
        let (repo, tag, manifest) = item?;
        let Some(manifest) = manifest else { continue };
        let (owner, name) = repo
            .split_once('/')
            .map(|(o, n)| (o.to_string(), n.to_string()))
            .unwrap_or((String::new(), repo.clone()));
        let key = format!("{host}/{repo}:{tag}");
        let share = shares.get(&format!("{host}/{repo}"));
        out.push(CatalogEntry {
            owner,
            name,
            tag,
            reference: key.clone(),
            digest: manifest.digest.clone(),
            size: manifest.size,
            shared: share.is_some(),
            description: share.map(|(_, d)| d.clone()).filter(|d| !d.is_empty()),
            // Pinned by tag or, for references written with a digest, by it.
            users: {
                let by_digest = format!("{host}/{repo}@{}", manifest.digest);
                let mut u: Vec<String> = users
                    .get(&key)
                    .into_iter()
                    .chain(users.get(&by_digest))
                    .flatten()
                    .cloned()
                    .collect();
                u.sort();
                u.dedup();
                u
            },
        });
    }
    out.sort_by(|a, b| a.reference.cmp(&b.reference));
    tracing::info!(
        images = out.len(),
        registry_requests = registry.requests(),
        "catalogue read"
    );
    Ok(Some(out))
}
