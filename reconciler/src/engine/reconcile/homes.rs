//! A student's home directory for `home: true` containers. The host path is
//! built from the site's template and the account's name — never from
//! anything the student writes — and checked before anything mounts it: it
//! exists, it is a directory, no component of it is a symbolic link (the
//! path resolves to itself), and it belongs to the account's `uidNumber`.
//! The check runs on Berth's machine, where the site mounts the same home
//! tree at the same path (as NFS homes are); the mount itself is made by
//! the Docker host, `nosuid,nodev`, and the container runs as the student.
//! The checks touch that tree, which may hang (a stuck NFS server): they
//! run on a blocking thread with a deadline, before the plan is assembled
//! on the store's thread, which they must never hold.

use berth_core::account::Account;
use berth_core::desired::HomeMount;
use berth_spec::site::DockerEndpoint;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// How long one directory check may take.
const CHECK_DEADLINE: Duration = Duration::from_secs(10);

/// The home mount on each Docker endpoint, or why there is none there;
/// empty when no Docker container of `workspace` asks for its home.
pub async fn resolve_all(
    site: &berth_spec::Site,
    account: &str,
    identity: Option<&Account>,
    workspace: &berth_spec::Workspace,
) -> BTreeMap<String, Result<HomeMount, String>> {
    let wanted = workspace
        .containers
        .iter()
        .any(|c| c.home && berth_spec::policy::backend_of(site, c) == berth_spec::Backend::Docker);
    let mut out = BTreeMap::new();
    if !wanted {
        return out;
    }
    for endpoint in &site.backends.docker {
        let (endpoint_conf, account_name, identity) =
            (endpoint.clone(), account.to_string(), identity.cloned());
        let checked = tokio::time::timeout(
            CHECK_DEADLINE,
            tokio::task::spawn_blocking(move || {
                resolve(&endpoint_conf, &account_name, identity.as_ref())
            }),
        )
        .await;
        let result = match checked {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => Err(format!("the check did not finish: {e}")),
            Err(_) => Err(format!(
                "the check did not answer within {} s (is the home file system reachable?)",
                CHECK_DEADLINE.as_secs()
            )),
        };
        out.insert(endpoint.name.value.clone(), result);
    }
    out
}

/// The home mount of `account` on `endpoint`, or why there is none.
pub fn resolve(
    endpoint: &DockerEndpoint,
    account: &str,
    identity: Option<&Account>,
) -> Result<HomeMount, String> {
    let homes = endpoint.homes.as_ref().ok_or_else(|| {
        format!(
            "Docker host `{}` mounts no home directories (its `homes` is not set)",
            endpoint.name.value
        )
    })?;
    let posix = identity.and_then(|a| a.posix).ok_or_else(|| {
        format!("the directory gives `{account}` no uidNumber and gidNumber (a posixAccount)")
    })?;
    let source = PathBuf::from(homes.source.value.replace("{account}", account));
    let target = homes.target.value.replace("{account}", account);
    check(&source, posix.uid)?;
    Ok(HomeMount {
        source: source.display().to_string(),
        target,
        volume: berth_core::desired::home_volume_name(account),
        uid: posix.uid,
        gid: posix.gid,
    })
}

/// The directory is real, plain, and the account's.
fn check(path: &Path, uid: u32) -> Result<(), String> {
    let shown = path.display();
    if !path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!("{shown} is not an absolute path without `..`"));
    }
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    if meta.file_type().is_symlink() {
        return Err(format!("{shown} is a symbolic link"));
    }
    if !meta.is_dir() {
        return Err(format!("{shown} is not a directory"));
    }
    // Any symbolic link on the way makes the resolved path differ.
    let real = std::fs::canonicalize(path).map_err(|e| format!("{shown}: {e}"))?;
    if real != path {
        return Err(format!(
            "{shown} passes through a symbolic link (it resolves to {})",
            real.display()
        ));
    }
    if meta.uid() != uid {
        return Err(format!(
            "{shown} belongs to uid {}, not to the account's uid {uid}",
            meta.uid()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_directory_of_the_accounts_own_passes() {
        let dir = std::env::temp_dir().join(format!("berth-homes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let home = dir.join("alice");
        std::fs::create_dir_all(&home).expect("home");
        let me = std::fs::metadata(&home).expect("meta").uid();
        assert!(check(&home, me).is_ok());
        let other = check(&home, me + 1).expect_err("someone else's");
        assert!(other.contains("belongs to uid"), "{other}");
        std::os::unix::fs::symlink(&home, dir.join("link")).expect("symlink");
        let linked = check(&dir.join("link"), me).expect_err("a link");
        assert!(linked.contains("symbolic link"), "{linked}");
        std::os::unix::fs::symlink(&dir, dir.join("up")).expect("symlink");
        let through = check(&dir.join("up").join("alice"), me).expect_err("through a link");
        assert!(through.contains("passes through"), "{through}");
        let dotdot = check(&dir.join("alice").join("..").join("alice"), me).expect_err("..");
        assert!(dotdot.contains(".."), "{dotdot}");
        assert!(check(&dir.join("missing"), me).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
