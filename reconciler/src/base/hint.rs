//! What an admin reads when a service does not answer: the error and its
//! innermost cause. HTTP and Docker client errors put the useful part
//! ("Connection refused", "certificate expired") several sources deep,
//! behind "error sending request for url (…)".

/// `error` and, when it says something more, its innermost cause.
pub fn cause(error: &(dyn std::error::Error + 'static)) -> String {
    let top = error.to_string();
    let mut innermost = None;
    let mut next = error.source();
    while let Some(e) = next {
        innermost = Some(e);
        next = e.source();
    }
    let Some(root) = innermost.map(|e| e.to_string()) else {
        return top;
    };
    if top.contains(&root) {
        top
    } else {
        format!("{top}: {root}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("error sending request")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_innermost_cause_is_appended_once() {
        let refused =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        assert_eq!(
            cause(&Outer(refused)),
            "error sending request: Connection refused"
        );
        let alone = std::io::Error::other("plain");
        assert_eq!(cause(&alone), "plain");
    }
}
