//! The outbox's records as they lie in the store: a message with its kind and creation time, and a dead
//! letter with its reason.

use super::{now_ms, RECORD_VERSION};

/// What a message is (for stats and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Event,
    Snapshot,
    Alert,
    /// The result of a command from the platform.
    Result,
    /// A period's flow counts.
    Counts,
    /// An alert disposed of.
    Disposition,
    /// A clip kept, or a chunk of one the platform asked for.
    Clip,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::Event => 1,
            Kind::Snapshot => 2,
            Kind::Alert => 3,
            Kind::Result => 4,
            Kind::Counts => 5,
            Kind::Disposition => 6,
            Kind::Clip => 7,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(Kind::Event),
            2 => Some(Kind::Snapshot),
            3 => Some(Kind::Alert),
            4 => Some(Kind::Result),
            5 => Some(Kind::Counts),
            6 => Some(Kind::Disposition),
            7 => Some(Kind::Clip),
            _ => None,
        }
    }
}

/// One message waiting for the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub kind: Kind,
    pub topic: String,
    pub payload: Vec<u8>,
    /// Milliseconds since the Unix epoch when the message was made.
    pub created_ms: u64,
}

impl Message {
    pub fn new(kind: Kind, topic: String, payload: Vec<u8>) -> Self {
        Self { kind, topic, payload, created_ms: now_ms() }
    }

    /// `[version][kind][created_ms: u64 LE][topic_len: u16 LE][topic][payload]`.
    pub(super) fn encode(&self) -> Vec<u8> {
        let topic = self.topic.as_bytes();
        let topic_len = topic.len().min(u16::MAX as usize);
        let mut out = Vec::with_capacity(12 + topic_len + self.payload.len());
        out.push(RECORD_VERSION);
        out.push(self.kind.code());
        out.extend_from_slice(&self.created_ms.to_le_bytes());
        out.extend_from_slice(&(topic_len as u16).to_le_bytes());
        out.extend_from_slice(&topic[..topic_len]);
        out.extend_from_slice(&self.payload);
        out
    }

    pub(super) fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < 12 || bytes[0] != RECORD_VERSION {
            return None;
        }
        let kind = Kind::from_code(bytes[1])?;
        let created_ms = u64::from_le_bytes(bytes[2..10].try_into().ok()?);
        let topic_len = u16::from_le_bytes(bytes[10..12].try_into().ok()?) as usize;
        let topic = std::str::from_utf8(bytes.get(12..12 + topic_len)?).ok()?.to_string();
        Some(Self { kind, topic, payload: bytes[12 + topic_len..].to_vec(), created_ms })
    }

    /// Bytes this message takes in the store (for the size bound).
    pub fn stored_len(&self) -> u64 {
        12 + self.topic.len() as u64 + self.payload.len() as u64
    }
}

/// A message moved aside because it can never be delivered as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub key: u64,
    pub reason: String,
    /// When it was moved aside, milliseconds since the epoch.
    pub dead_at_ms: u64,
    pub message: Message,
}

impl DeadLetter {
    pub(super) fn encode(&self) -> Vec<u8> {
        let reason = &self.reason.as_bytes()[..self.reason.len().min(1024)];
        let mut out = Vec::with_capacity(10 + reason.len() + 12 + self.message.topic.len() + self.message.payload.len());
        out.extend_from_slice(&self.dead_at_ms.to_le_bytes());
        out.extend_from_slice(&(reason.len() as u16).to_le_bytes());
        out.extend_from_slice(reason);
        out.extend_from_slice(&self.message.encode());
        out
    }

    pub(super) fn decode(key: u64, bytes: &[u8]) -> Option<Self> {
        let dead_at_ms = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
        let len = u16::from_le_bytes(bytes.get(8..10)?.try_into().ok()?) as usize;
        let reason = String::from_utf8_lossy(bytes.get(10..10 + len)?).into_owned();
        let message = Message::decode(bytes.get(10 + len..)?)?;
        Some(Self { key, reason, dead_at_ms, message })
    }
}
