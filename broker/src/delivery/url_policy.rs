//! Which destinations Depot may call (webhook subscriptions, the relay), so
//! that it cannot be turned against internal services (SSRF).
//!
//! By default only `http`/`https` URLs whose host is a public address are
//! allowed: loopback, private (RFC 1918, unique-local), link-local (which
//! includes cloud metadata at 169.254.169.254), carrier-grade NAT,
//! unspecified, broadcast, documentation and multicast ranges are denied.
//! Names are checked twice: the URL when a subscription is created, and
//! every resolved address at connection time (a name can resolve to a
//! private address, or change to one later). `allow_private` lifts the
//! range check for tests and local use; explicit host lists narrow or widen
//! the rule for named hosts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

#[derive(Debug, Clone, Default)]
pub struct UrlPolicy {
    /// Allow private, loopback and link-local destinations.
    pub allow_private: bool,
    /// Host names always allowed, whatever they resolve to (e.g. an internal
    /// service an operator wants Depot to call).
    pub allow_hosts: Vec<String>,
    /// Host names always refused.
    pub deny_hosts: Vec<String>,
}

impl UrlPolicy {
    /// Checks a destination URL as written; returns it parsed.
    pub fn check_url(&self, text: &str) -> Result<Url, String> {
        let url = Url::parse(text).map_err(|e| format!("invalid URL '{text}': {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "only http and https URLs are allowed, not '{}'",
                url.scheme()
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("URLs with credentials are not allowed; use headers or signatures".into());
        }
        match url.host() {
            None => Err(format!("the URL '{text}' has no host")),
            Some(Host::Domain(name)) => self.check_name(name).map(|()| url.clone()),
            Some(Host::Ipv4(ip)) => self.check_addr(IpAddr::V4(ip)).map(|()| url.clone()),
            Some(Host::Ipv6(ip)) => self.check_addr(IpAddr::V6(ip)).map(|()| url.clone()),
        }
    }

    /// Whether a resolved address of `host` may be connected to.
    pub fn check_resolved(&self, host: &str, addr: IpAddr) -> Result<(), String> {
        if self.is_allowed_host(host) {
            return Ok(());
        }
        self.check_addr(addr)
            .map_err(|e| format!("{host} resolves to a denied address: {e}"))
    }

    fn check_name(&self, name: &str) -> Result<(), String> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if self
            .deny_hosts
            .iter()
            .any(|d| d.eq_ignore_ascii_case(&name))
        {
            return Err(format!("the host {name} is denied"));
        }
        if !self.allow_private
            && !self.is_allowed_host(&name)
            && (name == "localhost" || name.ends_with(".localhost"))
        {
            return Err(format!("the host {name} is a loopback name, denied"));
        }
        Ok(())
    }

    fn is_allowed_host(&self, name: &str) -> bool {
        self.allow_hosts
            .iter()
            .any(|a| a.eq_ignore_ascii_case(name.trim_end_matches('.')))
    }

    pub fn check_addr(&self, addr: IpAddr) -> Result<(), String> {
        if self.allow_private || is_public(addr) {
            Ok(())
        } else {
            Err(format!(
                "{addr} is a private, loopback or reserved address (allow with --allow-private-urls)"
            ))
        }
    }
}

/// True for globally routable unicast addresses.
fn is_public(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(ip),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        // Carrier-grade NAT, 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // Benchmarking, 198.18.0.0/15.
        || (a == 198 && (18..20).contains(&b))
        // Reserved, 240.0.0.0/4.
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // Unique local fc00::/7, link-local fe80::/10, documentation 2001:db8::/32.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0x0db8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_destinations_pass() {
        let policy = UrlPolicy::default();
        for url in [
            "https://example.com/hook",
            "http://93.184.216.34:8080/x",
            "https://[2606:4700::1111]/",
        ] {
            policy.check_url(url).unwrap();
        }
    }

    #[test]
    fn internal_destinations_are_denied_by_default() {
        let policy = UrlPolicy::default();
        for url in [
            "http://127.0.0.1:8080/",
            "http://localhost/",
            "http://api.localhost/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "ftp://example.com/",
            "http://user:pass@example.com/",
            "not a url",
        ] {
            assert!(policy.check_url(url).is_err(), "{url} should be denied");
        }
    }

    #[test]
    fn names_are_checked_again_once_resolved() {
        let policy = UrlPolicy::default();
        let private: IpAddr = "10.0.0.7".parse().unwrap();
        assert!(policy.check_resolved("hooks.example.com", private).is_err());
        let allowed = UrlPolicy {
            allow_hosts: vec!["hooks.internal".into()],
            ..Default::default()
        };
        allowed.check_resolved("hooks.internal", private).unwrap();
    }

    #[test]
    fn switches_and_lists_apply() {
        let open = UrlPolicy {
            allow_private: true,
            deny_hosts: vec!["admin.example.com".into()],
            ..Default::default()
        };
        open.check_url("http://127.0.0.1:9000/").unwrap();
        open.check_url("http://localhost:9000/").unwrap();
        assert!(open.check_url("https://ADMIN.example.com/").is_err());
    }
}
