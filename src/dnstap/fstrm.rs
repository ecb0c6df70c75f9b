//! Frame Streams, the writer's side of a bidirectional stream: the small transport that
//! dnstap runs over (READY → ACCEPT → START, data frames, STOP → FINISH). Our own
//! module because no Rust crate we keep speaks it, and the part a writer needs is a few
//! big-endian words: a data frame is its length then its bytes; a control frame is an
//! escape (a zero length), its own length, its type, and content-type fields.

use std::io::{self, Read, Write};

/// The content type dnstap streams carry.
pub(crate) const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";

/// Control frame types.
pub(crate) const ACCEPT: u32 = 0x01;
pub(crate) const START: u32 = 0x02;
pub(crate) const STOP: u32 = 0x03;
pub(crate) const READY: u32 = 0x04;
pub(crate) const FINISH: u32 = 0x05;
/// The one control field type: a content type.
const FIELD_CONTENT_TYPE: u32 = 0x01;
/// The longest control frame a reader may send (the Frame Streams limit).
const MAX_CONTROL: usize = 512;

/// Appends a control frame of `kind`, with `content_type` as its one field when given.
pub(crate) fn control(kind: u32, content_type: Option<&[u8]>, out: &mut Vec<u8>) {
    let fields = content_type.map_or(0, |c| 8 + c.len());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&((4 + fields) as u32).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    if let Some(c) = content_type {
        out.extend_from_slice(&FIELD_CONTENT_TYPE.to_be_bytes());
        out.extend_from_slice(&(c.len() as u32).to_be_bytes());
        out.extend_from_slice(c);
    }
}

/// A control frame read from the reader: its type and content types.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Control {
    pub(crate) kind: u32,
    pub(crate) content_types: Vec<Vec<u8>>,
}

/// Reads one control frame (a reader sends nothing else to a writer).
pub(crate) fn read_control(r: &mut impl Read) -> io::Result<Control> {
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_string());
    let mut word = [0u8; 4];
    r.read_exact(&mut word)?;
    if u32::from_be_bytes(word) != 0 {
        return Err(bad("the collector sent a data frame"));
    }
    r.read_exact(&mut word)?;
    let len = u32::from_be_bytes(word) as usize;
    if !(4..=MAX_CONTROL).contains(&len) {
        return Err(bad("the collector sent a malformed control frame"));
    }
    let mut frame = vec![0u8; len];
    r.read_exact(&mut frame)?;
    let kind = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
    let mut content_types = Vec::new();
    let mut rest = &frame[4..];
    while !rest.is_empty() {
        let (Some(t), Some(n)) = (rest.get(..4), rest.get(4..8)) else {
            return Err(bad("the collector sent a truncated control field"));
        };
        let n = u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize;
        let Some(value) = rest.get(8..8 + n) else {
            return Err(bad("the collector sent a truncated control field"));
        };
        if u32::from_be_bytes([t[0], t[1], t[2], t[3]]) == FIELD_CONTENT_TYPE {
            content_types.push(value.to_vec());
        }
        rest = &rest[8 + n..];
    }
    Ok(Control {
        kind,
        content_types,
    })
}

/// Opens a bidirectional stream: READY with our content type, the reader's ACCEPT
/// naming it, then START.
pub(crate) fn handshake(s: &mut (impl Read + Write)) -> io::Result<()> {
    let mut out = Vec::with_capacity(64);
    control(READY, Some(CONTENT_TYPE), &mut out);
    s.write_all(&out)?;
    let reply = read_control(s)?;
    if reply.kind != ACCEPT {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the collector answered READY with control frame {}",
                reply.kind
            ),
        ));
    }
    if !reply.content_types.iter().any(|c| c == CONTENT_TYPE) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the collector does not accept protobuf:dnstap.Dnstap",
        ));
    }
    out.clear();
    control(START, Some(CONTENT_TYPE), &mut out);
    s.write_all(&out)
}

/// Closes a stream: STOP, then the reader's FINISH (within the stream's read timeout).
pub(crate) fn stop(s: &mut (impl Read + Write)) -> io::Result<()> {
    let mut out = Vec::with_capacity(12);
    control(STOP, None, &mut out);
    s.write_all(&out)?;
    s.flush()?;
    let reply = read_control(s)?;
    if reply.kind != FINISH {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the collector answered STOP with control frame {}",
                reply.kind
            ),
        ));
    }
    Ok(())
}
