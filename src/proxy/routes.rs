//! The route table: which upstream replicas serve which host, and which of them are currently skipped.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// Route keys are the operator's domains, not attacker input, and lookups are on every request: a fast hash.
use foldhash::fast::RandomState;

/// The replicas one request tries, in order (see [`Backend::attempt_order`]). It is worked out as it is gone
/// through rather than listed: every request's future holds it, and a list of addresses made those larger.
#[derive(Debug)]
pub struct AttemptOrder<'a>(Order<'a>);

#[derive(Debug)]
enum Order<'a> {
    /// Up to 64 replicas: bit `i` of `ejected` says whether replica `i` was ejected when the order was made. Steps
    /// `0..n` go round from `start` yielding the others, steps `n..2n` go round again yielding the ejected ones.
    Lazy { upstreams: &'a [SocketAddr], start: usize, ejected: u64, step: usize },
    /// More replicas than `u64` has bits: the order, listed.
    Listed(std::vec::IntoIter<SocketAddr>),
}

impl Iterator for AttemptOrder<'_> {
    type Item = SocketAddr;

    fn next(&mut self) -> Option<SocketAddr> {
        match &mut self.0 {
            Order::Lazy { upstreams, start, ejected, step } => {
                let n = upstreams.len();
                // Without ejected replicas the second round has nothing to yield.
                let end = if *ejected == 0 { n } else { 2 * n };
                while *step < end {
                    let second_round = *step >= n;
                    let i = (*start + *step % n) % n;
                    *step += 1;
                    if ((*ejected >> i) & 1 == 1) == second_round {
                        return upstreams.get(i).copied();
                    }
                }
                None
            }
            Order::Listed(order) => order.next(),
        }
    }
}

/// One app's upstream replicas (container IP:port), load-balanced round robin.
///
/// A backend keeps its passive-ejection state (which replicas recently refused connections) for as long as it lives,
/// so a new [`RouteTable`] that reuses the same `Arc<Backend>` keeps skipping a replica that is known to be down.
/// All state is atomic: picking and ejecting never block, and concurrent requests never see a torn state.
#[derive(Debug)]
pub struct Backend {
    upstreams: Vec<SocketAddr>,
    /// Incremented once per request: the replica a request tries first.
    next: AtomicUsize,
    /// Per replica, the end of its ejection in milliseconds since `epoch` (0: not ejected).
    ejected_until: Vec<AtomicU64>,
    epoch: Instant,
    /// What the owner calls this backend (Berth: the deployment id); carried into access-log entries.
    tag: Option<Arc<str>>,
}

impl Backend {
    /// A backend over `upstreams`, none of them ejected. An empty list is valid: the proxy answers 503 for it, which
    /// is what an app scaled to zero (or with every replica crashed) should show.
    pub fn new(upstreams: Vec<SocketAddr>) -> Backend {
        let ejected_until = upstreams.iter().map(|_| AtomicU64::new(0)).collect();
        Backend { upstreams, next: AtomicUsize::new(0), ejected_until, epoch: Instant::now(), tag: None }
    }

    /// The same backend, tagged (the tag is carried into access-log entries).
    pub fn with_tag(mut self, tag: &str) -> Backend {
        self.tag = Some(Arc::from(tag));
        self
    }

    /// The tag given with [`Backend::with_tag`].
    pub fn tag(&self) -> Option<&Arc<str>> {
        self.tag.as_ref()
    }

    /// The replicas in the order given to [`Backend::new`].
    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// The order in which one request should try the replicas: starting at the round-robin position, every replica
    /// not currently ejected, then the ejected ones (so that when all are ejected the request still probes them
    /// rather than failing without trying). Each replica appears exactly once: which are ejected is read as the
    /// order is made, so ejecting one while going through the order does not bring it up again.
    pub fn attempt_order(&self) -> AttemptOrder<'_> {
        let n = self.upstreams.len();
        if n == 0 {
            return AttemptOrder(Order::Lazy { upstreams: &[], start: 0, ejected: 0, step: 0 });
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        // The clock is read only when some replica was ever ejected (the usual backend never was).
        let ever = self.ejected_until.iter().any(|u| u.load(Ordering::Relaxed) > 0);
        let now = if ever { self.now_ms() } else { 0 };
        let ejected = |i: usize| ever && self.ejected_until.get(i).is_some_and(|u| u.load(Ordering::Relaxed) > now);
        if n <= 64 {
            let ejected = (0..n).filter(|&i| ejected(i)).fold(0u64, |mask, i| mask | 1 << i);
            return AttemptOrder(Order::Lazy { upstreams: &self.upstreams, start, ejected, step: 0 });
        }
        let (mut healthy, skipped): (Vec<usize>, Vec<usize>) =
            (0..n).map(|offset| (start + offset) % n).partition(|&i| !ejected(i));
        healthy.extend(skipped);
        AttemptOrder(Order::Listed(healthy.into_iter().map(|i| self.upstreams[i]).collect::<Vec<_>>().into_iter()))
    }

    /// Marks `addr` as failing for `duration`: requests try it last until then. Unknown addresses are ignored.
    pub fn eject(&self, addr: SocketAddr, duration: Duration) {
        let until = self.now_ms().saturating_add(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)).max(1);
        for (i, upstream) in self.upstreams.iter().enumerate() {
            if *upstream == addr
                && let Some(slot) = self.ejected_until.get(i)
            {
                slot.store(until, Ordering::Relaxed);
            }
        }
    }

    /// Whether `addr` is currently ejected.
    pub fn is_ejected(&self, addr: SocketAddr) -> bool {
        let now = self.now_ms();
        self.upstreams
            .iter()
            .zip(&self.ejected_until)
            .any(|(upstream, until)| *upstream == addr && until.load(Ordering::Relaxed) > now)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Host (lowercase, no port, no trailing dot) → backend. Immutable once published.
///
/// Hosts are normalised on insert and on lookup with [`normalize_host`], so `App.Example.com.:8080` and
/// `app.example.com` name the same route.
/// A `*.example.com` entry routes every name one label below `example.com` that has no exact entry.
#[derive(Debug, Default, Clone)]
pub struct RouteTable {
    routes: HashMap<String, Arc<Backend>, RandomState>,
    /// Hosts whose plain-HTTP requests are redirected to HTTPS (308): a certificate is active for them.
    https_only: std::collections::HashSet<String, RandomState>,
}

impl RouteTable {
    /// An empty table: every host gets the 404 page.
    pub fn new() -> Self {
        RouteTable::default()
    }

    /// Marks `host` (normalised) as served over HTTPS only: plain HTTP answers 308 to the `https://` URL.
    pub fn set_https_only(&mut self, host: &str) {
        self.https_only.insert(normalize_host(host));
    }

    /// Whether plain-HTTP requests for `host` (already normalised) are redirected to HTTPS.
    pub fn is_https_only(&self, host: &str) -> bool {
        !self.https_only.is_empty() && self.https_only.contains(host)
    }

    /// Routes `host` (normalised) to `backend`, replacing any previous route for it.
    pub fn insert(&mut self, host: &str, backend: Arc<Backend>) {
        self.routes.insert(normalize_host(host), backend);
    }

    /// The backend for `host` (normalised first), if any: the exact entry, else the wildcard of its parent. Two
    /// hash lookups at most, whatever the table's size.
    pub fn get(&self, host: &str) -> Option<&Arc<Backend>> {
        self.get_normalized(&normalized(host))
    }

    /// [`RouteTable::get`] for a host that is already normalised, as the proxy's request path has it.
    pub(crate) fn get_normalized(&self, host: &str) -> Option<&Arc<Backend>> {
        self.routes.get(host).or_else(|| {
            let (_, parent) = host.split_once('.')?;
            self.routes.get(&format!("*.{parent}"))
        })
    }

    /// How many hosts are routed.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether no host is routed.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// Normalises a `Host` header value or URI authority into a route key: trimmed, lowercase, without `:port` and
/// without a trailing dot. Host names are case-insensitive (RFC 9110 §4.2.3, RFC 4343) and the port is not part of
/// the name (RFC 9110 §7.2); an IPv6 literal keeps its brackets (RFC 3986 §3.2.2), so `[::1]:80` becomes `[::1]`.
pub fn normalize_host(raw: &str) -> String {
    normalized(raw).into_owned()
}

/// [`normalize_host`] without an allocation when `raw` is already normal (the usual `Host` header).
pub(crate) fn normalized(raw: &str) -> Cow<'_, str> {
    let raw = raw.trim();
    let without_port = if raw.starts_with('[') {
        match raw.find(']') {
            Some(end) => &raw[..=end],
            None => raw,
        }
    } else {
        match raw.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            _ => raw,
        }
    };
    let without_dot = without_port.strip_suffix('.').unwrap_or(without_port);
    if without_dot.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(without_dot.to_ascii_lowercase())
    } else {
        Cow::Borrowed(without_dot)
    }
}
