//! Header rules without sockets: host normalisation, hop-by-hop removal, forwarding headers, request ids.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::header::HeaderMap;

use crate::proxy::headers::{client_address, forwarded_for, is_upgrade, join_cookies, request_id, strip_hop_by_hop};
use crate::proxy::{Backend, RouteTable, normalize_host};

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
    }
    headers
}

#[test]
fn normalize_host_lowercases_and_strips_port_and_trailing_dot() {
    assert_eq!(normalize_host("App.Example.COM"), "app.example.com");
    assert_eq!(normalize_host("app.example.com:8080"), "app.example.com");
    assert_eq!(normalize_host("app.example.com.:443"), "app.example.com");
    assert_eq!(normalize_host("app.example.com."), "app.example.com");
    assert_eq!(normalize_host("[::1]:8080"), "[::1]");
    assert_eq!(normalize_host("[2001:DB8::1]"), "[2001:db8::1]");
    assert_eq!(normalize_host(" x.test "), "x.test");
}

#[test]
fn route_table_normalises_on_insert_and_lookup() {
    let mut table = RouteTable::new();
    assert!(table.is_empty());
    table.insert("App.Example.com.", Arc::new(Backend::new(vec![])));
    assert_eq!(table.len(), 1);
    assert!(table.get("app.example.com:80").is_some());
    assert!(table.get("other.example.com").is_none());
}

#[test]
fn backend_round_robins_and_tries_ejected_replicas_last() {
    let a = SocketAddr::from(([127, 0, 0, 1], 1));
    let b = SocketAddr::from(([127, 0, 0, 1], 2));
    let c = SocketAddr::from(([127, 0, 0, 1], 3));
    let backend = Backend::new(vec![a, b, c]);
    let order = |backend: &Backend| backend.attempt_order().collect::<Vec<_>>();
    assert_eq!(order(&backend), [a, b, c]);
    assert_eq!(order(&backend), [b, c, a]);
    backend.eject(c, Duration::from_secs(60));
    assert!(backend.is_ejected(c));
    assert_eq!(order(&backend), [a, b, c]);
    assert_eq!(order(&backend), [a, b, c]);
    // Ejecting a replica while its request goes through the order (a failed connect) does not bring it up again.
    let mut attempts = backend.attempt_order();
    let first = attempts.next().unwrap();
    backend.eject(first, Duration::from_secs(60));
    assert_eq!([first].into_iter().chain(attempts).collect::<Vec<_>>(), [b, a, c]);
    // Every replica is still tried when all are ejected.
    assert_eq!(order(&backend).len(), 3);
    assert_eq!(Backend::new(vec![]).attempt_order().count(), 0);
}

#[test]
fn attempt_order_of_a_backend_with_more_replicas_than_the_lazy_order_tracks() {
    let addrs: Vec<SocketAddr> = (1..=100).map(|port| SocketAddr::from(([127, 0, 0, 1], port))).collect();
    let backend = Backend::new(addrs.clone());
    backend.eject(addrs[0], Duration::from_secs(60));
    backend.eject(addrs[70], Duration::from_secs(60));
    let order: Vec<SocketAddr> = backend.attempt_order().collect();
    let mut expected: Vec<SocketAddr> = addrs.iter().copied().filter(|a| *a != addrs[0] && *a != addrs[70]).collect();
    expected.extend([addrs[0], addrs[70]]);
    assert_eq!(order, expected);
    // The next request starts one further round.
    assert_eq!(backend.attempt_order().next(), Some(addrs[1]));
}

#[test]
fn strip_removes_hop_by_hop_and_connection_named_headers() {
    let mut headers = map(&[
        ("connection", "keep-alive, X-Private"),
        ("connection", "x-other"),
        ("x-private", "1"),
        ("x-other", "2"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("te", "trailers"),
        ("trailer", "x-sum"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "websocket"),
        ("proxy-authenticate", "Basic"),
        ("proxy-authorization", "Basic eA=="),
        ("x-end-to-end", "kept"),
    ]);
    strip_hop_by_hop(&mut headers, false);
    assert_eq!(headers.len(), 1, "{headers:?}");
    assert_eq!(headers["x-end-to-end"], "kept");
}

#[test]
fn strip_keeps_upgrade_for_an_upgrade_exchange() {
    let mut headers = map(&[("connection", "Upgrade, x-private"), ("upgrade", "websocket"), ("x-private", "1")]);
    assert!(is_upgrade(&headers));
    strip_hop_by_hop(&mut headers, true);
    assert_eq!(headers["upgrade"], "websocket");
    assert_eq!(headers["connection"], "upgrade");
    assert!(!headers.contains_key("x-private"));
    assert!(!is_upgrade(&map(&[("upgrade", "websocket")])), "Upgrade without Connection: upgrade is not one");
}

#[test]
fn forwarded_for_appends_the_client_to_earlier_entries_in_one_value() {
    let headers = map(&[("x-forwarded-for", "203.0.113.1"), ("x-forwarded-for", "203.0.113.2, 203.0.113.3")]);
    let client = client_address(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)));
    assert_eq!(forwarded_for(&headers, &client), "203.0.113.1, 203.0.113.2, 203.0.113.3, 192.0.2.9");
    assert_eq!(forwarded_for(&HeaderMap::new(), &client), "192.0.2.9");
}

#[test]
fn request_id_keeps_a_valid_one_and_replaces_others() {
    assert_eq!(request_id(&map(&[("x-request-id", "abc-123_x.y")])), "abc-123_x.y");
    let long = "a".repeat(129);
    for bad in ["has space", "quote\"", long.as_str()] {
        let id = request_id(&map(&[("x-request-id", bad)]));
        assert_eq!(uuid::Uuid::parse_str(id.to_str().unwrap()).unwrap().get_version_num(), 7, "{bad}");
    }
    let generated = request_id(&HeaderMap::new());
    assert_ne!(generated, request_id(&HeaderMap::new()));
}

#[test]
fn split_cookie_fields_are_joined_for_http1() {
    let mut headers = map(&[("cookie", "a=1"), ("cookie", "b=2; c=3"), ("x-other", "kept")]);
    join_cookies(&mut headers);
    assert_eq!(headers.get_all("cookie").iter().collect::<Vec<_>>(), ["a=1; b=2; c=3"]);
    let mut single = map(&[("cookie", "a=1")]);
    join_cookies(&mut single);
    assert_eq!(single["cookie"], "a=1");
    let mut none = HeaderMap::new();
    join_cookies(&mut none);
    assert!(none.is_empty());
}
