//! Outbound HTTP to URLs that API callers choose (webhook endpoints): the SSRF policy.
//!
//! A caller of the API must not be able to make OfferHub send requests to the machine
//! it runs on, its private network or a cloud metadata service, nor learn from delivery
//! records what answers there. The policy:
//!
//! - [`check_url`] at registration: `http`/`https` only, at most 2048 characters, no
//!   user info; a host that is an IP address (in any spelling: the WHATWG parser of the
//!   `url` crate normalises `127.1`, `2130706433`, `0x7f.1`, `0177.0.0.1` to
//!   `127.0.0.1`, and `[::ffff:127.0.0.1]` to an IPv4-mapped IPv6 address) must be
//!   public ([`is_public`]); `localhost` and `*.localhost` are refused; a name that
//!   resolves now is refused when any of its addresses is not public.
//! - [`PublicOnlyResolver`] at delivery time: the HTTP client resolves names through it
//!   and it drops every non-public address, so a name that was public at registration
//!   and now points inside (DNS rebinding) is refused, never connected to. IP literals
//!   do not go through a resolver: [`check_target`] is called before each request.
//! - [`client`]: no redirects (a public endpoint cannot bounce a delivery inside), no
//!   proxy from the environment (it would resolve names itself).
//!
//! `OFFERHUB_WEBHOOK_ALLOW_PRIVATE_NETWORKS=true` lifts the address checks (local
//! development, tests); the refusal message names it.
//!
//! No maintained crate classifies addresses on stable Rust (`ip_rfc` and `ipext` are
//! unmaintained backports of the unstable `IpAddr::is_global`); [`is_public`] uses the
//! standard library's stable predicates plus the few ranges it lacks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use url::{Host, Url};

use crate::error::{Error, Result};

/// The setting that allows non-public targets.
pub const ALLOW_PRIVATE_SETTING: &str = "OFFERHUB_WEBHOOK_ALLOW_PRIVATE_NETWORKS";

/// Whether `ip` is a publicly routable unicast address. Refused: unspecified (`0.0.0.0`,
/// `::`), "this network" `0/8`, loopback, RFC 1918 private, CGNAT `100.64/10`, link-local
/// (`169.254/16` — cloud metadata — and `fe80::/10`), IETF `192.0.0/24`, documentation,
/// benchmarking `198.18/15`, reserved `240/4`, broadcast, multicast, unique-local
/// `fc00::/7`, site-local `fec0::/10`, discard `100::/64`; IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-compatible, NAT64 (`64:ff9b::/96`) and 6to4 (`2002::/16`) addresses are judged by
/// the IPv4 address they carry.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || a == 0
        || ip.is_loopback()
        || ip.is_private()
        || (a == 100 && (b & 0xc0) == 64)
        || ip.is_link_local()
        || (a == 192 && b == 0 && c == 0)
        || ip.is_documentation()
        || (a == 198 && (b & 0xfe) == 18)
        || a >= 240
        || ip.is_broadcast()
        || ip.is_multicast())
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let seg = ip.segments();
    // IPv4-compatible (deprecated) ::a.b.c.d, NAT64 64:ff9b::a.b.c.d.
    if seg[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified() {
        return is_public_v4(Ipv4Addr::from(((seg[6] as u32) << 16) | seg[7] as u32));
    }
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(Ipv4Addr::from(((seg[6] as u32) << 16) | seg[7] as u32));
    }
    // 6to4 2002:a.b.c.d::/48.
    if seg[0] == 0x2002 {
        return is_public_v4(Ipv4Addr::from(((seg[1] as u32) << 16) | seg[2] as u32));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        || (seg[0] & 0xffc0) == 0xfec0
        || seg[..4] == [0x100, 0, 0, 0]
        || (seg[0] == 0x2001 && seg[1] == 0xdb8))
}

fn refused(field: &str, what: &str) -> Error {
    Error::validation(
        field,
        format!(
            "{what} is not a public internet address (loopback, private, link-local and \
             metadata addresses are refused; set {ALLOW_PRIVATE_SETTING}=true to allow them \
             for local development)"
        ),
    )
}

/// Whether `host` is a name that always means this machine.
fn is_local_name(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "localhost" || h.ends_with(".localhost")
}

/// Validates a caller-supplied outbound URL (see the module documentation). Errors: 400
/// `VALIDATION_ERROR` naming `field`. With `allow_private`, only the shape is checked.
/// Names are resolved with a 2 s budget; a name that does not resolve now is accepted
/// (deliveries check again).
pub async fn check_url(field: &str, v: &str, allow_private: bool) -> Result<Url> {
    let url = crate::services::http_url(field, v)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::validation(
            field,
            "must not carry credentials (user:password@); authenticate with the signature",
        ));
    }
    if allow_private {
        return Ok(url);
    }
    match url.host() {
        Some(Host::Ipv4(ip)) if !is_public(IpAddr::V4(ip)) => {
            return Err(refused(field, &format!("host {ip}")));
        }
        Some(Host::Ipv6(ip)) if !is_public(IpAddr::V6(ip)) => {
            return Err(refused(field, &format!("host [{ip}]")));
        }
        Some(Host::Domain(d)) => {
            if is_local_name(d) {
                return Err(refused(field, &format!("host {d}")));
            }
            let port = url.port_or_known_default().unwrap_or(443);
            let lookup = tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::lookup_host((d.to_string(), port)),
            )
            .await;
            if let Ok(Ok(addrs)) = lookup {
                for a in addrs {
                    if !is_public(a.ip()) {
                        return Err(refused(
                            field,
                            &format!("host {d} (it resolves to {})", a.ip()),
                        ));
                    }
                }
            }
        }
        _ => {}
    }
    Ok(url)
}

/// Why a delivery target is refused at send time: the text stored on the delivery
/// record (it never says whether anything answers there).
pub const REFUSED: &str = "refused: the endpoint's address is not a public internet address";

/// The send-time check of a URL's literal host (names are checked by
/// [`PublicOnlyResolver`]). `Err` carries [`REFUSED`].
pub fn check_target(url: &Url, allow_private: bool) -> std::result::Result<(), &'static str> {
    if allow_private {
        return Ok(());
    }
    match url.host() {
        Some(Host::Ipv4(ip)) if !is_public(IpAddr::V4(ip)) => Err(REFUSED),
        Some(Host::Ipv6(ip)) if !is_public(IpAddr::V6(ip)) => Err(REFUSED),
        Some(Host::Domain(d)) if is_local_name(d) => Err(REFUSED),
        Some(_) => Ok(()),
        None => Err(REFUSED),
    }
}

/// A DNS resolver for `reqwest` that keeps only public addresses; a name with none left
/// fails to resolve (the connection is never attempted).
#[derive(Clone, Copy, Debug, Default)]
pub struct PublicOnlyResolver;

/// The error a [`PublicOnlyResolver`] answers with.
#[derive(Debug)]
pub struct NonPublicAddress;

impl std::fmt::Display for NonPublicAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REFUSED)
    }
}

impl std::error::Error for NonPublicAddress {}

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(NonPublicAddress) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The HTTP client for caller-chosen URLs: no redirects, no proxy from the environment,
/// names resolved by [`PublicOnlyResolver`] unless `allow_private`.
pub fn client(user_agent: &str, allow_private: bool) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .user_agent(user_agent)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(Duration::from_secs(5));
    if !allow_private {
        b = b.dns_resolver(Arc::new(PublicOnlyResolver));
    }
    b.build().map_err(Error::internal)
}

/// Whether a `reqwest` error was caused by [`PublicOnlyResolver`] refusing the name.
pub fn is_refusal(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<NonPublicAddress>() {
            return true;
        }
        source = s.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn classifies_addresses() {
        for s in [
            "127.0.0.1",
            "127.255.0.9",
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "172.16.5.4",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.254",
            "169.254.169.254",
            "192.0.0.170",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "100::1",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip(s)), "{s} must not be public");
        }
        for s in [
            "8.8.8.8",
            "1.1.1.1",
            "100.128.0.1",
            "172.32.0.1",
            "93.184.216.34",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "2002:0808:0808::",
        ] {
            assert!(is_public(ip(s)), "{s} is public");
        }
    }

    #[tokio::test]
    async fn refuses_every_spelling_of_internal_hosts() {
        for u in [
            "http://127.0.0.1:4000/x",
            "http://localhost/x",
            "http://LOCALHOST./x",
            "http://api.localhost/x",
            "http://0.0.0.0/",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f.0.0.1/",
            "http://0177.0.0.1/",
            "http://017700000001/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00::1]/",
            "http://10.1.2.3/",
            "http://100.100.100.200/",
            "https://192.168.0.1:8443/hook",
        ] {
            let e = check_url("url", u, false).await.expect_err(u);
            assert_eq!(e.code.as_str(), "VALIDATION_ERROR", "{u}");
            assert!(
                e.message.contains(ALLOW_PRIVATE_SETTING),
                "{u}: {}",
                e.message
            );
            assert_eq!(e.details.as_ref().unwrap()["field"], "url");
            // …and allowed for local development.
            check_url("url", u, true).await.expect(u);
        }
        for u in ["https://93.184.216.34/hook", "https://[2606:4700::1]/x"] {
            check_url("url", u, false).await.expect(u);
        }
        let e = check_url("url", "https://user:pw@example.com/", false)
            .await
            .unwrap_err();
        assert!(e.message.contains("credentials"));
    }

    #[test]
    fn send_time_check_of_literals() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert_eq!(check_target(&u("http://127.0.0.1/"), false), Err(REFUSED));
        assert_eq!(check_target(&u("http://[::1]/"), false), Err(REFUSED));
        assert_eq!(check_target(&u("http://localhost/"), false), Err(REFUSED));
        assert_eq!(check_target(&u("http://127.0.0.1/"), true), Ok(()));
        assert_eq!(check_target(&u("https://8.8.8.8/"), false), Ok(()));
    }

    #[tokio::test]
    async fn resolver_drops_non_public_addresses() {
        // "localhost" resolves (from /etc/hosts) to loopback only: refused, never dialled.
        let client = client("test", false).unwrap();
        let e = client
            .get("http://localhost:9/")
            .send()
            .await
            .expect_err("must not connect");
        assert!(is_refusal(&e), "{e:?}");
    }
}
