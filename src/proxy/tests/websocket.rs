//! Real WebSocket echoes through the proxy (HTTP/1.1 `Upgrade`, RFC 6455), on the plain and the TLS listener: the
//! TLS listener also offers `h2`, and a client that asks for `http/1.1` must still be able to upgrade.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use futures::SinkExt;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::http2::start_tls_proxy;
use super::*;

/// An axum upstream whose `/ws` echoes every text and binary message back.
async fn websocket_echo_upstream() -> SocketAddr {
    async fn echo(mut socket: WebSocket) {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) || socket.send(message).await.is_err() {
                break;
            }
        }
    }
    let app = Router::new().route("/ws", get(|ws: WebSocketUpgrade| async move { ws.on_upgrade(echo) }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Opens a WebSocket at `url` over `stream` and checks a text and a binary message come back unchanged.
async fn echo_through<S>(url: &str, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = url.into_client_request().unwrap();
    let (mut socket, response) = tokio_tungstenite::client_async(request, stream).await.unwrap();
    assert_eq!(response.status(), 101);
    assert!(response.headers().contains_key("x-request-id"));
    let messages =
        [tungstenite::Message::text("hello through the proxy"), tungstenite::Message::binary(vec![0u8, 255, 1, 254])];
    for message in messages {
        socket.send(message.clone()).await.unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(10), socket.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(echoed, message);
    }
    socket.close(None).await.unwrap();
}

#[tokio::test]
async fn websocket_echo_through_the_plain_listener() {
    let upstream = websocket_echo_upstream().await;
    let proxy = start_proxy(ProxyConfig::default(), &[("ws.example.com", vec![upstream])]).await;
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    echo_through("ws://ws.example.com/ws", stream).await;
    assert_eq!(proxy.proxy.stats().upgrades, 1);
}

#[tokio::test]
async fn websocket_echo_through_the_tls_listener_over_http1() {
    let upstream = websocket_echo_upstream().await;
    let tls = start_tls_proxy(&[("ws.example.com", vec![upstream])]).await;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(tls.root_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(tls.proxy.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("ws.example.com").unwrap();
    let stream = connector.connect(name, tcp).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    echo_through("wss://ws.example.com/ws", stream).await;
    assert_eq!(tls.proxy.proxy.stats().upgrades, 1);
}
