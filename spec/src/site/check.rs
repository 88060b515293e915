//! Validation of `site.yaml` beyond what its types say: durations, URLs and
//! their transport (plain LDAP or plain TCP to a dockerd only with an
//! explicit `insecure: true`), environment variable names, endpoints and
//! quotas. Reports all problems.

use super::{Backends, Repositories, Site};
use crate::diag::{Collector, Diagnostics, Pos};
use crate::located::Located;
use crate::names::is_env_name;
use crate::workspace::Backend;
use std::time::Duration;

/// Validates what types alone cannot say. Reports all problems.
pub fn validate(site: &Site) -> Result<(), Diagnostics> {
    let mut out = Collector::default();
    duration(&site.resync_interval, &mut out);
    duration(&site.ldap.cache_ttl, &mut out);
    duration(&site.policy.image_gc_after, &mut out);
    duration(&site.policy.builds.timeout, &mut out);
    duration(&site.policy.idle.sample_every, &mut out);
    duration(&site.policy.idle.warn_before, &mut out);
    duration(&site.policy.idle.keep_max, &mut out);
    duration(&site.policy.storage.measure_every, &mut out);
    duration(&site.policy.usage.sample_every, &mut out);
    if let Err(why) = site.policy.idle.network_below.bytes() {
        out.push(site.policy.idle.network_below.pos, why.to_string());
    }
    for q in site.policy.quotas.values() {
        for d in [&q.idle_stop_after, &q.gpu_idle_stop_after]
            .into_iter()
            .flatten()
        {
            duration(d, &mut out);
        }
        for d in [&q.gpu_time, &q.gpu_time_max].into_iter().flatten() {
            grant_length(d, &mut out);
        }
        for h in [q.cpu_hours, q.gpu_hours].into_iter().flatten() {
            if !(h >= 0.0 && h.is_finite()) {
                out.push(q.memory.pos, "cpu_hours and gpu_hours must be numbers ≥ 0");
            }
        }
        for r in [&q.registry, &q.storage].into_iter().flatten() {
            if let Err(why) = r.bytes() {
                out.push(r.pos, why.to_string());
            }
        }
    }
    if let Some(n) = &site.notify {
        duration(&n.every, &mut out);
        if !n.smtp.from.contains('@') {
            out.push(n.smtp.from.pos, "notify.smtp.from must be a mail address");
        }
        if let Some(chat) = &n.chat {
            duration(&chat.every, &mut out);
            for c in &chat.categories {
                if !super::notify::CHAT_CATEGORIES.contains(&c.as_str()) {
                    out.push(
                        c.pos,
                        format!(
                            "notify.chat.categories: `{}` is none of {}",
                            crate::names::shorten(c),
                            super::notify::CHAT_CATEGORIES.join(", ")
                        ),
                    );
                }
            }
        }
    }
    if let Some(a) = &site.access {
        duration(&a.max, &mut out);
    }
    if let Some(d) = &site.dormancy {
        for x in [&d.dormant_after, &d.archive_after, &d.check_every] {
            duration(x, &mut out);
        }
        if let (Ok(told), Ok(archived)) = (
            parse_duration(&d.dormant_after),
            parse_duration(&d.archive_after),
        ) && archived <= told
        {
            out.push(
                d.archive_after.pos,
                "dormancy.archive_after must be longer than dormant_after: students are told first",
            );
        }
        if let Err(why) = d.keep_free.bytes() {
            out.push(d.keep_free.pos, format!("dormancy.keep_free: {why}"));
        }
        if !d.archive_dir.starts_with('/') {
            out.push(
                d.archive_dir.pos,
                "dormancy.archive_dir must be an absolute path",
            );
        }
    }
    let gpus = &site.policy.gpus;
    duration(&gpus.warn_before, &mut out);
    duration(&gpus.shortest, &mut out);
    if let Some(d) = &gpus.idle_after {
        duration(d, &mut out);
    }
    if !(0.0..=100.0).contains(&gpus.idle_below) {
        out.push(
            gpus.warn_before.pos,
            "policy.gpus.idle_below is a percentage, 0 to 100",
        );
    }
    for d in &site.backends.docker {
        for (pos, why) in super::gpus::card_problems(d.gpus, &d.gpu_cards) {
            out.push(pos, why);
        }
        if let Some(m) = &d.gpu_metrics
            && !(m.starts_with("http://") || m.starts_with("https://"))
        {
            out.push(m.pos, "gpu_metrics must be an http:// or https:// URL");
        }
    }
    if let Err(why) = site.policy.builds.max_context.bytes() {
        out.push(site.policy.builds.max_context.pos, why.to_string());
    }
    for d in &site.backends.docker {
        let Some(h) = &d.homes else { continue };
        for (what, t) in [("source", &h.source), ("target", &h.target)] {
            let v = &t.value;
            let parts: Vec<&str> = v.split('/').collect();
            if !v.starts_with('/') || parts.contains(&"..") || parts.contains(&".") {
                out.push(
                    t.pos,
                    format!("homes.{what}: `{v}` must be an absolute path without `.` or `..`"),
                );
            } else if what == "source" && !parts.contains(&"{account}") {
                out.push(t.pos, format!("homes.source: `{v}` must have `{{account}}` as a whole path component, so each account gets its own directory"));
            }
        }
    }
    for proxy in &site.trusted_proxies {
        let text = proxy.value.trim();
        if text.parse::<ipnet::IpNet>().is_err() && text.parse::<std::net::IpAddr>().is_err() {
            out.push(
                proxy.pos,
                format!("trusted_proxies: `{text}` is neither an address nor a CIDR range"),
            );
        }
    }
    if !site.console.share_host_with_apps {
        for (pos, why) in apps_on_console_host(site) {
            out.push(pos, why);
        }
    }
    let logs = &site.policy.container_logs;
    match logs.max_size.bytes() {
        Err(why) => out.push(logs.max_size.pos, why.to_string()),
        Ok(0) => out.push(
            logs.max_size.pos,
            "container_logs.max_size must be more than zero".to_string(),
        ),
        Ok(_) => {}
    }
    if logs.max_files == 0 {
        out.push(
            logs.max_size.pos,
            "container_logs.max_files must be at least 1".to_string(),
        );
    }
    let url = &site.ldap.url;
    if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) {
        out.push(
            url.pos,
            format!(
                "LDAP url `{}` must start with ldap:// or ldaps://",
                url.value
            ),
        );
    }
    if url.starts_with("ldap://") && !site.ldap.starttls && !site.ldap.insecure {
        out.push(
            url.pos,
            format!(
                "LDAP url `{}` sends passwords in clear: set `starttls: true`, use ldaps://, or say `insecure: true` for a directory on loopback",
                url.value
            ),
        );
    }
    if !site.ldap.user_filter.contains("{account}") {
        out.push(
            site.ldap.user_filter.pos,
            "user_filter must contain `{account}`",
        );
    }
    let mut envs: Vec<&Located<String>> = site
        .ldap
        .bind_password_env
        .iter()
        .chain(site.admin_token_env.iter())
        .collect();
    if let Some(gl) = &site.gitlab {
        envs.extend(gl.token_env.iter().chain(gl.webhook_secret_env.iter()));
        if let Some(url) = &gl.url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            out.push(url.pos, "GitLab url must start with https:// or http://");
        }
    }
    if let Some(reg) = &site.registry {
        envs.extend(reg.username_env.iter().chain(reg.password_env.iter()));
        if crate::image::ImageRef::parse(&format!("{}/x/y", reg.host.value)).is_err() {
            out.push(
                reg.host.pos,
                format!("registry host `{}` is not a host[:port]", reg.host.value),
            );
        }
        if let Some(token) = &reg.token {
            duration(&token.ttl, &mut out);
            duration(&token.personal_ttl, &mut out);
            duration(&token.personal_max_ttl, &mut out);
            if site.public_url.is_none() {
                out.push(
                    reg.host.pos,
                    "registry.token needs `public_url`: the registry sends clients to `<public_url>/registry/token`",
                );
            }
        }
    }
    if !matches!(site.login.bind_cache.as_str(), "0" | "0s") {
        duration(&site.login.bind_cache, &mut out);
    }
    if site.login.account_failures == 0 || site.login.address_failures == 0 {
        out.push(
            site.login.bind_cache.pos,
            "login failure limits must be at least 1",
        );
    }
    let console = &site.console;
    for d in [&console.idle, &console.lifetime, &console.terminal_idle] {
        duration(d, &mut out);
    }
    if let Err(why) = console.max_upload.bytes() {
        out.push(console.max_upload.pos, why.to_string());
    }
    if console.shell.is_empty() || console.shell.iter().any(|a| a.is_empty()) {
        out.push(console.idle.pos, "console.shell must name a program");
    }
    if let Some(url) = &site.public_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        out.push(url.pos, "public_url must start with https:// or http://");
    }
    for env in envs {
        if !is_env_name(env) {
            out.push(
                env.pos,
                format!("`{}` is not an environment variable name", env.value),
            );
        }
    }
    if let Repositories::Gitlab {
        poll: Some(every), ..
    } = &site.repositories
    {
        duration(every, &mut out);
        if site
            .gitlab
            .as_ref()
            .and_then(|g| g.token_env.as_ref())
            .is_none()
        {
            out.push(
                every.pos,
                "polling needs `gitlab.token_env`: who pushed is asked of GitLab's API",
            );
        }
    }
    if let Repositories::Gitlab { .. } = &site.repositories
        && site.gitlab.as_ref().and_then(|g| g.url.as_ref()).is_none()
    {
        out.push(
            Pos::START,
            "repositories from GitLab need `gitlab.url` and `gitlab.token_env`",
        );
    }
    backends(&site.backends, &mut out);
    for (group, q) in &site.policy.quotas {
        match q.memory.bytes() {
            Err(why) => out.push(q.memory.pos, why),
            Ok(_) if !(q.cpus >= 0.0 && q.cpus.is_finite()) => {
                out.push(
                    q.memory.pos,
                    format!("quota of `{group}`: cpus must be a number ≥ 0"),
                );
            }
            Ok(_) => {}
        }
    }
    if let Err(why) = site.policy.default_resources.memory.bytes() {
        out.push(site.policy.default_resources.memory.pos, why);
    }
    for reg in &site.policy.allowed_registries {
        if reg.is_empty() || reg.contains('/') {
            out.push(
                reg.pos,
                format!("allowed registry `{}` must be a host[:port]", reg.value),
            );
        }
    }
    if site.ldap.allowed_groups.is_empty() {
        out.push(
            Pos::START,
            "ldap.allowed_groups is empty: nobody could use Berth",
        );
    }
    out.finish()
}

fn backends(b: &Backends, out: &mut Collector) {
    match b.default.value {
        Backend::Docker if b.docker.is_empty() => {
            out.push(
                b.default.pos,
                "default backend is docker but no docker endpoint is listed",
            );
        }
        Backend::Kubernetes if b.kubernetes.is_none() => {
            out.push(
                b.default.pos,
                "default backend is kubernetes but no cluster is configured",
            );
        }
        _ => {}
    }
    let mut names = std::collections::HashSet::new();
    for d in &b.docker {
        if !names.insert(d.name.as_str()) {
            out.push(
                d.name.pos,
                format!("docker endpoint `{}` is listed twice", d.name.value),
            );
        }
        let e = &d.endpoint;
        if !(e.starts_with("unix://") || e.starts_with("tcp://") || e.as_str() == "env") {
            out.push(
                e.pos,
                format!(
                    "docker endpoint `{}` must be unix://, tcp:// or `env`",
                    e.value
                ),
            );
        }
        if e.starts_with("tcp://") && d.tls.is_none() && !d.insecure {
            out.push(
                e.pos,
                format!(
                    "docker endpoint `{}` is plain TCP, i.e. root on that host for anyone who reaches the port: give `tls: {{ ca, cert, key }}`, or `insecure: true` for a port only this machine reaches",
                    e.value
                ),
            );
        }
        if d.tls.is_some() && !e.starts_with("tcp://") {
            out.push(e.pos, "`tls` applies to tcp:// endpoints only");
        }
        if d.bind_address.parse::<std::net::IpAddr>().is_err() {
            out.push(
                d.bind_address.pos,
                format!(
                    "bind_address `{}` is not an IP address",
                    d.bind_address.value
                ),
            );
        }
        let r = d.host_ports.value;
        if r.first == 0 || r.first > r.last {
            out.push(
                d.host_ports.pos,
                format!("host_ports {}–{} is not a range of ports", r.first, r.last),
            );
        }
    }
    if let Some(k) = &b.kubernetes {
        duration(&k.token_lifetime, out);
        if crate::names::dns_label_problem(k.namespace_prefix.trim_end_matches('-'), 20).is_some() {
            out.push(
                k.namespace_prefix.pos,
                "namespace_prefix must be a short DNS label prefix like `berth-`",
            );
        }
    }
}

/// A grant's length: a duration within [`super::LONGEST_GRANT_SECS`].
fn grant_length(text: &Located<String>, out: &mut Collector) {
    match parse_duration(text) {
        Err(why) => out.push(text.pos, why),
        Ok(d) if d.is_zero() || d.as_secs() > super::LONGEST_GRANT_SECS => out.push(
            text.pos,
            format!(
                "a GPU grant lasts more than nothing and at most {} days",
                super::LONGEST_GRANT_SECS / 86_400
            ),
        ),
        Ok(_) => {}
    }
}

fn duration(text: &Located<String>, out: &mut Collector) {
    if let Err(why) = parse_duration(text) {
        out.push(text.pos, why);
    }
}

/// Docker endpoints whose students' ports the console would link on its own
/// host name (`console.host`): by `public_host`, by `bind_address`, or,
/// with neither, on whatever host the console page was asked on.
pub fn apps_on_console_host(site: &Site) -> Vec<(Pos, String)> {
    let Some(console) = &site.console.host else {
        return Vec::new();
    };
    let same = |h: &str| h.eq_ignore_ascii_case(console.value.trim());
    let mut out = Vec::new();
    for ep in &site.backends.docker {
        let bind = ep.bind_address.value.as_str();
        let wildcard = matches!(bind, "0.0.0.0" | "::" | "");
        let shown = match &ep.public_host {
            Some(h) => Some(h.as_str()),
            None if wildcard => None,
            None => Some(bind),
        };
        let on_console = shown.is_none_or(same);
        if on_console {
            out.push((
                ep.name.pos,
                format!(
                    "docker endpoint `{}`: students' ports would be served on the console's host `{}`, where a classmate's app receives the session cookie; set its `public_host` to another host name (or `console.share_host_with_apps: true` for a single-user trial)",
                    ep.name.value, console.value
                ),
            ));
        }
    }
    out
}

/// What a site allows that it should not, said when it is loaded.
pub fn warnings(site: &Site) -> Vec<String> {
    let mut out = Vec::new();
    if site.console.share_host_with_apps && !apps_on_console_host(site).is_empty() {
        out.push(
            "console.share_host_with_apps: students' ports are served on the console's host name; a student who opens a classmate's app hands them their session".into(),
        );
    }
    if let Some(gl) = &site.gitlab
        && gl.webhook_secret_env.is_none()
        && site.poll_interval().is_none()
    {
        out.push(
            "gitlab.webhook_secret_env is not set and repositories.gitlab.poll is off: no push is ever noticed, so nothing new is applied".into(),
        );
    }
    out
}

/// A duration from site.yaml, which validation has already accepted;
/// `default` stands in for one it has not (a site built in code).
pub fn duration_or(text: &str, default: Duration) -> Duration {
    parse_duration(text).unwrap_or(default)
}

/// [`duration_or`] in whole milliseconds, as the core rules count time.
pub fn millis_or(text: &str, default: Duration) -> i64 {
    i64::try_from(duration_or(text, default).as_millis()).unwrap_or(i64::MAX)
}

/// [`duration_or`] in whole seconds.
pub fn secs_or(text: &str, default: Duration) -> i64 {
    i64::try_from(duration_or(text, default).as_secs()).unwrap_or(i64::MAX)
}

/// `90s`, `5m`, `1h`, `1d`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("duration `{text}` must look like `30s`, `5m`, `1h` or `1d`"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => {
            return Err(format!(
                "duration `{text}` must look like `30s`, `5m`, `1h` or `1d`"
            ));
        }
    };
    if secs == 0 {
        return Err(format!("duration `{text}` must be more than zero"));
    }
    Ok(Duration::from_secs(secs))
}
