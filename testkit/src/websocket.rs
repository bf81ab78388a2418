//! A small WebSocket (RFC 6455) codec shared by the echo backend and the test client.
//!
//! Only what tests need: the `Sec-WebSocket-Accept` computation, reading frames (with continuation
//! reassembly into whole messages), and writing single-frame messages, masked (client side) or not
//! (server side). No extensions, no compression. The client that uses it lives in
//! [`crate::client::WebSocketClient`].

use base64::Engine as _;
use sha1::{Digest as _, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// The GUID that RFC 6455 §1.3 appends to the client key.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Largest message the codec accepts (tests send small frames; this keeps a bad peer from exhausting memory).
pub const MAX_MESSAGE_LEN: usize = 16 * 1024 * 1024;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// One WebSocket message (data messages are reassembled from their fragments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A UTF-8 text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping control frame with its payload.
    Ping(Vec<u8>),
    /// A pong control frame with its payload.
    Pong(Vec<u8>),
    /// A close frame: status code (if any) and reason.
    Close(Option<u16>, String),
}

/// Errors of the codec.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    /// Reading or writing the underlying stream failed (includes EOF in the middle of a frame).
    #[error("websocket I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent something RFC 6455 does not allow.
    #[error("websocket protocol violation: {0}")]
    Protocol(String),
}

/// `Sec-WebSocket-Accept` for a given `Sec-WebSocket-Key`: base64(SHA-1(key + GUID)).
pub fn accept_key(client_key: &str) -> String {
    let mut hasher = Sha1::new();
    hasher.update(client_key.trim().as_bytes());
    hasher.update(ACCEPT_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(hasher.finalize())
}

/// A fresh random `Sec-WebSocket-Key` (16 random bytes, base64).
pub fn new_client_key() -> String {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Fills `out` with unpredictable bytes from the standard library's randomly seeded hasher
/// (good enough for masking keys and handshake nonces in tests; not for cryptography).
fn fill_random(out: &mut [u8]) {
    use std::hash::{BuildHasher as _, Hasher as _};
    for chunk in out.chunks_mut(8) {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0x9e37_79b9_7f4a_7c15);
        let bytes = hasher.finish().to_le_bytes();
        for (dst, src) in chunk.iter_mut().zip(bytes.iter()) {
            *dst = *src;
        }
    }
}

struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_len: usize,
) -> Result<Frame, WsError> {
    let mut head = [0u8; 2];
    reader.read_exact(&mut head).await?;
    let [b0, b1] = head;
    if b0 & 0x70 != 0 {
        return Err(WsError::Protocol(
            "reserved bits set without a negotiated extension".into(),
        ));
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    let masked = b1 & 0x80 != 0;
    let len = match b1 & 0x7F {
        126 => u64::from(reader.read_u16().await?),
        127 => reader.read_u64().await?,
        n => u64::from(n),
    };
    let len = usize::try_from(len)
        .ok()
        .filter(|l| *l <= max_len)
        .ok_or_else(|| {
            WsError::Protocol(format!(
                "frame of {len} bytes exceeds the limit of {max_len}"
            ))
        })?;
    let mut mask = [0u8; 4];
    if masked {
        reader.read_exact(&mut mask).await?;
    }
    let mut payload = vec![0u8; len];
    reader.read_exact(&mut payload).await?;
    if masked {
        apply_mask(&mut payload, mask);
    }
    if opcode >= 0x8 && (!fin || len > 125) {
        return Err(WsError::Protocol(
            "fragmented or oversized control frame".into(),
        ));
    }
    Ok(Frame {
        fin,
        opcode,
        payload,
    })
}

fn apply_mask(payload: &mut [u8], mask: [u8; 4]) {
    for (byte, key) in payload.iter_mut().zip(mask.iter().cycle()) {
        *byte ^= key;
    }
}

/// Reads the next whole message, reassembling fragmented text/binary messages.
/// Control frames that arrive between fragments are returned first (the partial message is dropped then,
/// which is fine for tests).
pub async fn read_message<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Message, WsError> {
    let mut first_opcode: Option<u8> = None;
    let mut data = Vec::new();
    loop {
        let frame = read_frame(reader, MAX_MESSAGE_LEN).await?;
        match frame.opcode {
            OP_CLOSE => {
                let (code, reason) = match frame.payload.get(..2) {
                    Some(&[hi, lo]) => (
                        Some(u16::from_be_bytes([hi, lo])),
                        String::from_utf8_lossy(frame.payload.get(2..).unwrap_or_default())
                            .into_owned(),
                    ),
                    _ => (None, String::new()),
                };
                return Ok(Message::Close(code, reason));
            }
            OP_PING => return Ok(Message::Ping(frame.payload)),
            OP_PONG => return Ok(Message::Pong(frame.payload)),
            OP_TEXT | OP_BINARY | OP_CONTINUATION => {
                match (first_opcode, frame.opcode) {
                    (None, OP_CONTINUATION) => {
                        return Err(WsError::Protocol(
                            "continuation frame without a message".into(),
                        ));
                    }
                    (None, op) => first_opcode = Some(op),
                    (Some(_), OP_CONTINUATION) => {}
                    (Some(_), _) => {
                        return Err(WsError::Protocol(
                            "new data frame inside a fragmented message".into(),
                        ));
                    }
                }
                if data.len() + frame.payload.len() > MAX_MESSAGE_LEN {
                    return Err(WsError::Protocol("message exceeds the size limit".into()));
                }
                data.extend_from_slice(&frame.payload);
                if frame.fin {
                    return if first_opcode == Some(OP_TEXT) {
                        String::from_utf8(data)
                            .map(Message::Text)
                            .map_err(|_| WsError::Protocol("text message is not UTF-8".into()))
                    } else {
                        Ok(Message::Binary(data))
                    };
                }
            }
            other => return Err(WsError::Protocol(format!("unknown opcode {other:#x}"))),
        }
    }
}

/// Writes `message` as one frame. Clients must pass `masked = true` (RFC 6455 §5.3), servers `false`.
pub async fn write_message<W: AsyncWrite + Unpin>(
    writer: &mut W,
    message: &Message,
    masked: bool,
) -> Result<(), WsError> {
    let (opcode, mut payload) = match message {
        Message::Text(t) => (OP_TEXT, t.as_bytes().to_vec()),
        Message::Binary(b) => (OP_BINARY, b.clone()),
        Message::Ping(p) => (OP_PING, p.clone()),
        Message::Pong(p) => (OP_PONG, p.clone()),
        Message::Close(code, reason) => {
            let mut p = Vec::new();
            if let Some(code) = code {
                p.extend_from_slice(&code.to_be_bytes());
                p.extend_from_slice(reason.as_bytes());
            }
            (OP_CLOSE, p)
        }
    };
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | opcode);
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(mask_bit | n as u8),
        n @ 126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        let mut mask = [0u8; 4];
        fill_random(&mut mask);
        out.extend_from_slice(&mask);
        apply_mask(&mut payload, mask);
    }
    out.extend_from_slice(&payload);
    writer.write_all(&out).await?;
    writer.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn client_keys_are_16_bytes_and_differ() {
        let a = new_client_key();
        let b = new_client_key();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&a)
                .unwrap()
                .len(),
            16
        );
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn round_trips_masked_and_unmasked_messages_of_all_length_classes() {
        for masked in [false, true] {
            for len in [0usize, 5, 125, 126, 65535, 65536, 100_000] {
                let msg = Message::Binary((0..len).map(|i| (i % 251) as u8).collect());
                let mut buf = Vec::new();
                write_message(&mut buf, &msg, masked).await.unwrap();
                assert_eq!(buf.get(1).unwrap() & 0x80 != 0, masked);
                let got = read_message(&mut buf.as_slice()).await.unwrap();
                assert_eq!(got, msg);
            }
        }
        let mut buf = Vec::new();
        write_message(&mut buf, &Message::Text("héllo".into()), true)
            .await
            .unwrap();
        write_message(&mut buf, &Message::Close(Some(1000), "bye".into()), true)
            .await
            .unwrap();
        let mut r = buf.as_slice();
        assert_eq!(
            read_message(&mut r).await.unwrap(),
            Message::Text("héllo".into())
        );
        assert_eq!(
            read_message(&mut r).await.unwrap(),
            Message::Close(Some(1000), "bye".into())
        );
    }

    #[tokio::test]
    async fn reassembles_fragments() {
        // "Hel" (text, not fin) + "lo" (continuation, fin), unmasked: RFC 6455 §5.7 example.
        let bytes = [0x01, 0x03, b'H', b'e', b'l', 0x80, 0x02, b'l', b'o'];
        let got = read_message(&mut &bytes[..]).await.unwrap();
        assert_eq!(got, Message::Text("Hello".into()));
    }

    #[tokio::test]
    async fn rejects_reserved_bits_and_truncated_frames() {
        let bad = [0xC1, 0x00];
        assert!(matches!(
            read_message(&mut &bad[..]).await,
            Err(WsError::Protocol(_))
        ));
        let truncated = [0x81, 0x05, b'a'];
        assert!(matches!(
            read_message(&mut &truncated[..]).await,
            Err(WsError::Io(_))
        ));
    }
}
