//! The fast path for plain HTTP/1.1 requests: a client connection starts here, and every request on it that has no
//! body and goes to a replica as it is (almost every `GET` a browser or an API client sends) is parsed with
//! httparse, routed by [`Proxy::route_plain`], exchanged with the replica and finished like any other
//! ([`Proxy::exchange`], [`Proxy::finish`]), and its response written here. The first request that is anything
//! else (a body, an upgrade, HTTP/2's preface, HTTP/1.0, something the proxy answers itself, a malformed head)
//! hands the connection to hyper with the bytes read so far ([`Rewind`]), and hyper serves it from then on, that
//! request included.
//!
//! What this saves per request is hyper's server side: building a `Request` and its `HeaderMap` from the head, the
//! connection's dispatcher and the response's encoder, which were most of what the proxy did in user space.
//! What it writes is what hyper wrote for the same response: the status line, the replica's fields (hop-by-hop
//! ones already gone), `date` when the replica sent none, the body framed by its known length or chunked, and
//! `connection: close` when the client asked for it or the proxy is closing the connection.

use std::io::{self, IoSlice, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Buf, BytesMut};
use futures_util::FutureExt;
use http_body_util::BodyExt;
use hyper::body::Body;
use hyper::header;
use hyper::{Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::forward::{Exchange, Finishing};
use super::upstream::write_all_vectored;
use super::{ProxyBody, ServiceState};

/// The most header fields the fast path parses; a request with more goes to hyper (which allows 100).
const MAX_FIELDS: usize = 64;
/// The longest request head the fast path waits for; a longer one goes to hyper (which answers 431 past its own
/// limit).
const MAX_HEAD: usize = 16 * 1024;
/// Room made in the read buffer before each read.
const READ_CHUNK: usize = 8 * 1024;

/// How [`serve`] ended.
pub(crate) enum Ended<S> {
    /// The connection is done: the client closed it, asked to, or the proxy is closing it.
    Closed,
    /// A request the fast path does not take: hyper serves the connection from here, starting with these bytes.
    Handover(S, BytesMut),
}

/// What [`next`] made of the bytes read so far.
// Returned once per request and taken apart at once: boxing the large variant would allocate for every request.
#[allow(clippy::large_enum_variant)]
enum Next {
    /// Not a whole request head yet.
    Partial,
    /// A request for hyper.
    Handover,
    /// A plain request `len` bytes long, routed.
    Forward { len: usize, finishing: Finishing, exchange: Exchange, close: bool },
}

/// Serves the plain requests on `io` one after the other (a pipelined one is parsed from what is already read),
/// until the client closes, a request asks to close or `closing` is set between requests (an idle or draining
/// proxy), or a request is not a plain one. Errors are the connection's (a write failing, a response body cut
/// short by its replica): the connection then ends, as with hyper.
pub(crate) async fn serve<S>(mut io: S, state: &ServiceState, closing: &AtomicBool) -> io::Result<Ended<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        let (len, finishing, mut exchange, close) = loop {
            if !buf.is_empty() {
                match next(&buf, state) {
                    Next::Partial => {}
                    Next::Handover => return Ok(Ended::Handover(io, buf)),
                    Next::Forward { len, finishing, exchange, close } => break (len, finishing, exchange, close),
                }
            }
            buf.reserve(READ_CHUNK);
            if read_unless_closing(&mut io, &mut buf, closing).await? == 0 {
                return Ok(Ended::Closed);
            }
        };
        buf.advance(len);
        let in_flight = state.activity.begin();
        let head_method = exchange.is_head();
        let outcome = state.proxy.exchange(&mut exchange, &state.conn).await;
        drop(exchange);
        let response = state.proxy.finish(finishing, outcome, &state.conn);
        let keep_alive = !close && !closing.load(Ordering::Relaxed);
        write_response(&mut io, response, head_method, keep_alive).await?;
        drop(in_flight);
        if !keep_alive {
            let _ = io.shutdown().await;
            return Ok(Ended::Closed);
        }
    }
}

/// Parses and routes the request at the start of `buf`.
fn next(buf: &[u8], state: &ServiceState) -> Next {
    let mut fields = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut req = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(&mut req, buf, &mut fields) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Next::Partial,
        // Too long, too many fields, HTTP/2's preface, or not HTTP: hyper answers it as it should.
        Ok(httparse::Status::Partial) | Err(_) => return Next::Handover,
    };
    if req.version != Some(1) {
        return Next::Handover;
    }
    match state.proxy.route_plain(&req, &state.conn) {
        Some((finishing, exchange, close)) => Next::Forward { len, finishing, exchange, close },
        None => Next::Handover,
    }
}

/// Reads more of the connection into `buf`: `Ok(0)` at its end, and also when `closing` is set before anything of
/// the next request has come (checked on every poll, so the serve loop's watcher ends a wait by setting it and
/// polling again). A request head that has begun to arrive is waited for; the watcher drops the connection if it
/// never completes.
async fn read_unless_closing<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
    closing: &AtomicBool,
) -> io::Result<usize> {
    std::future::poll_fn(|cx| {
        if buf.is_empty() && closing.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(0));
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, &mut *buf)
    })
    .await
}

/// Writes `response` as hyper's HTTP/1.1 server wrote it for this request (`hyper::proto::h1::role`): the body
/// framed by its known length or chunked, `content-length` kept for `HEAD` and dropped where no body can be
/// (1xx, 204, 304), `content-length: 0` for an empty body that could have had one, and no body where none may be.
async fn write_response<S: AsyncWrite + Unpin>(
    io: &mut S,
    response: Response<ProxyBody>,
    head_method: bool,
    keep_alive: bool,
) -> io::Result<()> {
    let (parts, mut body) = response.into_parts();
    let status = parts.status;
    let no_length = status.is_informational() || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    let bodiless = head_method || no_length;
    // `None`: an empty body; `Some(None)`: one of unknown length.
    let known = (!body.is_end_stream()).then(|| body.size_hint().exact());
    let mut head = Vec::with_capacity(
        160 + parts.headers.iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum::<usize>(),
    );
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
    head.extend_from_slice(b"\r\n");
    let mut length_written = false;
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH {
            // The replica's length stands for a body of that length, and for a `HEAD` (its body's length).
            let keep = match known {
                Some(Some(_)) => !length_written,
                Some(None) => false,
                None => head_method,
            };
            if !keep {
                continue;
            }
            length_written = true;
        } else if name == header::TRANSFER_ENCODING {
            // This hop's framing is chosen below (replicas' `Transfer-Encoding` is removed as it is read anyway).
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if !keep_alive {
        head.extend_from_slice(b"connection: close\r\n");
    }
    let chunked = !length_written && !bodiless && known == Some(None);
    if !length_written {
        match known {
            Some(None) if chunked => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
            Some(None) => {}
            None | Some(Some(0)) if !no_length && !head_method => head.extend_from_slice(b"content-length: 0\r\n"),
            None | Some(Some(0)) => {}
            Some(Some(length)) if !no_length => {
                let _ = write!(head, "content-length: {length}\r\n");
            }
            Some(Some(_)) => {}
        }
    }
    if !parts.headers.contains_key(header::DATE) {
        head.extend_from_slice(b"date: ");
        head.extend_from_slice(&http_date());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    if bodiless || matches!(known, None | Some(Some(0))) {
        io.write_all(&head).await?;
        return io.flush().await;
    }
    let mut left = known.flatten().unwrap_or(0);
    // The usual small response is in the replica connection's buffer already: head and body go in one write.
    let mut pending = Some(head);
    loop {
        let frame = match body.frame().now_or_never() {
            Some(frame) => frame,
            None => {
                if let Some(head) = pending.take() {
                    io.write_all(&head).await?;
                }
                io.flush().await?;
                body.frame().await
            }
        };
        let data = match frame {
            None => break,
            Some(Err(error)) => return Err(io::Error::other(error)),
            // Trailer fields are not relayed, as hyper does not without a `Trailer` header (which is hop-by-hop).
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_trailers) => continue,
            },
        };
        if data.is_empty() {
            continue;
        }
        let head = pending.take().unwrap_or_default();
        if chunked {
            // Uppercase hexadecimal, as hyper writes it.
            let size = format!("{:X}\r\n", data.len());
            let mut slices =
                [IoSlice::new(&head), IoSlice::new(size.as_bytes()), IoSlice::new(&data), IoSlice::new(b"\r\n")];
            write_all_vectored(io, &mut slices).await?;
        } else {
            let take = data.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            write_all_vectored(io, &mut [IoSlice::new(&head), IoSlice::new(&data[..take])]).await?;
            left -= take as u64;
        }
    }
    if !chunked && left > 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the response body ended before its length"));
    }
    let head = pending.take().unwrap_or_default();
    if chunked {
        write_all_vectored(io, &mut [IoSlice::new(&head), IoSlice::new(b"0\r\n\r\n")]).await?;
    } else if !head.is_empty() {
        io.write_all(&head).await?;
    }
    io.flush().await
}

thread_local! {
    /// The `date` value of the current second, made once a second per thread as hyper does.
    static DATE: std::cell::RefCell<(u64, [u8; 29])> = const { std::cell::RefCell::new((u64::MAX, [0; 29])) };
}

/// Now as an HTTP date (RFC 9110 §5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date() -> [u8; 29] {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(cached, text)| {
        if *cached != second {
            let formatted = httpdate::fmt_http_date(now);
            if formatted.len() == text.len() {
                text.copy_from_slice(formatted.as_bytes());
                *cached = second;
            }
        }
        *text
    })
}

/// A connection handed to hyper: what the fast path read of it comes first, then the connection itself.
pub(crate) struct Rewind<S> {
    read: BytesMut,
    io: S,
}

impl<S> Rewind<S> {
    pub(crate) fn new(io: S, read: BytesMut) -> Rewind<S> {
        Rewind { read, io }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.read.is_empty() {
            let n = this.read.len().min(out.remaining());
            out.put_slice(&this.read[..n]);
            this.read.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, out)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, data)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
