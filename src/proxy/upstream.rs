//! Connections to replicas: HTTP/1.1 over TCP, kept alive and reused, spoken by the request's own task.
//!
//! hyper's client runs every connection as a task of its own, and a request reaches it through channels: each
//! proxied request woke that task to write, woke it again for the response, and was woken back by it. In the edge
//! benchmark that machinery, with hyper-util's pool before it, was most of what Berth did per request beyond nginx.
//! A reverse proxy needs much less than a general client, so this module writes the request head (encoded once by
//! [`h1::RequestHead`], resent unchanged on a retry) and reads the response head ([`h1::parse_response`]) on the
//! socket directly, in the task serving the client's request; the response body ([`ResponseBody`]) reads the same
//! socket as the client's connection asks for more. Nothing is spawned, and no other task is woken.
//!
//! A request body is streamed frame by frame while the response is awaited, so a replica that answers before
//! reading the whole upload (a 413, say) is heard; the connection is then closed, not reused.
//!
//! The idle connections are kept per thread: a request is served on one proxy worker thread ([`super::workers`]),
//! and its connection is registered with that thread's reactor. A request pops the most recently used connection
//! to its replica (the least likely to have been closed by it), or connects. The connection goes back to the pool
//! when the response body has been read to the end and the exchange left it reusable; a response dropped half way
//! closes it, as HTTP/1.1 offers no way to resume.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use foldhash::fast::RandomState;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::HeaderMap;
use hyper::{Response, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::h1::{self, ChunkStep, Chunked, RequestFraming, RequestHead, ResponseFraming};

/// At most this many idle connections are kept per replica and thread; more are closed when their response ends.
const MAX_IDLE_PER_REPLICA: usize = 256;
/// Every this many returns to a thread's pool, its closed and stale connections are dropped.
const SWEEP_EVERY: u32 = 1024;
/// Room made in the read buffer before each read. More than a small response, so one read usually drains the
/// socket, and tokio, seeing a short read, knows without another system call that nothing is left.
const READ_CHUNK: usize = 16 * 1024;

/// Idle connections by replica (addresses are ours, not the client's: a fast hash).
type IdleMap = HashMap<SocketAddr, Vec<Idle>, RandomState>;

thread_local! {
    /// This thread's idle connections by replica, and the returns since the last sweep.
    static IDLE: RefCell<(IdleMap, u32)> = RefCell::new((IdleMap::default(), 0));
}

/// Why an exchange with a replica failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// No connection could be made (refused, unreachable, or slower than the connect timeout). Nothing of the
    /// request was sent, so it may be retried on another replica.
    #[error("connecting to {addr} failed: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// The connection failed after the request was handed to it: the replica may have acted on it.
    #[error("the exchange with {addr} failed: {source}")]
    Exchange {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// An open connection to a replica, with what has been read from it but not consumed yet.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

impl Conn {
    /// Whether the connection is still open with nothing unread: a closed one (or one the replica sent something
    /// unasked on) is readable. No system call unless the reactor saw an event since the last read drained it.
    fn is_idle(&self) -> bool {
        let mut probe = [0u8; 1];
        self.buf.is_empty()
            && matches!(self.stream.try_read(&mut probe), Err(error) if error.kind() == io::ErrorKind::WouldBlock)
    }

    /// Reads more into the buffer; `Ok(0)` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.buf.reserve(READ_CHUNK);
        tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.buf)
    }
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// The tunnel a 101 response leaves: the replica's connection and whatever it sent after the response head.
#[derive(Debug)]
pub(crate) struct Tunnel {
    pub stream: TcpStream,
    pub early: BytesMut,
}

/// How connections to replicas are made and kept: the timeouts of one proxy. The idle connections themselves are
/// in a per-thread pool.
#[derive(Debug)]
pub(crate) struct Upstreams {
    connect_timeout: Duration,
    idle_timeout: Duration,
}

impl Upstreams {
    /// Connections made with `connect_timeout`, reused while idle for less than `idle_timeout`.
    pub(crate) fn new(connect_timeout: Duration, idle_timeout: Duration) -> std::sync::Arc<Upstreams> {
        std::sync::Arc::new(Upstreams { connect_timeout, idle_timeout })
    }

    /// A live idle connection to `addr` from this thread's pool, dropping the closed and the stale ones on the way.
    fn checkout(&self, addr: SocketAddr) -> Option<Conn> {
        IDLE.with_borrow_mut(|(idle, _)| {
            let stack = idle.get_mut(&addr)?;
            while let Some(entry) = stack.pop() {
                if usable(&entry, self.idle_timeout) {
                    return Some(entry.conn);
                }
            }
            None
        })
    }

    async fn connect(&self, addr: SocketAddr) -> io::Result<Conn> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        let _ = stream.set_nodelay(true);
        Ok(Conn { stream, buf: BytesMut::new() })
    }

    /// Sends `head` and the request body in `body` (taken only once a connection is open, so after a connect failure
    /// it is still there for the next replica) to `addr`, on a pooled connection or a new one, and returns the
    /// response once its head has arrived. The body streams from the replica as the response is read.
    ///
    /// A pooled connection the replica closed just before the request went out (the keep-alive race every proxy
    /// has) is replaced by a new one when nothing can have been acted on: the head could not be written, or the
    /// replica closed without a byte of answer to a request that has no body and may be repeated.
    pub(crate) async fn send(
        &self,
        addr: &SocketAddr,
        head: &RequestHead,
        body: &mut Option<Incoming>,
    ) -> Result<Response<ResponseBody>, SendError> {
        // The future of every request holds this one's: what is kept across its awaits is kept small (one
        // connection, the arguments by reference, the rare paths boxed).
        let addr = *addr;
        let (mut conn, mut reused) = self.open(addr).await?;
        loop {
            let failure = match exchange(&mut conn, head, body).await {
                Ok((parsed, complete)) => {
                    let reusable = parsed.keep_alive && complete;
                    let upgraded = parsed.response.status() == StatusCode::SWITCHING_PROTOCOLS;
                    let pool = (reusable && !upgraded).then_some((self.idle_timeout, addr));
                    let body = ResponseBody::new(conn, parsed.framing, pool, upgraded);
                    return Ok(parsed.response.map(|()| body));
                }
                Err(failure) => failure,
            };
            if !(reused && failure.retry_safe) {
                return Err(SendError::Exchange { addr, source: failure.source });
            }
            tracing::debug!(upstream = %addr, error = %failure.source, "pooled connection was closed; reconnecting");
            drop(failure);
            conn = self.connect_boxed(addr).await?;
            reused = false;
        }
    }

    /// A connection to `addr`, and whether it came from the pool.
    async fn open(&self, addr: SocketAddr) -> Result<(Conn, bool), SendError> {
        if let Some(conn) = self.checkout(addr) {
            return Ok((conn, true));
        }
        Ok((self.connect_boxed(addr).await?, false))
    }

    /// [`Upstreams::connect`], boxed: the connect path's state is large and rarely taken, and every request's
    /// future would otherwise carry (and move) it.
    async fn connect_boxed(&self, addr: SocketAddr) -> Result<Conn, SendError> {
        Box::pin(self.connect(addr)).await.map_err(|source| SendError::Connect { addr, source })
    }
}

fn usable(entry: &Idle, idle_timeout: Duration) -> bool {
    entry.since.elapsed() < idle_timeout && entry.conn.is_idle()
}

/// A failed exchange, and whether resending the request elsewhere cannot repeat anything the replica did.
struct Failure {
    source: io::Error,
    retry_safe: bool,
}

/// Writes the request and reads the response head. Returns the head, and whether the whole request body was sent
/// (a replica may answer early; the connection is then not reused). The body is taken out of `body` only once the
/// head is written, so it is still there to resend when writing the head failed.
async fn exchange(
    conn: &mut Conn,
    head: &RequestHead,
    body: &mut Option<Incoming>,
) -> Result<(h1::ResponseHead, bool), Failure> {
    if let Err(source) = conn.stream.write_all(&head.bytes).await {
        // The replica has at most part of a head, which it cannot act on.
        return Err(Failure { source, retry_safe: true });
    }
    let body = if head.framing == RequestFraming::Empty { None } else { body.take() };
    match body {
        None => match read_head(&mut conn.stream, &mut conn.buf, head.head_method).await {
            Ok(parsed) => Ok((parsed, true)),
            Err(source) => {
                // Closed (or reset) without a byte of answer: for an idempotent request it is safe to resend.
                let silent = conn.buf.is_empty()
                    && matches!(
                        source.kind(),
                        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                    );
                Err(Failure { source, retry_safe: silent && head.idempotent })
            }
        },
        // Boxed: streaming a body while reading the answer holds the state of both, which every bodiless request's
        // future (and the allocation hyper makes for it) would otherwise carry too.
        Some(body) => Box::pin(exchange_with_body(conn, head, body)).await,
    }
}

/// The rest of [`exchange`] for a request with a body: streams it while reading the response head, as a replica may
/// answer before it has read the whole body.
async fn exchange_with_body(
    conn: &mut Conn,
    head: &RequestHead,
    body: Incoming,
) -> Result<(h1::ResponseHead, bool), Failure> {
    let (mut reader, mut writer) = conn.stream.split();
    let mut sending = pin!(send_body(&mut writer, body, head.framing));
    let mut receiving = pin!(read_head(&mut reader, &mut conn.buf, head.head_method));
    let mut sent: Option<io::Result<()>> = None;
    let parsed = loop {
        tokio::select! {
            biased;
            parsed = &mut receiving => break parsed,
            result = &mut sending, if sent.is_none() => sent = Some(result),
        }
    };
    match (parsed, sent) {
        (Ok(parsed), sent) => Ok((parsed, matches!(sent, Some(Ok(()))))),
        // The body could not be sent and no answer came: the write's error says more.
        (Err(_), Some(Err(source))) | (Err(source), _) => Err(Failure { source, retry_safe: false }),
    }
}

/// Reads until a whole response head is in `buf`.
async fn read_head<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    head_method: bool,
) -> io::Result<h1::ResponseHead> {
    loop {
        if !buf.is_empty()
            && let Some(parsed) = h1::parse_response(buf, head_method)?
        {
            return Ok(parsed);
        }
        buf.reserve(READ_CHUNK);
        if reader.read_buf(buf).await? == 0 {
            let message = if buf.is_empty() {
                "the replica closed the connection without answering"
            } else {
                "the replica closed the connection in the middle of the response head"
            };
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, message));
        }
    }
}

/// Streams the client's request body to the replica in `framing`, frame by frame as the client sends it.
async fn send_body<W: AsyncWrite + Unpin>(
    writer: &mut W,
    mut body: Incoming,
    framing: RequestFraming,
) -> io::Result<()> {
    let mut trailers: Option<HeaderMap> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| io::Error::other(format!("the client's request body failed: {error}")))?;
        let frame = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                if let Ok(fields) = frame.into_trailers() {
                    trailers.get_or_insert_with(HeaderMap::new).extend(fields);
                }
                continue;
            }
        };
        if frame.is_empty() {
            continue;
        }
        match framing {
            RequestFraming::Chunked => {
                let size = h1::chunk_size_line(frame.len());
                write_all_vectored(writer, &mut [IoSlice::new(&size), IoSlice::new(&frame), IoSlice::new(b"\r\n")])
                    .await?;
            }
            _ => writer.write_all(&frame).await?,
        }
    }
    if framing == RequestFraming::Chunked {
        writer.write_all(&h1::last_chunk(trailers.as_ref())).await?;
    }
    Ok(())
}

pub(crate) async fn write_all_vectored<W: AsyncWrite + Unpin>(
    writer: &mut W,
    mut slices: &mut [IoSlice<'_>],
) -> io::Result<()> {
    while !slices.is_empty() {
        let written = writer.write_vectored(slices).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, written);
    }
    Ok(())
}

/// Puts a connection whose exchange finished back in this thread's pool (the thread it was made on: a response
/// body is read on the thread its request came in on), dropping stale ones every [`SWEEP_EVERY`] returns.
fn put(idle_timeout: Duration, addr: SocketAddr, conn: Conn) {
    IDLE.with_borrow_mut(|(idle, returns)| {
        *returns += 1;
        if *returns >= SWEEP_EVERY {
            *returns = 0;
            idle.retain(|_, stack| {
                stack.retain(|entry| usable(entry, idle_timeout));
                !stack.is_empty()
            });
        }
        let stack = idle.entry(addr).or_default();
        if stack.len() < MAX_IDLE_PER_REPLICA {
            stack.push(Idle { conn, since: Instant::now() });
        }
    });
}

/// A replica's response body, read from its connection as the client takes it. Once read to the end, the
/// connection goes back to the pool (when the exchange left it reusable). On an upgrade (101) the connection is
/// kept for [`ResponseBody::take_tunnel`].
pub struct ResponseBody {
    conn: Option<Conn>,
    state: State,
    pool: Option<(Duration, SocketAddr)>,
}

#[derive(Debug)]
enum State {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
    Done,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody").field("state", &self.state).finish_non_exhaustive()
    }
}

impl ResponseBody {
    fn new(conn: Conn, framing: ResponseFraming, pool: Option<(Duration, SocketAddr)>, upgraded: bool) -> ResponseBody {
        let state = match framing {
            ResponseFraming::Empty | ResponseFraming::Length(0) => State::Done,
            ResponseFraming::Length(length) => State::Length(length),
            ResponseFraming::Chunked => State::Chunked(Chunked::Size),
            ResponseFraming::UntilClose => State::UntilClose,
        };
        let mut body = ResponseBody { conn: Some(conn), state, pool };
        if matches!(body.state, State::Done) && !upgraded {
            body.release();
        }
        body
    }

    /// The replica's side of a 101's tunnel; `None` for any other response.
    pub(crate) fn take_tunnel(&mut self) -> Option<Tunnel> {
        self.pool = None;
        self.conn.take().map(|conn| Tunnel { stream: conn.stream, early: conn.buf })
    }

    /// The exchange is over: the connection can carry the next request, if the exchange left it reusable and the
    /// replica sent nothing beyond the response.
    fn release(&mut self) {
        self.state = State::Done;
        if let (Some((idle_timeout, addr)), Some(conn)) = (self.pool.take(), self.conn.take())
            && conn.buf.is_empty()
        {
            put(idle_timeout, addr, conn);
        }
    }

    fn fail(&mut self, error: io::Error) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.state = State::Done;
        self.pool = None;
        self.conn = None;
        Poll::Ready(Some(Err(error)))
    }
}

fn cut_short() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "the replica closed the connection before the end of the body")
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else { return Poll::Ready(None) };
            match &mut this.state {
                State::Done => return Poll::Ready(None),
                State::Length(left) => {
                    if conn.buf.is_empty() {
                        match ready!(conn.poll_fill(cx)) {
                            Ok(0) => return this.fail(cut_short()),
                            Ok(_) => {}
                            Err(error) => return this.fail(error),
                        }
                    }
                    let take = usize::try_from(*left).unwrap_or(usize::MAX).min(conn.buf.len());
                    let data = conn.buf.split_to(take).freeze();
                    *left -= take as u64;
                    if *left == 0 {
                        // Before handing on the last bytes: the connection is free as soon as the body is.
                        this.release();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                State::Chunked(decoder) => match decoder.step(&mut conn.buf) {
                    Ok(ChunkStep::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(ChunkStep::End(trailers)) => {
                        this.release();
                        return Poll::Ready(trailers.map(|fields| Ok(Frame::trailers(fields))));
                    }
                    Ok(ChunkStep::NeedMore) => match ready!(conn.poll_fill(cx)) {
                        Ok(0) => return this.fail(cut_short()),
                        Ok(_) => {}
                        Err(error) => return this.fail(error),
                    },
                    Err(error) => return this.fail(error),
                },
                State::UntilClose => {
                    if conn.buf.is_empty() {
                        match ready!(conn.poll_fill(cx)) {
                            Ok(0) => {
                                // The end of the body is the end of the connection.
                                this.pool = None;
                                this.release();
                                return Poll::Ready(None);
                            }
                            Ok(_) => {}
                            Err(error) => return this.fail(error),
                        }
                    }
                    return Poll::Ready(Some(Ok(Frame::data(conn.buf.split().freeze()))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Done => SizeHint::with_exact(0),
            State::Length(left) => SizeHint::with_exact(left),
            _ => SizeHint::default(),
        }
    }
}
