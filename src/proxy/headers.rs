//! Header rewriting between client and upstream: hop-by-hop removal, `X-Forwarded-*` and `X-Request-Id`.

use std::net::IpAddr;

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};

/// `X-Request-Id`: correlates one request across the client, the proxy log and the app.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `X-Forwarded-For`: the chain of client addresses (de facto standard; RFC 7239 is the formal equivalent).
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`: the scheme the client used to reach the proxy.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`: the `Host` the client sent.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The headers that describe one connection rather than the message, so a proxy must not forward them
/// (RFC 9110 §7.6.1; `Keep-Alive` and `Proxy-Connection` are the legacy ones it names, `Proxy-Authenticate` and
/// `Proxy-Authorization` are meant for this hop only per RFC 9110 §11.7).
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
];

/// The position of `name` in [`HOP_BY_HOP`]: a match on the name's text, which costs a length check for most
/// headers, where comparing `HeaderName`s one by one cost a few hundred instructions per message.
fn hop_by_hop_index(name: &HeaderName) -> Option<usize> {
    match name.as_str() {
        "connection" => Some(0),
        "keep-alive" => Some(1),
        "proxy-connection" => Some(2),
        "te" => Some(3),
        "trailer" => Some(4),
        "transfer-encoding" => Some(5),
        "upgrade" => Some(6),
        "proxy-authenticate" => Some(7),
        "proxy-authorization" => Some(8),
        _ => None,
    }
}

/// [`is_hop_by_hop`] for a field name as a client spelled it (any case).
pub(crate) fn is_hop_by_hop_name(name: &[u8]) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h.as_str().as_bytes()))
}

/// Whether `name` is one of the fixed hop-by-hop fields (not those a `Connection` header names).
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    hop_by_hop_index(name).is_some()
}

/// The scheme the client used to reach the proxy, sent upstream as `X-Forwarded-Proto`. The plain listener passes
/// `Http`; the TLS listener will pass `Https` through the same serve path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedProto {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl ForwardedProto {
    /// The header value: `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardedProto::Http => "http",
            ForwardedProto::Https => "https",
        }
    }
}

/// Whether `headers` ask to switch protocols: a `Connection` header listing `upgrade` and an `Upgrade` header
/// (RFC 9110 §7.8: the `upgrade` connection option must accompany `Upgrade`).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_tokens(headers).iter().any(|t| t == "upgrade")
}

/// Removes the hop-by-hop headers (RFC 9110 §7.6.1) and every header named in `Connection`. When `keep_upgrade` is
/// set (an upgrade request, or the 101 answering it), `Upgrade` and a `Connection: upgrade` are kept, since the
/// protocol switch must reach the other side for the proxy to splice the two connections (RFC 9110 §7.8).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the names finds which hop-by-hop headers are there at all (usually none, or `Connection`), so
    // the common message costs comparisons rather than nine hashed removals.
    let mut present = [false; 9];
    for name in headers.keys() {
        if let Some(i) = hop_by_hop_index(name) {
            present[i] = true;
        }
    }
    if !present.contains(&true) {
        // Without a `Connection` header no other header can be named as hop-by-hop either.
        return;
    }
    let upgrade = if keep_upgrade { headers.get(header::UPGRADE).cloned() } else { None };
    // Options that name no header of their own (`close`) or one removed below anyway cost no lookup; a header
    // name is made only for the rare custom option such as `Connection: x-private`.
    let mut named: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        for token in value.as_bytes().split(|b| *b == b',').map(<[u8]>::trim_ascii) {
            let handled = token.is_empty()
                || token.eq_ignore_ascii_case(b"close")
                || HOP_BY_HOP.iter().any(|h| token.eq_ignore_ascii_case(h.as_str().as_bytes()));
            if !handled && let Ok(name) = HeaderName::from_bytes(token) {
                named.push(name);
            }
        }
    }
    for name in named {
        headers.remove(name);
    }
    for (name, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, here)| *here) {
        headers.remove(name);
    }
    if let Some(upgrade) = upgrade {
        headers.insert(header::UPGRADE, upgrade);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Joins the `Cookie` fields of a request into one, separated by `; `. An HTTP/2 client may split cookies into
/// several fields for better compression, and they must be concatenated before the request goes to an HTTP/1.1
/// server (RFC 9113 §8.2.3), which expects a single `Cookie` header (RFC 6265 §5.4).
pub fn join_cookies(headers: &mut HeaderMap) {
    let mut values = headers.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (values.next(), values.next()) else { return };
    let mut joined = first.as_bytes().to_vec();
    for value in headers.get_all(header::COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(value.as_bytes());
    }
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, value);
    }
}

/// The lowercase options listed in every `Connection` header (a comma-separated list, RFC 9110 §7.6.1).
fn connection_tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The `X-Forwarded-For` value to send: the earlier proxies' entries (all values joined into one, in order), then
/// `client`. (`X-Forwarded-Proto` and `X-Forwarded-Host` are not extended but replaced: only this proxy knows how
/// the client reached it.)
pub fn forwarded_for(headers: &HeaderMap, client: &HeaderValue) -> HeaderValue {
    forwarded_for_values(headers.get_all(&X_FORWARDED_FOR).iter().map(HeaderValue::as_bytes), client)
}

/// [`forwarded_for`] over the raw values of the request's `X-Forwarded-For` fields, in order.
pub(crate) fn forwarded_for_values<'a>(values: impl Iterator<Item = &'a [u8]>, client: &HeaderValue) -> HeaderValue {
    let mut earlier = values.filter_map(visible_ascii).map(str::trim);
    match earlier.next() {
        // The usual case, a client that came straight here: the value is the connection's, made once.
        None => client.clone(),
        Some(first) => {
            let mut chain: Vec<&str> = std::iter::once(first).chain(earlier).filter(|v| !v.is_empty()).collect();
            chain.push(client.to_str().unwrap_or_default());
            HeaderValue::from_str(&chain.join(", ")).unwrap_or_else(|_| client.clone())
        }
    }
}

/// The `X-Forwarded-For` entry for a client address, made once per connection.
pub fn client_address(client: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&client.to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// The request id for this request: the client's `X-Request-Id` when it is a plausible id (1–128 characters from
/// `[A-Za-z0-9._:/+=-]`, so it cannot smuggle anything into logs or headers), otherwise a fresh UUID v7 (time
/// ordered, so ids sort by arrival).
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    request_id_from(headers.get(&X_REQUEST_ID).map(HeaderValue::as_bytes))
}

/// [`request_id`] from the raw value of the request's first `X-Request-Id` field, if it has one.
pub(crate) fn request_id_from(incoming: Option<&[u8]>) -> HeaderValue {
    match incoming.filter(|v| is_valid_request_id(v)).and_then(|v| HeaderValue::from_bytes(v).ok()) {
        Some(value) => value,
        None => {
            let mut buffer = uuid::Uuid::encode_buffer();
            let id = REQUEST_ID_CLOCK
                .with(|clock| uuid::Uuid::new_v7(uuid::Timestamp::now(clock)))
                .hyphenated()
                .encode_lower(&mut buffer);
            HeaderValue::from_str(id).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
        }
    }
}

thread_local! {
    /// The UUID v7 clock per thread: ids are ordered per worker thread (and by millisecond across them), without
    /// `Uuid::now_v7`'s process-wide mutex, which every request on every core took.
    static REQUEST_ID_CLOCK: uuid::ContextV7 = const { uuid::ContextV7::new() };
}

/// `bytes` as text when they are what `HeaderValue::to_str` accepts: visible ASCII, spaces and tabs.
fn visible_ascii(bytes: &[u8]) -> Option<&str> {
    let visible = bytes.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b));
    if visible { std::str::from_utf8(bytes).ok() } else { None }
}

fn is_valid_request_id(bytes: &[u8]) -> bool {
    (1..=128).contains(&bytes.len()) && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"._:/+=-".contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_match_names_every_hop_by_hop_header_at_its_place() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_index(name), Some(i), "{name}");
        }
        assert_eq!(hop_by_hop_index(&header::CONTENT_TYPE), None);
    }
}
