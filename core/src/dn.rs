//! Distinguished names compared as LDAP compares them (attribute types and
//! the values Berth compares case-insensitively, spaces around separators
//! dropped), and the site's groups recognised by their full DN.

/// A DN as comparable parts: `(attribute type, value)` per RDN, types and
/// values lower-cased (the attributes Berth compares, `cn`, `uid`, `ou`,
/// `dc`, match case-insensitively), spaces around separators dropped.
/// Escaped commas (`\,`) stay inside their value.
pub fn dn_parts(dn: &str) -> Option<Vec<(String, String)>> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    let mut rdns = Vec::new();
    for c in dn.chars() {
        match c {
            _ if escaped => {
                current.push(c);
                escaped = false;
            }
            '\\' => {
                current.push(c);
                escaped = true;
            }
            ',' | ';' => rdns.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    rdns.push(current);
    for rdn in rdns {
        let (k, v) = rdn.split_once('=')?;
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_lowercase());
        if k.is_empty() || v.is_empty() {
            return None;
        }
        parts.push((k, v));
    }
    Some(parts)
}

/// Whether two DNs name the same entry.
pub fn dn_eq(a: &str, b: &str) -> bool {
    matches!((dn_parts(a), dn_parts(b)), (Some(x), Some(y)) if x == y)
}

/// `cn=students,ou=groups,dc=x` under base `ou=groups,dc=x` → `students`;
/// a group anywhere else (`cn=students,ou=clubs,dc=x`) is no group of the
/// site's at all.
pub fn group_name(dn: &str, base: &str) -> Option<String> {
    let parts = dn_parts(dn)?;
    let base = dn_parts(base)?;
    let (first, parent) = parts.split_first()?;
    (parent == base.as_slice()).then(|| {
        // The value as the directory spells it, for messages and quotas.
        dn.split_once('=')
            .and_then(|(_, rest)| rest.split(',').next())
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| first.1.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_compared_by_full_dn() {
        let base = "ou=groups,dc=x";
        assert_eq!(
            group_name("cn=students,ou=groups,dc=x", base),
            Some("students".into())
        );
        assert_eq!(
            group_name("CN=admins, OU=Groups, DC=x", base),
            Some("admins".into())
        );
        // The attack: a look-alike group elsewhere in the tree.
        assert_eq!(group_name("cn=admins,ou=clubs,dc=x", base), None);
        assert_eq!(group_name("cn=admins,ou=groups,dc=x,dc=evil", base), None);
        assert_eq!(group_name("garbage", base), None);
    }

    #[test]
    fn dns_compare_by_parts_not_spelling() {
        assert!(dn_eq(
            "uid=alice,ou=people,dc=berth,dc=test",
            "UID=alice, ou=People,dc=berth, dc=test"
        ));
        assert!(!dn_eq(
            "uid=alice,ou=people,dc=berth,dc=test",
            "uid=alice,ou=guests,dc=berth,dc=test"
        ));
        assert!(!dn_eq(
            "uid=alice\\,ou=people,dc=x",
            "uid=alice,ou=people,dc=x"
        ));
        assert!(!dn_eq("", ""));
    }
}
