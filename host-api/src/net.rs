//! Which addresses `fetch` may reach.
//!
//! A `net:<host>` grant lets a block reach that host's public addresses on
//! any port. Loopback, private, link-local (which includes the cloud
//! metadata address 169.254.169.254), CGNAT, unspecified, multicast and
//! other special-purpose addresses are refused unless the grant names the
//! exact host *and* port (`net:localhost:8080`). The check runs on the
//! addresses the name resolved to, and the connection goes only to those
//! checked addresses, so a name that resolves to 127.0.0.1 (or changes its
//! answer between check and connect) gains nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use quire_engine::HostError;
use quire_storage::WorkspaceId;

use crate::grants::Grants;

/// Turns a host name into addresses. Replaceable so tests can make any
/// name resolve anywhere.
pub trait Resolve: Send + Sync + 'static {
    /// The addresses of `host` (never an IP literal; those skip resolving).
    ///
    /// # Errors
    /// When the name does not resolve.
    fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<IpAddr>>;
}

/// The system resolver (`getaddrinfo`).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<IpAddr>> {
        use std::net::ToSocketAddrs;
        Ok((host, port).to_socket_addrs()?.map(|a| a.ip()).collect())
    }
}

/// Proof that one request may go to `host:port`, at `addrs`.
#[derive(Debug, Clone)]
pub struct CheckedNet {
    pub(crate) ws: WorkspaceId,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) addrs: Vec<SocketAddr>,
}

/// Why an address is special (not public), if it is.
pub fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return special_v4(v4);
            }
            special_v6(v6)
        }
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    Some(match o {
        _ if ip.is_loopback() => "a loopback address",
        _ if ip.is_private() => "a private address",
        [169, 254, 169, 254] => "the cloud metadata address",
        _ if ip.is_link_local() => "a link-local address",
        _ if ip.is_unspecified() || o[0] == 0 => "an unspecified (this-network) address",
        [100, b, ..] if (64..128).contains(&b) => "a shared (CGNAT) address",
        [192, 0, 0, _] => "an IETF protocol address",
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => "a documentation address",
        [198, 18..=19, ..] => "a benchmarking address",
        _ if ip.is_multicast() => "a multicast address",
        _ if o[0] >= 240 => "a reserved or broadcast address",
        _ => return None,
    })
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    Some(match s {
        _ if ip.is_loopback() => "a loopback address",
        _ if ip.is_unspecified() => "an unspecified address",
        [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254] => "the cloud metadata address",
        [a, ..] if a & 0xfe00 == 0xfc00 => "a private (unique local) address",
        [a, ..] if a & 0xffc0 == 0xfe80 => "a link-local address",
        [a, ..] if a & 0xff00 == 0xff00 => "a multicast address",
        [0x2001, 0xdb8, ..] => "a documentation address",
        [0x64, 0xff9b, ..] => "a NAT64 address",
        [0, 0, 0, 0, 0, 0, _, _] => "an IPv4-compatible address",
        _ => return None,
    })
}

/// Check a request to `url` against the grants and resolve it.
///
/// # Errors
/// A denial naming the missing grant, or a `TypeError` for a bad URL or a
/// name that does not resolve.
pub(crate) fn check(
    ws: WorkspaceId,
    grants: &Grants,
    resolver: &Arc<dyn Resolve>,
    url: &url::Url,
) -> Result<CheckedNet, HostError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(HostError::new(
            "TypeError",
            format!(
                "fetch: only http and https URLs are supported, got {}:",
                url.scheme()
            ),
        ));
    }
    let (host, literal) = match url.host() {
        Some(url::Host::Domain(d)) => (d.to_ascii_lowercase(), None),
        Some(url::Host::Ipv4(a)) => (a.to_string(), Some(IpAddr::V4(a))),
        Some(url::Host::Ipv6(a)) => (a.to_string(), Some(IpAddr::V6(a))),
        None => {
            return Err(HostError::new(
                "TypeError",
                format!("fetch: {url} has no host"),
            ))
        }
    };
    let port = url.port_or_known_default().unwrap_or(80);
    let shown = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let (any_port, ports) = grants.net_for(&host);
    let exact = ports.contains(&port);
    if !any_port && !exact {
        // Loopback and private targets need the exact port; say so up front
        // when the URL already shows it is one.
        let local = host == "localhost"
            || host.ends_with(".localhost")
            || literal.is_some_and(|ip| special(ip).is_some());
        let needed = if ports.is_empty() && !local {
            format!("net:{shown}")
        } else {
            format!("net:{shown}:{port}")
        };
        return Err(HostError::denied(
            format!("fetch to {url} is denied: it needs the grant {needed}"),
            Some(needed),
        ));
    }
    let ips = match literal {
        Some(ip) => vec![ip],
        None => resolver.resolve(&host, port).map_err(|e| {
            HostError::new(
                "TypeError",
                format!("fetch failed: could not resolve {host}: {e}"),
            )
        })?,
    };
    if ips.is_empty() {
        return Err(HostError::new(
            "TypeError",
            format!("fetch failed: {host} has no addresses"),
        ));
    }
    if !exact {
        if let Some((ip, why)) = ips.iter().find_map(|ip| special(*ip).map(|w| (ip, w))) {
            let what = match literal {
                Some(_) => format!("{shown} is {why}"),
                None => format!("{host} resolves to {ip}, {why}"),
            };
            return Err(HostError::denied(
                format!("fetch to {url} is denied: {what}; loopback, private, link-local and metadata addresses need the exact grant net:{shown}:{port}"),
                Some(format!("net:{shown}:{port}")),
            ));
        }
    }
    Ok(CheckedNet {
        ws,
        host,
        port,
        addrs: ips
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_addresses_are_recognised() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "fd00:ec2::254",
            "::127.0.0.1",
        ] {
            assert!(special(a.parse().unwrap()).is_some(), "{a}");
        }
        for a in ["93.184.216.34", "1.1.1.1", "2606:4700::1111"] {
            assert!(special(a.parse().unwrap()).is_none(), "{a}");
        }
    }
}
