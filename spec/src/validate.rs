//! Structural validation of a parsed workspace: everything that can be
//! checked without knowing the site or the account. Reports *all* problems.

use crate::diag::{Collector, Diagnostics, Pos};
use crate::image::ImageRef;
use crate::names::{MAX_NAME, dns_label_problem, is_env_name, shorten};
use crate::workspace::{Container, Workspace};
use std::collections::HashMap;

/// Most containers one workspace may declare, whatever the quota says.
pub const MAX_CONTAINERS: usize = 100;
/// Smallest memory limit dockerd accepts (6 MiB).
pub const MIN_MEMORY: u64 = 6 * 1024 * 1024;
pub const MAX_CPUS: f64 = 256.0;
/// Smallest CPU share: Kubernetes turns anything smaller into a `0m` limit.
pub const MIN_CPUS: f64 = 0.01;
pub const MAX_GPUS: u32 = 16;
/// Most access grants one workspace may hold (each may cost a directory
/// lookup at the push).
pub const MAX_ACCESS: usize = 20;
const FORBIDDEN_MOUNT_ROOTS: &[&str] = &["/proc", "/sys", "/dev"];

pub fn validate(ws: &Workspace) -> Result<(), Diagnostics> {
    let mut out = Collector::default();
    if ws.containers.len() > MAX_CONTAINERS {
        out.push(
            ws.containers[MAX_CONTAINERS].name.pos,
            format!("more than {MAX_CONTAINERS} containers"),
        );
    }
    let mut names: HashMap<&str, Pos> = HashMap::new();
    for c in &ws.containers {
        if let Some(problem) = dns_label_problem(&c.name, MAX_NAME) {
            out.push(c.name.pos, format!("container {problem}"));
        }
        if let Some(first) = names.insert(&c.name, c.name.pos) {
            out.push(
                c.name.pos,
                format!(
                    "container name `{}` is already used at line {}",
                    *c.name, first.line
                ),
            );
        }
        container(c, &mut out);
    }
    if let Some(extra) = ws.containers.iter().flat_map(|c| &c.access).nth(MAX_ACCESS) {
        out.push(
            extra.until.pos,
            format!("more than {MAX_ACCESS} access grants in one workspace"),
        );
    }
    if let Some(runner) = &ws.runner {
        for tag in &runner.tags {
            if tag.is_empty() || tag.len() > 64 || tag.contains(',') || tag.trim() != tag.as_str() {
                out.push(tag.pos, format!("runner tag `{}` must be 1 to 64 characters without commas or surrounding spaces", shorten(tag)));
            }
        }
    }
    if let Some(images) = &ws.images {
        let mut seen: HashMap<String, u32> = HashMap::new();
        for share in &images.share {
            match ImageRef::parse(&share.image) {
                Err(e) => out.push(share.image.pos, e.to_string()),
                Ok(r) => {
                    if let Some(line) = seen.insert(r.to_string(), share.image.pos.line) {
                        out.push(
                            share.image.pos,
                            format!("image `{}` is already shared at line {line}", *share.image),
                        );
                    }
                }
            }
            if share
                .description
                .as_ref()
                .is_some_and(|d| d.chars().count() > 500)
            {
                out.push(share.image.pos, "description is longer than 500 characters");
            }
        }
        let mut names: HashMap<&str, u32> = HashMap::new();
        for b in &images.build {
            build(b, &mut names, &mut out);
        }
    }
    out.finish()
}

/// Builds at most one workspace declares.
const MAX_BUILDS: usize = 10;

fn build<'a>(
    b: &'a crate::workspace::Build,
    names: &mut HashMap<&'a str, u32>,
    out: &mut Collector,
) {
    let component_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(&c))
            && s.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && s.bytes().last().is_some_and(|c| c.is_ascii_alphanumeric())
    };
    if !component_ok(&b.name) {
        out.push(
            b.name.pos,
            format!(
                "image name `{}` must be 1 to 64 lowercase letters, digits, `.`, `_` or `-`, starting and ending with a letter or digit",
                shorten(&b.name)
            ),
        );
    }
    if names.len() >= MAX_BUILDS {
        out.push(
            b.name.pos,
            format!("at most {MAX_BUILDS} images can be built"),
        );
    }
    if let Some(line) = names.insert(b.name.as_str(), b.name.pos.line) {
        out.push(
            b.name.pos,
            format!("image `{}` is already built at line {line}", *b.name),
        );
    }
    let path_ok = |p: &str| {
        !p.starts_with('/')
            && !p.contains('\\')
            && !p.contains('\0')
            && p.len() <= 255
            && p.split('/').all(|c| c != "..")
    };
    if let Some(ctx) = &b.context
        && !path_ok(ctx)
    {
        out.push(
            ctx.pos,
            format!(
                "context `{}` must be a directory inside the repository",
                shorten(ctx)
            ),
        );
    }
    if b.dockerfile.is_empty() || !path_ok(&b.dockerfile) || b.dockerfile.ends_with('/') {
        out.push(
            b.dockerfile.pos,
            format!(
                "dockerfile `{}` must be a file inside the context",
                shorten(&b.dockerfile)
            ),
        );
    }
    for tag in &b.tags {
        let ok = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
            && !tag.starts_with(['.', '-']);
        if !ok {
            out.push(
                tag.pos,
                format!(
                    "tag `{}` must be up to 128 letters, digits, `_`, `.` or `-`",
                    shorten(tag)
                ),
            );
        }
    }
    if b.args.len() > 50 {
        out.push(b.name.pos, "at most 50 build args");
    }
    for (k, v) in &b.args {
        let ok = !k.is_empty()
            && k.len() <= 64
            && k.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
            && !k.as_bytes()[0].is_ascii_digit();
        if !ok || v.len() > 4096 {
            out.push(b.name.pos, format!("build arg `{}` must be a name of letters, digits and `_` with a value under 4 KiB", shorten(k)));
        }
    }
}

fn container(c: &Container, out: &mut Collector) {
    if let Err(e) = ImageRef::parse(&c.image) {
        out.push(c.image.pos, e.to_string());
    }
    if let Some(keep) = &c.keep_until
        && let Err(e) = crate::dates::until(keep)
    {
        out.push(keep.pos, format!("keep_until: {e}"));
    }
    for a in &c.access {
        access(a, out);
    }
    if let Some(cmd) = &c.command
        && cmd.is_empty()
    {
        out.push(
            cmd.pos,
            "command is empty; omit it to use the image's command",
        );
    }
    for (name, value) in &c.env {
        if !is_env_name(name) {
            out.push(
                value.pos,
                format!(
                    "env name `{}` must be letters, digits and `_`, not starting with a digit",
                    shorten(name)
                ),
            );
        }
        if value.len() > 32 * 1024 {
            out.push(value.pos, format!("env `{name}` is longer than 32 KiB"));
        }
    }
    let mut ports: HashMap<i64, u32> = HashMap::new();
    for port in &c.ports {
        if !(1..=65535).contains(&port.value) {
            out.push(
                port.pos,
                format!("port {} is out of range 1–65535", port.value),
            );
        } else if let Some(line) = ports.insert(port.value, port.pos.line) {
            out.push(
                port.pos,
                format!("port {} is already listed at line {line}", port.value),
            );
        }
    }
    if let Some(r) = &c.resources {
        if let Some(cpus) = &r.cpus
            && !(cpus.value >= MIN_CPUS && cpus.value <= MAX_CPUS)
        {
            // Below 0.01 Kubernetes rounds the limit to `0m`, which means
            // no limit at all.
            out.push(
                cpus.pos,
                format!(
                    "cpus must be at least {MIN_CPUS} and at most {MAX_CPUS}, got {}",
                    cpus.value
                ),
            );
        }
        if let Some(mem) = &r.memory {
            match mem.bytes() {
                Err(why) => out.push(mem.pos, why),
                Ok(b) if b < MIN_MEMORY => out.push(
                    mem.pos,
                    format!("memory `{}` is below the minimum of 6Mi", mem.text()),
                ),
                Ok(_) => {}
            }
        }
        if let Some(gpus) = &r.gpus
            && gpus.value > MAX_GPUS
        {
            out.push(gpus.pos, format!("gpus must be at most {MAX_GPUS}"));
        }
        let asks_gpus = r.gpus.as_ref().is_some_and(|g| g.value > 0);
        for (what, field) in [("gpu_model", &r.gpu_model), ("gpu_time", &r.gpu_time)] {
            if let Some(f) = field
                && !asks_gpus
            {
                out.push(f.pos, format!("{what} needs `gpus`"));
            }
        }
        if let Some(m) = &r.gpu_model
            && (m.trim().is_empty() || m.len() > 64)
        {
            out.push(m.pos, "gpu_model is 1 to 64 characters");
        }
        if let Some(t) = &r.gpu_time {
            match crate::site::parse_duration(t) {
                Err(why) => out.push(t.pos, why),
                Ok(d) if d.is_zero() || d.as_secs() > crate::site::LONGEST_GRANT_SECS => out.push(
                    t.pos,
                    format!(
                        "gpu_time is more than nothing and at most {} days",
                        crate::site::LONGEST_GRANT_SECS / 86_400
                    ),
                ),
                Ok(_) => {}
            }
        }
    }
    let mut vol_names: HashMap<&str, u32> = HashMap::new();
    let mut vol_paths: HashMap<&str, u32> = HashMap::new();
    for v in &c.volumes {
        if let Some(problem) = dns_label_problem(&v.name, MAX_NAME) {
            out.push(v.name.pos, format!("volume {problem}"));
        } else if let Some(line) = vol_names.insert(&v.name, v.name.pos.line) {
            out.push(
                v.name.pos,
                format!("volume `{}` is already mounted at line {line}", *v.name),
            );
        }
        if let Some(problem) = mount_path_problem(&v.path) {
            out.push(v.path.pos, problem);
        } else if let Some(line) = vol_paths.insert(&v.path, v.path.pos.line) {
            out.push(
                v.path.pos,
                format!("path `{}` is already a mount point at line {line}", *v.path),
            );
        }
    }
}

fn mount_path_problem(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return Some(format!("volume path `{}` must be absolute", shorten(path)));
    }
    if path.len() > 1024 || path.contains(['\0', ':', ',']) {
        return Some(format!(
            "volume path `{}` has forbidden characters",
            shorten(path)
        ));
    }
    if path.split('/').any(|seg| seg == ".." || seg == ".") {
        return Some(format!(
            "volume path `{}` must not contain `.` or `..`",
            shorten(path)
        ));
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return Some("volume path `/` would hide the whole container filesystem".into());
    }
    if let Some(root) = FORBIDDEN_MOUNT_ROOTS
        .iter()
        .find(|r| trimmed == **r || trimmed.starts_with(&format!("{r}/")))
    {
        return Some(format!(
            "volume path `{}` is under {root}, which belongs to the kernel",
            shorten(path)
        ));
    }
    None
}

fn access(a: &crate::workspace::Access, out: &mut Collector) {
    let pos = a.until.pos;
    match (&a.account, &a.group) {
        (Some(_), Some(g)) => out.push(g.pos, "access: name an `account` or a `group`, not both"),
        (None, None) => out.push(pos, "access: name the `account` or the `group` you let in"),
        (Some(name), None) | (None, Some(name)) => {
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                out.push(
                    name.pos,
                    format!(
                        "access: `{}` must be 1 to 64 letters, digits, `.`, `_` or `-`",
                        shorten(name)
                    ),
                );
            }
        }
    }
    if a.allow.is_empty() {
        out.push(
            pos,
            "access: `allow` needs at least one of logs, terminal, files",
        );
    }
    if let Err(e) = crate::dates::until(&a.until) {
        out.push(pos, format!("access until: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths() {
        assert_eq!(mount_path_problem("/data"), None);
        assert_eq!(mount_path_problem("/home/user/work/"), None);
        for bad in [
            "data",
            "/",
            "//",
            "/proc",
            "/sys/fs",
            "/dev/",
            "/a/../etc",
            "/a:ro",
            "/./x",
        ] {
            assert!(mount_path_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(mount_path_problem("/devices"), None);
    }

    /// `gpu_time` and `gpu_model` at their bounds: 14 days and 64
    /// characters pass, a second or a character more does not.
    #[test]
    fn gpu_time_and_model_at_their_bounds() {
        let ws = |time: &str, model: &str| {
            crate::parse_workspace(
                format!(
                    "version: 1\ncontainers:\n  - {{ name: t, image: x, resources: {{ gpus: 1, gpu_time: \"{time}\", gpu_model: \"{model}\" }} }}\n"
                )
                .as_bytes(),
            )
            .map(drop)
            .map_err(|d| d.to_string())
        };
        let m64 = "m".repeat(64);
        assert_eq!(ws("336h", &m64), Ok(()));
        let too_long = ws("1209601s", &m64).expect_err("over 14 days");
        assert!(
            too_long.contains("gpu_time is more than nothing and at most 14 days"),
            "{too_long}"
        );
        let too_wide = ws("1h", &"m".repeat(65)).expect_err("65 characters");
        assert!(
            too_wide.contains("gpu_model is 1 to 64 characters"),
            "{too_wide}"
        );
    }
}
