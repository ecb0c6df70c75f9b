//! The dnstap protobuf schema (`dnstap.proto` of the dnstap project, proto2), the part
//! gslbd writes, as prost-derive structs written by hand: no build script and no
//! `protoc`. Every tag is the official schema's; `Policy` and `http_protocol` are left
//! out (an authoritative server has nothing to put there), which protobuf allows.

use std::net::IpAddr;

use prost::Message as _;

use super::pool::Slot;

/// `dnstap.Dnstap`: one event, with the server's identity and version.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dnstap {
    /// The server's identity (its host name).
    #[prost(bytes = "vec", optional, tag = "1")]
    pub identity: Option<Vec<u8>>,
    /// The server's version (`gslbd x.y.z`).
    #[prost(bytes = "vec", optional, tag = "2")]
    pub version: Option<Vec<u8>>,
    /// Free-form annotation (unused).
    #[prost(bytes = "vec", optional, tag = "3")]
    pub extra: Option<Vec<u8>>,
    /// Which payload follows: always [`DnstapType::Message`].
    #[prost(enumeration = "DnstapType", required, tag = "15")]
    pub r#type: i32,
    /// The payload.
    #[prost(message, optional, tag = "14")]
    pub message: Option<Message>,
}

/// `dnstap.Dnstap.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DnstapType {
    /// A `Message` payload.
    Message = 1,
}

/// `dnstap.SocketFamily`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SocketFamily {
    /// IPv4.
    Inet = 1,
    /// IPv6.
    Inet6 = 2,
}

/// `dnstap.SocketProtocol` (the values gslbd serves).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SocketProtocol {
    /// DNS over UDP.
    Udp = 1,
    /// DNS over TCP.
    Tcp = 2,
}

/// `dnstap.Message.Type` (the values an authoritative server sends).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MessageType {
    /// A query received by an authoritative server.
    AuthQuery = 1,
    /// A response sent by an authoritative server.
    AuthResponse = 2,
}

/// `dnstap.Message`: one DNS message and where and when it went.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    /// AUTH_QUERY or AUTH_RESPONSE.
    #[prost(enumeration = "MessageType", required, tag = "1")]
    pub r#type: i32,
    /// INET or INET6.
    #[prost(enumeration = "SocketFamily", optional, tag = "2")]
    pub socket_family: Option<i32>,
    /// UDP or TCP.
    #[prost(enumeration = "SocketProtocol", optional, tag = "3")]
    pub socket_protocol: Option<i32>,
    /// The client's address (4 or 16 bytes).
    #[prost(bytes = "vec", optional, tag = "4")]
    pub query_address: Option<Vec<u8>>,
    /// The server's address (4 or 16 bytes).
    #[prost(bytes = "vec", optional, tag = "5")]
    pub response_address: Option<Vec<u8>>,
    /// The client's port.
    #[prost(uint32, optional, tag = "6")]
    pub query_port: Option<u32>,
    /// The server's port.
    #[prost(uint32, optional, tag = "7")]
    pub response_port: Option<u32>,
    /// When the query arrived: seconds since the Unix epoch.
    #[prost(uint64, optional, tag = "8")]
    pub query_time_sec: Option<u64>,
    /// ... and nanoseconds.
    #[prost(fixed32, optional, tag = "9")]
    pub query_time_nsec: Option<u32>,
    /// The query, verbatim.
    #[prost(bytes = "vec", optional, tag = "10")]
    pub query_message: Option<Vec<u8>>,
    /// The zone of the query (for resolvers' messages; unused here).
    #[prost(bytes = "vec", optional, tag = "11")]
    pub query_zone: Option<Vec<u8>>,
    /// When the response was sent: seconds since the Unix epoch.
    #[prost(uint64, optional, tag = "12")]
    pub response_time_sec: Option<u64>,
    /// ... and nanoseconds.
    #[prost(fixed32, optional, tag = "13")]
    pub response_time_nsec: Option<u32>,
    /// The response, verbatim.
    #[prost(bytes = "vec", optional, tag = "14")]
    pub response_message: Option<Vec<u8>>,
}

/// Encodes slots as dnstap events, reusing its buffers from one event to the next.
#[derive(Debug)]
pub(crate) struct Encoder {
    event: Dnstap,
}

impl Encoder {
    /// An encoder whose events carry `identity` and `version`.
    pub(crate) fn new(identity: &str, version: &str) -> Encoder {
        Encoder {
            event: Dnstap {
                identity: Some(identity.as_bytes().to_vec()),
                version: Some(version.as_bytes().to_vec()),
                extra: None,
                r#type: DnstapType::Message as i32,
                message: Some(Message::default()),
            },
        }
    }

    /// Appends the AUTH_QUERY event of `slot`, then its AUTH_RESPONSE event when it has
    /// a response, each as one Frame Streams data frame; returns how many events.
    pub(crate) fn frames(&mut self, slot: &Slot, out: &mut Vec<u8>) -> u64 {
        let (query, response) = slot.bytes.split_at(slot.query_len);
        let m = self.event.message.get_or_insert_with(Message::default);
        let (family, addr) = match slot.client.ip() {
            IpAddr::V4(a) => (SocketFamily::Inet, &a.octets()[..]),
            IpAddr::V6(a) => (SocketFamily::Inet6, &a.octets()[..]),
        };
        m.r#type = MessageType::AuthQuery as i32;
        m.socket_family = Some(family as i32);
        m.socket_protocol = Some(if slot.tcp {
            SocketProtocol::Tcp
        } else {
            SocketProtocol::Udp
        } as i32);
        set(&mut m.query_address, Some(addr));
        m.query_port = Some(u32::from(slot.client.port()));
        m.query_time_sec = Some(slot.query_time.0);
        m.query_time_nsec = Some(slot.query_time.1);
        set(&mut m.query_message, Some(query));
        m.response_time_sec = None;
        m.response_time_nsec = None;
        set(&mut m.response_message, None);
        self.frame(out);
        if !slot.responded {
            return 1;
        }
        // As other senders do (BIND, Knot), the response event repeats the client's
        // address, port and query time (so a reader can pair the two), and carries the
        // response instead of the query.
        let m = self.event.message.get_or_insert_with(Message::default);
        m.r#type = MessageType::AuthResponse as i32;
        set(&mut m.query_message, None);
        m.response_time_sec = Some(slot.response_time.0);
        m.response_time_nsec = Some(slot.response_time.1);
        set(&mut m.response_message, Some(response));
        self.frame(out);
        2
    }

    /// Appends the current event as a data frame: its length (big-endian u32), then it.
    fn frame(&self, out: &mut Vec<u8>) {
        let len = self.event.encoded_len();
        out.extend_from_slice(&(len as u32).to_be_bytes());
        // Writing into a Vec cannot run out of room.
        let _ = self.event.encode(out);
    }
}

/// Sets an optional bytes field, reusing its buffer when it has one.
fn set(field: &mut Option<Vec<u8>>, value: Option<&[u8]>) {
    match value {
        None => *field = None,
        Some(bytes) => {
            let v = field.get_or_insert_with(Vec::new);
            v.clear();
            v.extend_from_slice(bytes);
        }
    }
}
