//! The people a revision names, checked against the directory (and
//! GitLab): the pusher, who must be the account's own bound user or an
//! admin, and the accounts `access` grants, who must exist and be in a
//! group the site lets students grant.

use crate::clients::{Context, Result};
use crate::inputs::identity::{self, Account};
use berth_spec::Workspace;
use berth_webhook::SyncRequest;

/// Why the accounts `ws` grants access to may not have it (unknown,
/// disabled, in no grantable group), if any may not: one directory
/// lookup per named account (at most `MAX_ACCESS` of them).
pub(super) async fn grantee_problems(
    ctx: &Context,
    owner: &str,
    ws: &Workspace,
) -> Result<Option<String>> {
    let mut problems = Vec::new();
    let named: std::collections::BTreeSet<&str> = ws
        .containers
        .iter()
        .flat_map(|c| &c.access)
        .filter_map(|a| a.account.as_ref().map(|n| n.as_str()))
        .collect();
    for name in named {
        let entry = ctx.directory.lookup(name).await?;
        problems.extend(berth_core::access::grantee_problem(
            &ctx.site,
            owner,
            name,
            entry.as_ref(),
        ));
    }
    Ok((!problems.is_empty()).then(|| format!("workspace.yaml: {}", problems.join("; "))))
}

/// Whether the push's pusher may push to `account`. With a GitLab token the
/// pusher's GitLab user is bound to the directory through its LDAP
/// identity (`extern_uid` = the account's DN, or an admin's); without one,
/// only the username is compared (docs/admin/operations.md says what each proves).
/// Also the addresses GitLab writes on commits made in its web page by a
/// pusher bound as the account itself (a merge there may carry GitLab's
/// no-reply address rather than the directory mail).
pub(super) async fn check_pusher(
    ctx: &Context,
    account: &str,
    target: Option<&Account>,
    push: Option<&SyncRequest>,
) -> Result<(std::result::Result<(), identity::Rejection>, Vec<String>)> {
    let Some(push) = push else {
        return Ok((Ok(()), vec![]));
    };
    let Some(pusher) = push.pusher.as_deref() else {
        return Ok((Ok(()), vec![]));
    };
    let pusher_account = if pusher != account {
        ctx.directory.lookup(pusher).await?
    } else {
        target.cloned()
    };
    match (&ctx.gitlab, push.pusher_id) {
        (Some(gl), Some(id)) => {
            let user = gl.user(id).await?;
            let provider = ctx
                .site
                .gitlab
                .as_ref()
                .map(|g| g.ldap_provider.as_str())
                .unwrap_or_default();
            let bound = identity::pusher_bound(
                &ctx.site,
                account,
                target,
                pusher,
                user.ldap_dn(provider),
                pusher_account.as_ref(),
            );
            // Only the account's own bound user speaks for its commits.
            let own = bound.is_ok()
                && target.is_some_and(|t| {
                    user.ldap_dn(provider)
                        .is_some_and(|dn| identity::dn_eq(dn, &t.dn))
                });
            let url = ctx
                .site
                .gitlab
                .as_ref()
                .and_then(|g| g.url.as_ref())
                .map(|u| u.value.clone())
                .unwrap_or_default();
            let emails = if own {
                user.web_commit_emails(&url)
            } else {
                vec![]
            };
            Ok((bound, emails))
        }
        _ if pusher == account => Ok((Ok(()), vec![])),
        _ => Ok((
            identity::pusher_allowed(&ctx.site, account, pusher, pusher_account.as_ref()),
            vec![],
        )),
    }
}
