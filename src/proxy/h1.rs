//! The HTTP/1.1 wire format of the proxy's side of an upstream exchange (RFC 9112): the request head it writes,
//! the response head it parses and how the response body is delimited. Pure functions over buffers; the I/O is in
//! [`super::upstream`].

use std::io;
use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper::{Method, Response, StatusCode, Version};
use smallvec::SmallVec;

use super::headers;

/// The longest response head accepted from a replica (nginx's default buffer for it is 4–8 KiB).
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// The most header fields accepted in a response head (hyper's default is 100).
const MAX_HEADERS: usize = 128;
/// The longest chunk-size line accepted, extensions included.
const MAX_CHUNK_LINE: usize = 4096;

/// How the request body is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestFraming {
    /// No body.
    Empty,
    /// The client's `Content-Length`, forwarded as is; the body is sent raw.
    Length(u64),
    /// Unknown length (a chunked HTTP/1.1 body, or HTTP/2 without `Content-Length`): sent chunked.
    Chunked,
}

/// A request head encoded once, to be written to whichever replica takes it (retries resend the same bytes).
#[derive(Debug, Clone)]
pub(crate) struct RequestHead {
    pub bytes: Vec<u8>,
    pub framing: RequestFraming,
    /// A `HEAD` request: its response has no body, whatever its headers say (RFC 9110 §9.3.2).
    pub head_method: bool,
    /// GET, HEAD, OPTIONS, TRACE, PUT, DELETE (RFC 9110 §9.2.2): safe to resend when a reused connection turns
    /// out to have been closed by the replica before it answered.
    pub idempotent: bool,
}

impl RequestHead {
    /// Encodes `method path HTTP/1.1`, `headers` (hop-by-hop ones already removed) and then `set`, whose fields
    /// replace any of the same names in `headers` (the proxy's `Host`, `X-Forwarded-*` and `X-Request-Id`: writing
    /// them here costs a comparison per field, where inserting them in the map cost a hashed lookup each).
    /// `has_body` is whether the client's request has a body; its framing is its `Content-Length` when there is one,
    /// else chunked (with the `Transfer-Encoding` header added).
    pub(crate) fn encode(
        method: &Method,
        path: &PathAndQuery,
        headers: &HeaderMap,
        set: &[(HeaderName, &HeaderValue)],
        has_body: bool,
    ) -> RequestHead {
        let framing = if !has_body {
            RequestFraming::Empty
        } else {
            let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
            match values.next().map(|value| content_length(value.as_bytes())) {
                Some(Ok(Some(length))) => RequestFraming::Length(length),
                // hyper has already refused a client request with an invalid length, so this is the chunked case.
                _ => RequestFraming::Chunked,
            }
        };
        // Room for every field (those `set` replaces counted twice).
        let field_len = |(name, value): (&HeaderName, &HeaderValue)| name.as_str().len() + value.len() + 4;
        let mut bytes = request_line(
            method,
            path,
            headers.iter().map(field_len).sum::<usize>()
                + set.iter().map(|(name, value)| field_len((name, value))).sum::<usize>(),
        );
        let replaced = |name: &HeaderName| set.iter().any(|(set, _)| set == name);
        let fields = headers.iter().filter(|(name, _)| !replaced(name)).chain(set.iter().map(|(n, v)| (n, *v)));
        for (name, value) in fields {
            push_field(&mut bytes, name, value);
        }
        if framing == RequestFraming::Chunked {
            bytes.extend_from_slice(b"transfer-encoding: chunked\r\n");
        } else if framing == RequestFraming::Empty
            && has_payload_semantics(method)
            && !headers.contains_key(header::CONTENT_LENGTH)
        {
            // An empty POST from an HTTP/2 client carries no length; some servers refuse a POST without one (411).
            bytes.extend_from_slice(b"content-length: 0\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        RequestHead::finished(bytes, framing, method)
    }

    /// [`RequestHead::encode`] for a request without a body that the fast path ([`super::plain`]) parsed itself:
    /// `fields` as the client sent them, names lowercased as hyper's parser would have made them. The hop-by-hop
    /// fields are left out (the fast path takes no request whose `Connection` names any other field), and so are
    /// those `set` replaces.
    pub(crate) fn encode_plain(
        method: &Method,
        path: &PathAndQuery,
        fields: &[httparse::Header<'_>],
        set: &[(HeaderName, &HeaderValue)],
    ) -> RequestHead {
        let mut bytes = request_line(
            method,
            path,
            fields.iter().map(|f| f.name.len() + f.value.len() + 4).sum::<usize>()
                + set.iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum::<usize>(),
        );
        for field in fields {
            let name = field.name.as_bytes();
            let dropped = headers::is_hop_by_hop_name(name)
                || set.iter().any(|(set, _)| name.eq_ignore_ascii_case(set.as_str().as_bytes()));
            if dropped {
                continue;
            }
            bytes.extend(name.iter().map(u8::to_ascii_lowercase));
            bytes.extend_from_slice(b": ");
            bytes.extend_from_slice(field.value);
            bytes.extend_from_slice(b"\r\n");
        }
        for (name, value) in set {
            push_field(&mut bytes, name, value);
        }
        if has_payload_semantics(method) {
            // A POST without a length has an empty body (RFC 9112 §6.3); some servers refuse one without it (411).
            bytes.extend_from_slice(b"content-length: 0\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        RequestHead::finished(bytes, RequestFraming::Empty, method)
    }

    /// The head of `bytes`, with what a retry needs to know of `method`.
    fn finished(bytes: Vec<u8>, framing: RequestFraming, method: &Method) -> RequestHead {
        let idempotent = matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
        );
        RequestHead { bytes, framing, head_method: *method == Method::HEAD, idempotent }
    }
}

/// `method path HTTP/1.1` and CRLF, in a buffer with room for `fields` more bytes of fields and the end of the
/// head: growing it half way cost two reallocations per request, a few percent of the proxy's time.
fn request_line(method: &Method, path: &PathAndQuery, fields: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(64 + path.as_str().len() + fields);
    bytes.extend_from_slice(method.as_str().as_bytes());
    bytes.push(b' ');
    bytes.extend_from_slice(path.as_str().as_bytes());
    bytes.extend_from_slice(b" HTTP/1.1\r\n");
    bytes
}

/// Appends `name: value` and CRLF. Values came from a parser that refuses CR and LF (httparse, h2) or through
/// `HeaderValue`'s own checks, so a field cannot end early and smuggle another.
fn push_field(bytes: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    bytes.extend_from_slice(name.as_str().as_bytes());
    bytes.extend_from_slice(b": ");
    bytes.extend_from_slice(value.as_bytes());
    bytes.extend_from_slice(b"\r\n");
}

/// Whether a request body means something for `method` (RFC 9110 §9.3): not for GET, HEAD, DELETE, OPTIONS, TRACE
/// or CONNECT, whose empty requests go without a length.
fn has_payload_semantics(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE | Method::CONNECT)
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResponseFraming {
    /// No body: a response to `HEAD`, a 1xx, 204 or 304.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the replica closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    /// Status, version and every header field as received (hop-by-hop ones included: the forwarder removes them).
    pub response: Response<()>,
    pub framing: ResponseFraming,
    /// Whether the connection can carry another request once this response's body has been read.
    pub keep_alive: bool,
}

fn invalid(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Parses the response head at the start of `buf`, skipping interim 1xx responses (except 101, which ends the
/// exchange). `Ok(None)`: more bytes are needed. On success the head's bytes are consumed from `buf` and what
/// follows (the start of the body) stays. Header values share one buffer with the head, not one allocation each.
pub(crate) fn parse_response(buf: &mut BytesMut, head_method: bool) -> io::Result<Option<ResponseHead>> {
    loop {
        let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut []);
        let length =
            match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut parsed, buf, &mut fields) {
                Ok(httparse::Status::Complete(length)) => length,
                Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
                    return Err(invalid("sent a response head over 64 KiB"));
                }
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(httparse::Error::TooManyHeaders) => return Err(invalid("sent more than 128 header fields")),
                Err(_) => return Err(invalid("sent a response that is not valid HTTP/1.1")),
            };
        let code = parsed.code.unwrap_or(0);
        if (100..200).contains(&code) && code != 101 {
            // 100 Continue, 103 Early Hints…: interim, the final response follows on the same connection.
            buf.advance(length);
            if buf.is_empty() {
                return Ok(None);
            }
            continue;
        }
        let status = StatusCode::from_u16(code).map_err(|_| invalid("sent an invalid status code"))?;
        let version = if parsed.version == Some(1) { Version::HTTP_11 } else { Version::HTTP_10 };

        // Names are resolved now (common ones by their exact spelling, other standard ones without allocating);
        // values are cut from the head once it is frozen. What framing depends on is gathered on the way, and the
        // hop-by-hop fields are left out here (except from a 101, whose `Upgrade` the forwarder keeps).
        let upgrade = status == StatusCode::SWITCHING_PROTOCOLS;
        let base = buf.as_ptr() as usize;
        let mut ranges: SmallVec<[(HeaderName, usize, usize); 16]> = SmallVec::with_capacity(parsed.headers.len());
        let mut message = MessageFraming::default();
        let mut named: SmallVec<[HeaderName; 2]> = SmallVec::new();
        for field in parsed.headers.iter() {
            let name = match common_name(field.name.as_bytes()) {
                Some(name) => name,
                None => {
                    HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| invalid("sent an invalid header name"))?
                }
            };
            if name == header::CONNECTION {
                for token in field.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                    if token.eq_ignore_ascii_case(b"close") {
                        message.close = true;
                    } else if !token.is_empty()
                        // The usual `keep-alive` names a field that is hop-by-hop anyway; it is not a standard name,
                        // so resolving it would allocate for every response.
                        && !token.eq_ignore_ascii_case(b"keep-alive")
                        && let Ok(option) = HeaderName::from_bytes(token)
                        && !headers::is_hop_by_hop(&option)
                    {
                        // `Connection: x-private` makes `X-Private` hop-by-hop too (RFC 9110 §7.6.1).
                        named.push(option);
                    }
                }
            } else if name == header::TRANSFER_ENCODING {
                let last = field.value.split(|b| *b == b',').map(<[u8]>::trim_ascii).rfind(|c| !c.is_empty());
                if let Some(coding) = last {
                    message.chunked_last = Some(coding.eq_ignore_ascii_case(b"chunked"));
                }
            } else if name == header::CONTENT_LENGTH {
                message.length = match (message.length, content_length(field.value)) {
                    (Ok(None), length) => length,
                    (Ok(Some(a)), Ok(Some(b))) if a == b => Ok(Some(a)),
                    _ => Err(()),
                };
                message.has_length = true;
            }
            if upgrade || !headers::is_hop_by_hop(&name) {
                let start = field.value.as_ptr() as usize - base;
                ranges.push((name, start, start + field.value.len()));
            }
        }
        let head = buf.split_to(length).freeze();
        let mut headers = HeaderMap::with_capacity(ranges.len());
        for (name, start, end) in ranges {
            let value = HeaderValue::from_maybe_shared(head.slice(start..end))
                .map_err(|_| invalid("sent an invalid header value"))?;
            headers.append(name, value);
        }
        if !upgrade {
            for name in named {
                headers.remove(name);
            }
        }

        let (framing, keep_alive) = message.decide(status, version, head_method)?;
        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = version;
        *response.headers_mut() = headers;
        return Ok(Some(ResponseHead { response, framing, keep_alive }));
    }
}

/// The names most responses carry, recognised by their usual spellings (canonical and lowercase) with a plain
/// comparison; `HeaderName::from_bytes` lowercases and looks up any name, and costs several times more.
fn common_name(name: &[u8]) -> Option<HeaderName> {
    Some(match name {
        b"Content-Type" | b"content-type" => header::CONTENT_TYPE,
        b"Content-Length" | b"content-length" => header::CONTENT_LENGTH,
        b"Date" | b"date" => header::DATE,
        b"Server" | b"server" => header::SERVER,
        b"Connection" | b"connection" => header::CONNECTION,
        b"Cache-Control" | b"cache-control" => header::CACHE_CONTROL,
        b"ETag" | b"etag" => header::ETAG,
        b"Last-Modified" | b"last-modified" => header::LAST_MODIFIED,
        b"Accept-Ranges" | b"accept-ranges" => header::ACCEPT_RANGES,
        b"Set-Cookie" | b"set-cookie" => header::SET_COOKIE,
        b"Vary" | b"vary" => header::VARY,
        b"Content-Encoding" | b"content-encoding" => header::CONTENT_ENCODING,
        b"Transfer-Encoding" | b"transfer-encoding" => header::TRANSFER_ENCODING,
        b"Location" | b"location" => header::LOCATION,
        b"Expires" | b"expires" => header::EXPIRES,
        _ => return None,
    })
}

/// What a response's framing depends on, gathered from its fields.
#[derive(Debug)]
struct MessageFraming {
    /// `Connection: close`.
    close: bool,
    /// With `Transfer-Encoding`: whether its last coding is `chunked`.
    chunked_last: Option<bool>,
    /// The `Content-Length` (`Err`: invalid or conflicting values).
    length: Result<Option<u64>, ()>,
    has_length: bool,
}

impl Default for MessageFraming {
    fn default() -> Self {
        MessageFraming { close: false, chunked_last: None, length: Ok(None), has_length: false }
    }
}

impl MessageFraming {
    /// The body's framing and whether the connection stays open after it (RFC 9112 §6.3 and §9.3).
    fn decide(&self, status: StatusCode, version: Version, head_method: bool) -> io::Result<(ResponseFraming, bool)> {
        let keep_alive = version == Version::HTTP_11 && status != StatusCode::SWITCHING_PROTOCOLS && !self.close;
        if head_method
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
            || status.is_informational()
        {
            return Ok((ResponseFraming::Empty, keep_alive));
        }
        if let Some(chunked_last) = self.chunked_last {
            // With both `Transfer-Encoding` and `Content-Length` the message may be an attempt at smuggling: the
            // encoding wins and the connection is not reused (RFC 9112 §6.3, point 3).
            return Ok(if chunked_last {
                (ResponseFraming::Chunked, keep_alive && !self.has_length)
            } else {
                (ResponseFraming::UntilClose, false)
            });
        }
        match self.length {
            Ok(Some(length)) => Ok((ResponseFraming::Length(length), keep_alive)),
            Ok(None) => Ok((ResponseFraming::UntilClose, false)),
            Err(()) => Err(invalid("sent an invalid Content-Length")),
        }
    }
}

/// One `Content-Length` field's value: `None` when empty, an error when it is not a number or the values of its
/// list disagree (RFC 9110 §8.6 allows a list of identical values).
fn content_length(value: &[u8]) -> Result<Option<u64>, ()> {
    let mut length = None;
    for part in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return Err(());
        }
        let n = part.iter().fold(0u64, |n, digit| n * 10 + u64::from(digit - b'0'));
        if length.is_some_and(|l| l != n) {
            return Err(());
        }
        length = Some(n);
    }
    Ok(length)
}

/// Where a chunked body's decoder is (RFC 9112 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunked {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last (zero-size) chunk: trailer fields up to an empty line.
    Trailers,
    /// The body is complete.
    Done,
}

/// One step of a chunked decoder.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ChunkStep {
    /// Body bytes.
    Data(Bytes),
    /// The body ended, with these trailer fields (usually none).
    End(Option<HeaderMap>),
    /// More bytes are needed.
    NeedMore,
}

impl Chunked {
    /// Advances over `buf` as far as it can and returns the first thing worth handing on: data, the end, or a request
    /// for more bytes. Data is split off `buf` without copying.
    pub(crate) fn step(&mut self, buf: &mut BytesMut) -> io::Result<ChunkStep> {
        loop {
            match *self {
                Chunked::Size => {
                    let Some(line_end) = buf.windows(2).position(|w| w == b"\r\n") else {
                        if buf.len() > MAX_CHUNK_LINE {
                            return Err(invalid("sent a chunk-size line over 4 KiB"));
                        }
                        return Ok(ChunkStep::NeedMore);
                    };
                    let line = &buf[..line_end];
                    let digits = line.split(|b| *b == b';').next().unwrap_or_default().trim_ascii();
                    if digits.is_empty() || digits.len() > 15 {
                        return Err(invalid("sent an invalid chunk size"));
                    }
                    let mut size = 0u64;
                    for digit in digits {
                        let value =
                            (*digit as char).to_digit(16).ok_or_else(|| invalid("sent an invalid chunk size"))?;
                        size = size * 16 + u64::from(value);
                    }
                    buf.advance(line_end + 2);
                    *self = if size == 0 { Chunked::Trailers } else { Chunked::Data(size) };
                }
                Chunked::Data(left) => {
                    if buf.is_empty() {
                        return Ok(ChunkStep::NeedMore);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(take).freeze();
                    let left = left - take as u64;
                    *self = if left == 0 { Chunked::DataEnd } else { Chunked::Data(left) };
                    return Ok(ChunkStep::Data(data));
                }
                Chunked::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(ChunkStep::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(invalid("sent a chunk without its closing CRLF"));
                    }
                    buf.advance(2);
                    *self = Chunked::Size;
                }
                Chunked::Trailers => {
                    let mut fields = [httparse::EMPTY_HEADER; 32];
                    match httparse::parse_headers(buf, &mut fields) {
                        Ok(httparse::Status::Complete((length, fields))) => {
                            let mut trailers = HeaderMap::new();
                            for field in fields {
                                if let (Ok(name), Ok(value)) = (
                                    HeaderName::from_bytes(field.name.as_bytes()),
                                    HeaderValue::from_bytes(field.value),
                                ) {
                                    trailers.append(name, value);
                                }
                            }
                            buf.advance(length);
                            *self = Chunked::Done;
                            return Ok(ChunkStep::End((!trailers.is_empty()).then_some(trailers)));
                        }
                        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                            return Err(invalid("sent trailers over 64 KiB"));
                        }
                        Ok(httparse::Status::Partial) => return Ok(ChunkStep::NeedMore),
                        Err(_) => return Err(invalid("sent invalid trailer fields")),
                    }
                }
                Chunked::Done => return Ok(ChunkStep::End(None)),
            }
        }
    }
}

/// The chunk-size line for `len` bytes of data, as `<hex>\r\n`.
pub(crate) fn chunk_size_line(len: usize) -> SmallVec<[u8; 18]> {
    let mut line = SmallVec::new();
    let hex = format!("{len:x}");
    line.extend_from_slice(hex.as_bytes());
    line.extend_from_slice(b"\r\n");
    line
}

/// The last chunk, with `trailers` (when the request body had any) and the final CRLF.
pub(crate) fn last_chunk(trailers: Option<&HeaderMap>) -> Vec<u8> {
    let mut bytes = b"0\r\n".to_vec();
    for (name, value) in trailers.into_iter().flatten() {
        push_field(&mut bytes, name, value);
    }
    bytes.extend_from_slice(b"\r\n");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8], head_method: bool) -> io::Result<Option<ResponseHead>> {
        parse_response(&mut BytesMut::from(bytes), head_method)
    }

    #[test]
    fn a_request_head_is_encoded_with_its_framing() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("app.example"));
        let path = PathAndQuery::from_static("/a?b=c");
        let get = RequestHead::encode(&Method::GET, &path, &headers, &[], false);
        assert_eq!(get.bytes, b"GET /a?b=c HTTP/1.1\r\nhost: app.example\r\n\r\n");
        headers.append("x-forwarded-proto", HeaderValue::from_static("gopher"));
        let proto = HeaderValue::from_static("https");
        let set = [(HeaderName::from_static("x-forwarded-proto"), &proto)];
        let replaced = RequestHead::encode(&Method::GET, &path, &headers, &set, false);
        assert_eq!(replaced.bytes, b"GET /a?b=c HTTP/1.1\r\nhost: app.example\r\nx-forwarded-proto: https\r\n\r\n");
        headers.remove("x-forwarded-proto");
        assert_eq!(get.framing, RequestFraming::Empty);
        assert!(get.idempotent && !get.head_method);

        let empty_post = RequestHead::encode(&Method::POST, &path, &headers, &[], false);
        assert!(empty_post.bytes.ends_with(b"host: app.example\r\ncontent-length: 0\r\n\r\n"));
        let chunked = RequestHead::encode(&Method::POST, &path, &headers, &[], true);
        assert!(chunked.bytes.ends_with(b"host: app.example\r\ntransfer-encoding: chunked\r\n\r\n"));
        assert_eq!(chunked.framing, RequestFraming::Chunked);
        assert!(!chunked.idempotent);

        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        let sized = RequestHead::encode(&Method::PUT, &path, &headers, &[], true);
        assert_eq!(sized.framing, RequestFraming::Length(12));
        assert!(!sized.bytes.windows(17).any(|w| w == b"transfer-encoding"));
    }

    #[test]
    fn a_response_head_is_parsed_and_the_body_start_stays_in_the_buffer() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-App: one\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nhel"[..],
        );
        let head = parse_response(&mut buf, false).unwrap().unwrap();
        assert_eq!(head.response.status(), StatusCode::OK);
        assert_eq!(head.framing, ResponseFraming::Length(5));
        assert!(head.keep_alive);
        assert_eq!(head.response.headers()["x-app"], "one");
        assert_eq!(head.response.headers().get_all(header::SET_COOKIE).iter().count(), 2);
        assert_eq!(&buf[..], b"hel");
    }

    #[test]
    fn a_partial_head_waits_and_an_oversized_or_broken_one_is_refused() {
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Len", false).unwrap().is_none());
        let mut huge = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        huge.resize(MAX_HEAD + 10, b'a');
        assert!(parse(&huge, false).is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", false).is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false).is_err());
        assert!(parse(b"SSH-2.0-OpenSSH\r\n\r\n", false).is_err());
    }

    #[test]
    fn interim_responses_are_skipped_but_101_ends_the_exchange() {
        let head = parse(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!(head.response.status(), StatusCode::CREATED);
        assert!(parse(b"HTTP/1.1 100 Continue\r\n\r\n", false).unwrap().is_none());
        let upgrade =
            parse(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", false)
                .unwrap()
                .unwrap();
        assert_eq!(upgrade.response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(upgrade.framing, ResponseFraming::Empty);
        assert!(!upgrade.keep_alive);
    }

    #[test]
    fn hop_by_hop_fields_are_left_out_except_from_a_101() {
        let head = parse(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Private\r\nKeep-Alive: timeout=5\r\nX-Private: 1\r\nTransfer-Encoding: chunked\r\nProxy-Authenticate: Basic\r\nX-App: 2\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        let names: Vec<&str> = head.response.headers().keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-app"]);
        assert_eq!(head.framing, ResponseFraming::Chunked);
        assert!(head.keep_alive);
        let upgrade =
            parse(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", false)
                .unwrap()
                .unwrap();
        assert_eq!(upgrade.response.headers()["upgrade"], "websocket");
        assert_eq!(upgrade.response.headers()["connection"], "Upgrade");
    }

    #[test]
    fn common_names_are_the_names_from_bytes_finds() {
        for name in [
            "Content-Type",
            "Content-Length",
            "Date",
            "Server",
            "Connection",
            "Cache-Control",
            "ETag",
            "Last-Modified",
            "Accept-Ranges",
            "Set-Cookie",
            "Vary",
            "Content-Encoding",
            "Transfer-Encoding",
            "Location",
            "Expires",
        ] {
            let expected = HeaderName::from_bytes(name.as_bytes()).unwrap();
            assert_eq!(common_name(name.as_bytes()), Some(expected.clone()), "{name}");
            assert_eq!(common_name(name.to_ascii_lowercase().as_bytes()), Some(expected), "{name}");
        }
        assert_eq!(common_name(b"X-Custom"), None);
        assert_eq!(common_name(b"CONTENT-TYPE"), None, "other spellings take the general path");
    }

    #[test]
    fn framing_follows_rfc_9112_section_6_3() {
        let framing_of = |bytes: &[u8], head_method| {
            let head = parse(bytes, head_method).unwrap().unwrap();
            (head.framing, head.keep_alive)
        };
        assert_eq!(framing_of(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", true), (ResponseFraming::Empty, true));
        assert_eq!(framing_of(b"HTTP/1.1 204 No Content\r\n\r\n", false), (ResponseFraming::Empty, true));
        assert_eq!(
            framing_of(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n", false),
            (ResponseFraming::Empty, true)
        );
        assert_eq!(
            framing_of(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false),
            (ResponseFraming::Chunked, true)
        );
        assert_eq!(
            framing_of(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", false),
            (ResponseFraming::Chunked, false),
            "both headers: chunked wins, the connection is not reused"
        );
        assert_eq!(
            framing_of(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false),
            (ResponseFraming::UntilClose, false)
        );
        assert_eq!(framing_of(b"HTTP/1.1 200 OK\r\n\r\n", false), (ResponseFraming::UntilClose, false));
        assert_eq!(
            framing_of(b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\n", false),
            (ResponseFraming::Length(2), false)
        );
        assert_eq!(
            framing_of(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", false),
            (ResponseFraming::Length(2), false)
        );
    }

    #[test]
    fn a_chunked_body_is_decoded_across_any_split_with_trailers() {
        let wire: &[u8] = b"5;ext=1\r\nhello\r\nC\r\n, wide world\r\n0\r\nX-Checksum: 42\r\n\r\n";
        for split in 1..wire.len() {
            let mut decoder = Chunked::Size;
            let mut buf = BytesMut::from(&wire[..split]);
            let mut body = Vec::new();
            let mut rest = &wire[split..];
            let trailers = loop {
                match decoder.step(&mut buf).unwrap() {
                    ChunkStep::Data(data) => body.extend_from_slice(&data),
                    ChunkStep::End(trailers) => break trailers,
                    ChunkStep::NeedMore => {
                        assert!(!rest.is_empty(), "split {split}: wants more after the end");
                        buf.extend_from_slice(&rest[..1]);
                        rest = &rest[1..];
                    }
                }
            };
            assert_eq!(body, b"hello, wide world", "split {split}");
            assert_eq!(trailers.unwrap()["x-checksum"], "42");
            assert!(buf.is_empty() && rest.is_empty());
        }
    }

    #[test]
    fn a_broken_chunked_body_is_an_error() {
        for wire in [&b"zz\r\n"[..], b"5\r\nhelloXX", b"1234567890abcdef0\r\n"] {
            let mut decoder = Chunked::Size;
            let mut buf = BytesMut::from(wire);
            let result = loop {
                match decoder.step(&mut buf) {
                    Ok(ChunkStep::Data(_)) => continue,
                    other => break other,
                }
            };
            assert!(result.is_err(), "{:?} decoded as {result:?}", String::from_utf8_lossy(wire));
        }
    }

    #[test]
    fn chunks_are_encoded_in_hex_with_trailers_at_the_end() {
        assert_eq!(&chunk_size_line(255)[..], b"ff\r\n");
        let mut trailers = HeaderMap::new();
        trailers.insert("x-sum", HeaderValue::from_static("1"));
        assert_eq!(last_chunk(Some(&trailers)), b"0\r\nx-sum: 1\r\n\r\n");
        assert_eq!(last_chunk(None), b"0\r\n\r\n");
    }
}
