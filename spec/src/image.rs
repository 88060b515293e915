//! Docker image references: the full grammar of `distribution/reference`
//! (`[registry[:port]/]path[:tag][@algo:hex]`) and its normalisation
//! (`nginx` → `docker.io/library/nginx:latest`). Pure string work.

use crate::names::shorten;
use std::fmt;

/// Docker Hub's canonical registry name; `index.docker.io` is an alias of it.
pub const DOCKER_HUB: &str = "docker.io";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A parsed, normalised image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// Registry host with optional port, e.g. `docker.io`, `registry.example:5000`.
    pub registry: String,
    /// Repository path inside the registry, e.g. `library/nginx`, `alice/tools`.
    pub path: String,
    /// Tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// Content digest `algorithm:hex`, when pinned.
    pub digest: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    #[error("image reference is empty")]
    Empty,
    #[error("image reference `{0}` is longer than {MAX_NAME_LEN} characters")]
    TooLong(String),
    #[error("image reference `{0}` must be lowercase in its repository path")]
    Uppercase(String),
    #[error("invalid image reference `{reference}`: {reason}")]
    Invalid { reference: String, reason: String },
}

impl ImageRef {
    /// Parses and normalises a reference.
    pub fn parse(input: &str) -> Result<ImageRef, ImageRefError> {
        let invalid = |reason: &str| ImageRefError::Invalid {
            reference: shorten(input),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(ImageRefError::Empty);
        }
        if input.len() > MAX_NAME_LEN + MAX_TAG_LEN + 80 {
            return Err(ImageRefError::TooLong(shorten(input)));
        }
        if input.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(invalid("it contains spaces or control characters"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => {
                check_digest(digest).map_err(|r| invalid(&r))?;
                (rest, Some(digest.to_string()))
            }
            None => (input, None),
        };
        // A tag follows the last ':' only if no '/' comes after it (else the
        // ':' belonged to a registry port).
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(tag) = tag {
            check_tag(tag).map_err(|r| invalid(&r))?;
        }
        if name.is_empty() {
            return Err(invalid("missing repository name"));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(ImageRefError::TooLong(shorten(input)));
        }
        let (registry, path) = split_registry(name);
        if let Some(registry) = registry {
            check_registry(registry).map_err(|r| invalid(&r))?;
        }
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ImageRefError::Uppercase(shorten(input)));
        }
        for component in path.split('/') {
            check_component(component).map_err(|r| invalid(&r))?;
        }
        let registry = match registry {
            None | Some("index.docker.io") => DOCKER_HUB.to_string(),
            Some(r) => r.to_string(),
        };
        let path = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(ImageRef {
            registry,
            path,
            tag,
            digest,
        })
    }

    /// The first path component: the account namespace in a department registry.
    pub fn namespace(&self) -> Option<&str> {
        self.path.split_once('/').map(|(ns, _)| ns)
    }

    /// `registry/path` without tag or digest.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.registry, self.path)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// The first component is a registry when it looks like a host: has a '.' or
/// a ':' or is `localhost` (the rule Docker itself applies).
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn check_registry(registry: &str) -> Result<(), String> {
    let (host, port) = match registry.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (registry, None),
    };
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("registry port `{port}` is not a number"));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.is_empty() || !host.split('.').all(label_ok) {
        return Err(format!("registry host `{host}` is not a valid host name"));
    }
    Ok(())
}

/// path-component := [a-z0-9]+ (separator [a-z0-9]+)*, separator := [_.] | __ | [-]+
fn check_component(c: &str) -> Result<(), String> {
    if c.is_empty() {
        return Err("empty path component".into());
    }
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(format!(
            "path component `{c}` must start and end with a letter or digit"
        ));
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return Err(format!(
                "path component `{c}` has invalid separator `{sep}`"
            ));
        }
    }
    Ok(())
}

fn check_tag(tag: &str) -> Result<(), String> {
    let bytes = tag.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    if tag.is_empty() || tag.len() > MAX_TAG_LEN {
        return Err(format!("tag must be 1 to {MAX_TAG_LEN} characters"));
    }
    if !word(bytes[0]) || !bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-') {
        return Err(format!(
            "tag `{tag}` may only hold letters, digits, `_`, `.` and `-`, and not start with `.` or `-`"
        ));
    }
    Ok(())
}

fn check_digest(digest: &str) -> Result<(), String> {
    let Some((algo, hex)) = digest.split_once(':') else {
        return Err(format!("digest `{digest}` must be `algorithm:hex`"));
    };
    let hex_ok = |len: usize| {
        hex.len() == len
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    let ok = match algo {
        "sha256" => hex_ok(64),
        "sha512" => hex_ok(128),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "digest `{digest}` is not a sha256 or sha512 digest"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        ImageRef::parse(s)
            .map(|r| r.to_string())
            .unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn normalises_docker_hub_short_names() {
        assert_eq!(norm("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(norm("nginx:1.27"), "docker.io/library/nginx:1.27");
        assert_eq!(norm("bitnami/redis"), "docker.io/bitnami/redis:latest");
        assert_eq!(
            norm("index.docker.io/library/nginx:1"),
            "docker.io/library/nginx:1"
        );
    }

    #[test]
    fn keeps_registries_ports_and_digests() {
        assert_eq!(
            norm("registry.example:5000/alice/tools:1.0"),
            "registry.example:5000/alice/tools:1.0"
        );
        assert_eq!(norm("localhost/x"), "localhost/x:latest");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            norm(&format!("nginx@{d}")),
            format!("docker.io/library/nginx@{d}")
        );
        assert_eq!(
            norm(&format!("nginx:1@{d}")),
            format!("docker.io/library/nginx:1@{d}")
        );
        let r = ImageRef::parse("registry.example/alice/tools:1").unwrap();
        assert_eq!(r.namespace(), Some("alice"));
        assert_eq!(r.repository(), "registry.example/alice/tools");
    }

    #[test]
    fn rejects_malformed_references() {
        for bad in [
            "",
            "Nginx",
            "nginx:",
            "nginx:-x",
            "a//b",
            "-a",
            "a-",
            "a..b",
            "a:b:c",
            "nginx@sha256:abc",
            "nginx@md5:00",
            "reg.example:port/x",
            "a___b",
            "x:tag with space",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} must be rejected");
        }
        assert!(ImageRef::parse(&"a".repeat(300)).is_err());
    }

    #[test]
    fn accepts_separators_of_the_grammar() {
        for ok in [
            "a.b",
            "a_b",
            "a__b",
            "a---b",
            "ns/a-b.c_d",
            "my-registry.io/x/y/z:v1.2-rc_3",
        ] {
            assert!(ImageRef::parse(ok).is_ok(), "{ok:?} must be accepted");
        }
    }
}
