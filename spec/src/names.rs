//! Name rules shared by workspaces, sites and the backends: DNS labels for
//! container, volume and account names, joined as `<account>--<name>` (a
//! valid Docker name, Kubernetes object name and host name), env var names.
//!
//! Kubernetes names and DNS labels allow only `[a-z0-9-]`, so there is no
//! spare separator character: `--` is the separator, and neither an account
//! nor a name may contain it. `alice` + `x-data` (`alice--x-data`) and
//! `alice-x` + `data` (`alice-x--data`) then differ by construction.

/// Longest container or volume name a student may write.
pub const MAX_NAME: usize = 30;
/// Longest account name; `<account>--<name>` stays within a 63-char DNS label.
pub const MAX_ACCOUNT: usize = 31;
/// What joins an account and one of its names.
pub const SEPARATOR: &str = "--";

/// `<account>--<name>`: the backend name of an account's object. Never
/// collides across accounts, because neither part may hold the separator.
pub fn qualified(account: &str, name: &str) -> String {
    format!("{account}{SEPARATOR}{name}")
}

/// Why `name` is not a DNS label of at most `max` characters, if it is not.
pub fn dns_label_problem(name: &str, max: usize) -> Option<String> {
    if name.is_empty() {
        return Some("name is empty".into());
    }
    if name.len() > max {
        return Some(format!(
            "name `{}` is {} characters; the limit is {max}",
            shorten(name),
            name.len()
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Some(format!(
            "name `{}` may only hold lowercase letters, digits and `-`",
            shorten(name)
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some(format!(
            "name `{name}` must start and end with a letter or digit"
        ));
    }
    if name.contains(SEPARATOR) {
        return Some(format!(
            "name `{name}` may not contain `{SEPARATOR}`: Berth joins account and name with it"
        ));
    }
    None
}

/// Whether `name` is a portable environment variable name.
pub fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A user-given string fit for a one-line message: control characters
/// escaped, at most 40 characters.
pub fn shorten(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(40)
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_debug().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert_eq!(dns_label_problem("web-1", 30), None);
        for bad in [
            "",
            "-x",
            "x-",
            "Web",
            "../x",
            "a_b",
            "a.b",
            "a--b",
            &"a".repeat(31),
        ] {
            assert!(dns_label_problem(bad, 30).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn qualified_names_never_collide_across_accounts() {
        assert_eq!(qualified("alice", "x-data"), "alice--x-data");
        assert_ne!(qualified("alice", "x-data"), qualified("alice-x", "data"));
        let longest = qualified(&"a".repeat(MAX_ACCOUNT), &"b".repeat(MAX_NAME));
        assert!(longest.len() <= 63, "{}", longest.len());
    }

    #[test]
    fn env_names() {
        assert!(is_env_name("GREETING"));
        assert!(is_env_name("_x1"));
        assert!(!is_env_name("1X"));
        assert!(!is_env_name("A-B"));
        assert!(!is_env_name(""));
    }
}
