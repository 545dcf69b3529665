//! What a request looked like before a trusted reverse proxy: the client's address
//! (`X-Forwarded-For`) and the scheme, host and port the client used (`X-Forwarded-Proto`,
//! `X-Forwarded-Host`). The headers are believed only when the socket peer is one of the
//! configured `trusted_proxies`; from anyone else they are ignored, so a client cannot
//! choose the address written into the audit trail or the host of the links it is handed.

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// An address or a CIDR block (`10.0.0.0/8`, `::1`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn parse(text: &str) -> Result<IpNet, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| format!("{text:?} is not an IP address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("{text:?}: the prefix length must be 0 to {max}")),
            },
        };
        Ok(IpNet { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        fn masked(bits: u128, width: u8, prefix: u8) -> u128 {
            if prefix == 0 {
                0
            } else {
                bits >> (width - prefix)
            }
        }
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net) as u128, 32, self.prefix) == masked(u32::from(ip) as u128, 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), 128, self.prefix) == masked(u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// Parses the configured list; the first bad entry is the error.
pub fn parse_trusted(list: &[String]) -> Result<Vec<IpNet>, String> {
    list.iter().filter(|s| !s.trim().is_empty()).map(|s| IpNet::parse(s)).collect()
}

fn trusted_peer(peer: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|n| n.contains(peer))
}

/// The client's address: the socket peer, or, when the peer is a trusted proxy, the
/// nearest address in `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    if !trusted_peer(peer, trusted) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().parse::<IpAddr>())
        .collect::<Result<_, _>>()
        .unwrap_or_default();
    hops.into_iter().rev().find(|ip| !trusted_peer(*ip, trusted)).unwrap_or(peer)
}

fn plausible_host(h: &str) -> bool {
    !h.is_empty() && h.len() <= 255 && h.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
}

/// `scheme://host[:port]` as the client reached the server: the `Host` header over plain
/// HTTP, or `X-Forwarded-Proto` / `X-Forwarded-Host` / `X-Forwarded-Port` (first hop) when
/// the peer is a trusted proxy. `fallback` (the bound address) when no usable host was sent.
/// A direct client whose `Host` carries no port (dicomweb-client sends none) reached the
/// server's own `local_port`, which is then added unless it is the scheme's default.
pub fn external_origin(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
    fallback: &str,
    local_port: Option<u16>,
) -> String {
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let proxied = trusted_peer(peer, trusted);
    let scheme = proxied
        .then(|| first("x-forwarded-proto"))
        .flatten()
        .filter(|p| p == "https" || p == "http")
        .unwrap_or_else(|| "http".into());
    let host = proxied
        .then(|| first("x-forwarded-host"))
        .flatten()
        .or_else(|| first(header::HOST.as_str()))
        .filter(|h| plausible_host(h))
        .unwrap_or_else(|| fallback.to_string());
    let host = match (proxied.then(|| first("x-forwarded-port")).flatten(), host.contains(':') && !host.ends_with(']'))
    {
        (Some(port), false) if port.chars().all(|c| c.is_ascii_digit()) && port.len() <= 5 => {
            let default = (scheme == "https" && port == "443") || (scheme == "http" && port == "80");
            if default {
                host
            } else {
                format!("{host}:{port}")
            }
        }
        (None, false) if !proxied => match local_port {
            Some(p) if !((scheme == "http" && p == 80) || (scheme == "https" && p == 443)) => format!("{host}:{p}"),
            _ => host,
        },
        _ => host,
    };
    format!("{scheme}://{host}")
}

/// The request's `scheme://host[:port]` as the client used it ([`external_origin`] with the
/// configured `trusted_proxies`), for the absolute links a response hands out.
#[derive(Debug, Clone)]
pub struct ExternalOrigin(pub String);

impl FromRequestParts<crate::app::AppState> for ExternalOrigin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &crate::app::AppState) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let trusted = &state.trusted_proxies;
        let local_port = state.bound.get().map(|a| a.port());
        Ok(ExternalOrigin(external_origin(peer, &parts.headers, trusted, &state.config.bind.to_string(), local_port)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        parse_trusted(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn cidr_blocks_contain_their_addresses_only() {
        let n = IpNet::parse("10.1.0.0/16").unwrap();
        assert!(n.contains("10.1.200.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(IpNet::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!(IpNet::parse("::1").unwrap().contains("::1".parse().unwrap()));
        assert!(IpNet::parse("127.0.0.1").unwrap().contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(IpNet::parse("10.0.0.0/33").is_err());
        assert!(IpNet::parse("proxy.example").is_err());
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9, 10.0.0.7"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "pacs.example.org"),
            ("host", "10.0.0.2:8080"),
        ]);
        let trusted = nets(&["10.0.0.0/24"]);
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(client_addr(proxy, &h, &trusted), "203.0.113.9".parse::<IpAddr>().unwrap());
        assert_eq!(client_addr(stranger, &h, &trusted), stranger);
        assert_eq!(client_addr(proxy, &h, &[]), proxy);
        assert_eq!(external_origin(proxy, &h, &trusted, "x", Some(8080)), "https://pacs.example.org");
        assert_eq!(external_origin(stranger, &h, &trusted, "x", Some(8080)), "http://10.0.0.2:8080");
    }

    #[test]
    fn the_port_the_client_used_is_kept() {
        let trusted = nets(&["127.0.0.1"]);
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let h = headers(&[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "gw.example"),
            ("x-forwarded-port", "8443"),
        ]);
        assert_eq!(external_origin(lo, &h, &trusted, "x", Some(8080)), "https://gw.example:8443");
        let h =
            headers(&[("x-forwarded-proto", "https"), ("x-forwarded-host", "gw.example"), ("x-forwarded-port", "443")]);
        assert_eq!(external_origin(lo, &h, &trusted, "x", Some(8080)), "https://gw.example");
        let h = headers(&[("host", "bad host/")]);
        assert_eq!(external_origin(lo, &h, &trusted, "127.0.0.1:8080", None), "http://127.0.0.1:8080");
        // A direct client that sent Host without its port reached the server's own port.
        let stranger: IpAddr = "192.0.2.7".parse().unwrap();
        let h = headers(&[("host", "teleconsult.example")]);
        assert_eq!(external_origin(stranger, &h, &trusted, "x", Some(8080)), "http://teleconsult.example:8080");
        assert_eq!(external_origin(stranger, &h, &trusted, "x", Some(80)), "http://teleconsult.example");
        let h = headers(&[("host", "[::1]")]);
        assert_eq!(external_origin(stranger, &h, &trusted, "x", Some(8080)), "http://[::1]:8080");
    }
}
