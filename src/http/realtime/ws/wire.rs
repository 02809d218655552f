//! The socket's two directions, framed here with actix-http's WebSocket codec rather than
//! through actix-ws: the response body encodes frames straight from the session's [`Outbox`]
//! (every queued message of one wake in one buffer, one write), and the request payload is
//! decoded into whole messages. actix-ws put a 32-slot channel and a writer task between the
//! outbox and the socket: about 2 KiB per idle connection and one more task wake-up per message
//! per socket, which is what fan-out to many sockets pays for.

use std::sync::Arc;

use actix::Recipient;
use actix_http::error::PayloadError;
use actix_http::ws::{CloseCode, CloseReason, Codec, Frame, Item, Message, ProtocolError};
use actix_web::web;
use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::{Stream, StreamExt};
use tokio_util::codec::{Decoder, Encoder};

use crate::actors::outbox::{Outbox, Outgoing, Overflowed};
pub use crate::actors::ws_session::Inbound as Incoming;
use crate::actors::ws_session::{CLOSE_PROTOCOL, CLOSE_TOO_BIG, Stop, Uids, Unreadable};
use crate::core::realtime::frame;

/// Most queued messages one wake of the body takes.
const BATCH: usize = 128;

/// Why the client's side of the socket cannot be read further.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("websocket protocol: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("a continued message is larger than {0} bytes")]
    TooLarge(usize),
    /// The codec already refuses these; kept so the joining below needs no assumption.
    #[error("a continuation frame without a first frame")]
    StrayContinuation,
    #[error("reading the socket: {0}")]
    Payload(String),
}

impl WireError {
    /// The close code RFC 6455 §7.4.1 gives this failure: 1009 for a message too big to take,
    /// 1002 for a broken frame or sequence.
    /// What the session is told: the close code and reason, and this error for the log.
    pub fn unreadable(self) -> Unreadable {
        let (code, reason) = self.close_code();
        Unreadable {
            code,
            reason,
            detail: self.to_string(),
        }
    }

    pub fn close_code(&self) -> (u16, &'static str) {
        match self {
            WireError::Protocol(ProtocolError::Overflow) | WireError::TooLarge(_) => {
                (CLOSE_TOO_BIG, "message too big")
            }
            WireError::Protocol(_) | WireError::StrayContinuation | WireError::Payload(_) => {
                (CLOSE_PROTOCOL, "protocol error")
            }
        }
    }
}

/// The client's messages, decoded from the upgrade's request payload; frames and continued
/// messages over `max` bytes are errors.
pub fn incoming(payload: web::Payload, max: usize) -> impl Stream<Item = Result<Incoming, WireError>> {
    messages(payload, max)
}

fn messages<S>(payload: S, max: usize) -> impl Stream<Item = Result<Incoming, WireError>>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    let reader = Reader {
        payload,
        buf: BytesMut::new(),
        codec: Codec::new().max_size(max),
        partial: None,
        max,
        done: false,
    };
    futures_util::stream::unfold(reader, |mut reader| async move {
        let item = reader.next().await?;
        Some((item, reader))
    })
}

struct Reader<S> {
    payload: S,
    buf: BytesMut,
    codec: Codec,
    /// A message arriving in continuation frames: whether it is text, and its bytes so far.
    partial: Option<(bool, BytesMut)>,
    max: usize,
    done: bool,
}

impl<S: Stream<Item = Result<Bytes, PayloadError>> + Unpin> Reader<S> {
    async fn next(&mut self) -> Option<Result<Incoming, WireError>> {
        if self.done {
            return None;
        }
        loop {
            match self.codec.decode(&mut self.buf) {
                Ok(Some(frame)) => {
                    if let Some(item) = self.frame(frame) {
                        self.done = item.is_err();
                        return Some(item);
                    }
                    continue;
                }
                Ok(None) => {}
                Err(err) => {
                    self.done = true;
                    return Some(Err(err.into()));
                }
            }
            match self.payload.next().await {
                Some(Ok(bytes)) => self.buf.extend_from_slice(&bytes),
                Some(Err(err)) => {
                    self.done = true;
                    return Some(Err(WireError::Payload(err.to_string())));
                }
                None => return None,
            }
        }
    }

    fn frame(&mut self, frame: Frame) -> Option<Result<Incoming, WireError>> {
        Some(Ok(match frame {
            Frame::Text(bytes) => Incoming::Text(bytes),
            Frame::Binary(bytes) => Incoming::Binary(bytes),
            Frame::Ping(bytes) => Incoming::Ping(bytes),
            Frame::Pong(bytes) => Incoming::Pong(bytes),
            Frame::Close(_) => Incoming::Close,
            Frame::Continuation(item) => return self.continuation(item),
        }))
    }

    fn continuation(&mut self, item: Item) -> Option<Result<Incoming, WireError>> {
        let (chunk, last) = match item {
            Item::FirstText(bytes) => {
                self.partial = Some((true, BytesMut::new()));
                (bytes, false)
            }
            Item::FirstBinary(bytes) => {
                self.partial = Some((false, BytesMut::new()));
                (bytes, false)
            }
            Item::Continue(bytes) => (bytes, false),
            Item::Last(bytes) => (bytes, true),
        };
        let Some((text, buf)) = self.partial.as_mut() else {
            return Some(Err(WireError::StrayContinuation));
        };
        if buf.len() + chunk.len() > self.max {
            return Some(Err(WireError::TooLarge(self.max)));
        }
        buf.extend_from_slice(&chunk);
        if !last {
            return None;
        }
        let text = *text;
        let (_, buf) = self.partial.take()?;
        let bytes = buf.freeze();
        Some(Ok(if text {
            Incoming::Text(bytes)
        } else {
            Incoming::Binary(bytes)
        }))
    }
}

/// The response body: the outbox's messages as frames, each event finished with its
/// subscription's `uid`. When the session closes the outbox the body ends with a close frame;
/// a slow consumer (policy `disconnect`) gets close code 1008 and the session is stopped; a
/// stopping server's clients get 1001.
pub fn outgoing(
    outbox: Arc<Outbox>,
    uids: Uids,
    stop: Recipient<Stop>,
) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> {
    let writer = Writer {
        outbox,
        uids,
        stop,
        codec: Codec::new(),
        ended: false,
    };
    futures_util::stream::unfold(writer, |mut writer| async move {
        let bytes = writer.next().await?;
        Some((Ok(bytes), writer))
    })
}

struct Writer {
    outbox: Arc<Outbox>,
    uids: Uids,
    stop: Recipient<Stop>,
    codec: Codec,
    ended: bool,
}

impl Writer {
    async fn next(&mut self) -> Option<Bytes> {
        if self.ended {
            return None;
        }
        let mut buf = BytesMut::new();
        loop {
            let mut batch = Vec::new();
            match self.outbox.next_batch(&mut batch, BATCH).await {
                Ok(()) => {}
                Err(Overflowed::Closed) => {
                    self.ended = true;
                    let reason = self.outbox.close_reason().map(|(code, description)| CloseReason {
                        code: CloseCode::from(code),
                        description: Some(description.into()),
                    });
                    self.encode(Message::Close(reason), &mut buf);
                    return Some(buf.freeze());
                }
                Err(Overflowed::SlowConsumer) => {
                    self.ended = true;
                    self.stop.do_send(Stop);
                    let reason = CloseReason {
                        code: CloseCode::Policy,
                        description: Some("slow consumer".into()),
                    };
                    self.encode(Message::Close(Some(reason)), &mut buf);
                    return Some(buf.freeze());
                }
                Err(Overflowed::ShuttingDown) => {
                    self.ended = true;
                    let reason = CloseReason {
                        code: CloseCode::Away,
                        description: Some("server shutting down".into()),
                    };
                    self.encode(Message::Close(Some(reason)), &mut buf);
                    return Some(buf.freeze());
                }
            }
            for item in batch {
                let message = match item {
                    Outgoing::Text(text) => Message::Text(ByteString::from(text)),
                    Outgoing::Pong(bytes) => Message::Pong(bytes),
                    Outgoing::Ping(bytes) => Message::Ping(bytes),
                    Outgoing::Event(sub, event) => {
                        let uids = self.uids.borrow();
                        let Some(uid) = uids.get(&sub) else { continue };
                        // The group's text and this subscriber's uid go straight into the
                        // frame: no per-subscriber string in between.
                        text_frame(&event.closed_parts(uid.as_deref()), &mut buf);
                        continue;
                    }
                    Outgoing::Refetch {
                        sub,
                        collection,
                        reason,
                        lsn,
                    } => {
                        let uids = self.uids.borrow();
                        let Some(uid) = uids.get(&sub) else { continue };
                        Message::Text(ByteString::from(frame::refetch_json(
                            reason,
                            &collection,
                            lsn,
                            uid.as_deref(),
                        )))
                    }
                };
                self.encode(message, &mut buf);
            }
            // Everything in the batch belonged to subscriptions since dropped: wait again.
            if !buf.is_empty() {
                return Some(buf.freeze());
            }
        }
    }

    fn encode(&mut self, message: Message, buf: &mut BytesMut) {
        // Server frames are unmasked and any size is representable: encoding cannot fail.
        if let Err(err) = self.codec.encode(message, buf) {
            tracing::warn!(error = %err, "websocket frame not encoded");
        }
    }
}

/// A final, unmasked text frame (as a server sends) whose payload is `parts` joined.
pub fn text_frame(parts: &[&str], buf: &mut BytesMut) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    buf.reserve(len + 10);
    buf.put_u8(0x81);
    if len < 126 {
        buf.put_u8(len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        buf.put_u8(126);
        buf.put_u16(len);
    } else {
        buf.put_u8(127);
        buf.put_u64(len as u64);
    }
    for part in parts {
        buf.extend_from_slice(part.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    /// `messages` as a client would send them, masked, cut into `chunk`-byte reads.
    fn read(messages_in: Vec<Message>, chunk: usize, max: usize) -> Vec<Result<Incoming, WireError>> {
        let mut codec = Codec::new().client_mode();
        let mut wire = BytesMut::new();
        for message in messages_in {
            codec.encode(message, &mut wire).unwrap();
        }
        let reads: Vec<Result<Bytes, PayloadError>> = wire
            .chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let stream = messages(futures_util::stream::iter(reads), max);
        block_on(stream.collect())
    }

    fn text(item: &Result<Incoming, WireError>) -> String {
        match item {
            Ok(Incoming::Text(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            other => panic!("not text: {other:?}"),
        }
    }

    #[test]
    fn frames_split_across_reads_arrive_whole() {
        let got = read(
            vec![
                Message::Text("{\"type\":\"ping\"}".into()),
                Message::Ping(Bytes::from_static(b"hi")),
            ],
            3,
            1024,
        );
        assert_eq!(got.len(), 2);
        assert_eq!(text(&got[0]), "{\"type\":\"ping\"}");
        assert!(matches!(&got[1], Ok(Incoming::Ping(b)) if &b[..] == b"hi"));
    }

    #[test]
    fn continuations_are_joined() {
        let got = read(
            vec![
                Message::Continuation(Item::FirstText(Bytes::from_static(b"ab"))),
                Message::Ping(Bytes::new()),
                Message::Continuation(Item::Continue(Bytes::from_static(b"cd"))),
                Message::Continuation(Item::Last(Bytes::from_static(b"ef"))),
            ],
            5,
            1024,
        );
        assert!(matches!(got[0], Ok(Incoming::Ping(_))));
        assert_eq!(text(&got[1]), "abcdef");
    }

    #[test]
    fn oversized_frames_and_messages_end_the_stream_with_an_error() {
        let big = read(
            vec![Message::Text("x".repeat(100).into()), Message::Text("y".into())],
            7,
            50,
        );
        assert_eq!(big.len(), 1);
        assert!(matches!(big[0], Err(WireError::Protocol(_))));
        let continued = read(
            vec![
                Message::Continuation(Item::FirstText(Bytes::from(vec![b'a'; 40]))),
                Message::Continuation(Item::Last(Bytes::from(vec![b'b'; 40]))),
                Message::Text("after".into()),
            ],
            64,
            50,
        );
        assert_eq!(continued.len(), 1);
        assert!(matches!(continued[0], Err(WireError::TooLarge(50))));
    }

    #[test]
    fn a_continuation_without_a_start_is_an_error() {
        // FIN + continuation opcode, masked with a zero key, one byte: a client codec
        // refuses to write it, a peer may still send it.
        let frame = Bytes::from_static(&[0x80, 0x81, 0, 0, 0, 0, b'x']);
        let stream = messages(futures_util::stream::iter(vec![Ok(frame)]), 64);
        let got: Vec<_> = block_on(stream.collect());
        assert!(matches!(got[..], [Err(WireError::Protocol(_))]), "{got:?}");
    }

    proptest::proptest! {
        /// Arbitrary bytes from a client never panic the reader, and it always ends.
        #[test]
        fn arbitrary_input_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512), chunk in 1usize..64) {
            let reads: Vec<Result<Bytes, PayloadError>> =
                bytes.chunks(chunk).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
            let stream = messages(futures_util::stream::iter(reads), 128);
            let _: Vec<_> = block_on(stream.collect());
        }

        /// An event framed from its parts is the frame the codec makes of the joined text,
        /// across the 7-, 16- and 64-bit length forms.
        #[test]
        fn text_frames_match_the_codec(len in proptest::prop_oneof![0usize..300, 65_400usize..65_700], cut in 0usize..300, uid in proptest::option::of("[a-z0-9\"]{0,8}")) {
            let text = "x".repeat(len);
            let cut = cut.min(len);
            let parts = match &uid {
                Some(uid) => [&text[..cut], &text[cut..], uid.as_str(), "}"],
                None => [&text[..cut], &text[cut..], "", "}"],
            };
            let mut ours = BytesMut::new();
            text_frame(&parts, &mut ours);
            let mut theirs = BytesMut::new();
            Codec::new()
                .encode(Message::Text(ByteString::from(parts.concat())), &mut theirs)
                .unwrap();
            proptest::prop_assert_eq!(ours, theirs);
        }
    }
}
