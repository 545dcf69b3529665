//! The client's address: the socket peer, or, when the peer is a configured trusted reverse
//! proxy, the nearest address in `X-Forwarded-For` that is not itself a trusted proxy. Pure.

use std::net::IpAddr;

/// One address or CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    net: IpAddr,
    prefix: u8,
}

impl Block {
    fn parse(s: &str) -> Result<Block, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr =
            addr.trim().parse().map_err(|_| format!("trusted_proxies: {s:?} is not an address or CIDR block"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("trusted_proxies: {s:?} has a prefix length outside 0..={max}")),
            },
        };
        Ok(Block { net, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.net, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
            _ => ip,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix)) };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The configured trusted proxies.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Block>);

impl TrustedProxies {
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, String> {
        entries
            .iter()
            .filter(|e| !e.trim().is_empty())
            .map(|e| Block::parse(e.trim()))
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|b| b.contains(ip))
    }

    /// The client of a request from `peer` carrying the `X-Forwarded-For` values `forwarded`
    /// (every header line, in order).
    pub fn client_ip<'a>(&self, peer: IpAddr, forwarded: impl IntoIterator<Item = &'a str>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded.into_iter().flat_map(|v| v.split(',')).map(str::trim).collect();
        let mut client = peer;
        // Right to left: each hop was added by the proxy in front of the previous one.
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>() else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let t = proxies(&["10.0.0.0/8"]);
        assert_eq!(t.client_ip(ip("203.0.113.9"), ["1.2.3.4"]), ip("203.0.113.9"));
        assert_eq!(TrustedProxies::default().client_ip(ip("127.0.0.1"), ["1.2.3.4"]), ip("127.0.0.1"));
    }

    #[test]
    fn behind_trusted_proxies_the_nearest_untrusted_hop_is_the_client() {
        let t = proxies(&["10.0.0.0/8", "192.168.1.1"]);
        // A client that forges a first hop does not hide behind it.
        assert_eq!(t.client_ip(ip("10.1.2.3"), ["6.6.6.6, 198.51.100.7, 192.168.1.1"]), ip("198.51.100.7"));
        assert_eq!(t.client_ip(ip("10.1.2.3"), ["198.51.100.7", "10.9.9.9"]), ip("198.51.100.7"));
        // Nothing forwarded, or garbage: the proxy itself.
        assert_eq!(t.client_ip(ip("10.1.2.3"), []), ip("10.1.2.3"));
        assert_eq!(t.client_ip(ip("10.1.2.3"), ["not-an-ip"]), ip("10.1.2.3"));
    }

    #[test]
    fn blocks_parse_and_match_v4_and_v6() {
        let t = proxies(&["127.0.0.1", "::1", "fd00::/8"]);
        assert!(t.trusts(ip("127.0.0.1")) && t.trusts(ip("::1")) && t.trusts(ip("fd12::5")));
        assert!(!t.trusts(ip("127.0.0.2")) && !t.trusts(ip("fe80::1")));
        assert!(proxies(&["0.0.0.0/0"]).trusts(ip("8.8.8.8")));
        assert!(proxies(&["127.0.0.1"]).trusts(ip("::ffff:127.0.0.1")));
        for bad in ["10.0.0.0/33", "nonsense", "::1/200"] {
            assert!(TrustedProxies::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
