//! The address a request comes from, as login throttling counts it: the
//! peer's, unless the peer is one of the site's `trusted_proxies`; then the
//! nearest address in `X-Forwarded-For` that is not itself a trusted proxy
//! (what a proxy appends is believed, what a client wrote before it is not).

use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

/// The site's trusted proxies, parsed (validation refuses bad entries).
#[derive(Clone, Debug, Default)]
pub struct Proxies(Vec<IpNet>);

impl Proxies {
    pub fn from_site(site: &berth_spec::Site) -> Proxies {
        Proxies(
            site.trusted_proxies
                .iter()
                .filter_map(|p| {
                    let text = p.value.trim();
                    text.parse::<IpNet>()
                        .ok()
                        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
                })
                .collect(),
        )
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusted(peer) {
            return peer;
        }
        let hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
            .map(canonical)
            .collect();
        // From the nearest hop back: the first one no trusted proxy is.
        hops.into_iter()
            .rev()
            .find(|hop| !self.trusted(*hop))
            .unwrap_or(peer)
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`, so one client is one key.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().expect("value"));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let none = Proxies::default();
        let proxy = Proxies(vec!["10.0.0.0/24".parse().expect("net")]);
        let spoofed = headers(&["203.0.113.9"]);
        assert_eq!(
            none.client(ip("198.51.100.1"), &spoofed),
            ip("198.51.100.1")
        );
        assert_eq!(
            proxy.client(ip("198.51.100.1"), &spoofed),
            ip("198.51.100.1")
        );
        assert_eq!(proxy.client(ip("10.0.0.5"), &spoofed), ip("203.0.113.9"));
        // A client's own X-Forwarded-For comes first; the proxy appends the
        // address it saw: the rightmost untrusted hop counts.
        let chain = headers(&["1.2.3.4, 203.0.113.9", "10.0.0.7"]);
        assert_eq!(proxy.client(ip("10.0.0.5"), &chain), ip("203.0.113.9"));
        assert_eq!(proxy.client(ip("10.0.0.5"), &headers(&[])), ip("10.0.0.5"));
        assert_eq!(
            proxy.client(ip("::ffff:10.0.0.5"), &spoofed),
            ip("203.0.113.9")
        );
    }
}
