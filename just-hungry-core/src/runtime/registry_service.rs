//! The service a running registry decodes its messages as: none.
//!
//! The registry's messages (`Register`, `Lookup` and their answers) hold only names and
//! addresses, and encode the same in every service's [`Message`](crate::protocol::messages::Message):
//! a message's variant and fields, never the service's types. The driver still needs one
//! [`StateMachine`] to decode into; this one has no values at all, so a message that carries a
//! command, reply, query or state of some service fails to decode, and only the registry's own
//! messages reach it.

use serde::{Deserialize, Serialize};

use crate::state_machine::{ApplyContext, StateMachine};

/// A service with no state and no commands: no value of it, or of its payloads, exists.
#[derive(Serialize, Deserialize)]
pub(super) enum NoService {}

/// No command, reply, query or answer exists.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) enum Nothing {}

impl StateMachine for NoService {
    type Command = Nothing;
    type Reply = Nothing;
    type Query = Nothing;
    type QueryReply = Nothing;

    const SERVICE: &'static str = "just-hungry/registry";

    fn apply(&mut self, _context: &ApplyContext, command: &Nothing) -> Nothing {
        match *command {}
    }

    fn query(&self, query: &Nothing) -> Nothing {
        match *query {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use crate::ids::Address;
    use crate::protocol::messages::Message;
    use crate::sim::KeyedLists;

    #[test]
    fn the_registrys_messages_decode_whatever_service_sent_them() {
        let register: Message<KeyedLists> = Message::Register {
            name: "replica-1".into(),
            address: Address("127.0.0.1:7001".into()),
        };
        let bytes = codec::encode(&register).unwrap();
        let decoded = codec::decode::<Message<NoService>>(&bytes).unwrap();
        assert!(matches!(decoded, Message::Register { name, .. } if name == "replica-1"));
        let lookup: Message<KeyedLists> = Message::Lookup {
            name: "just-hungry/frontend".into(),
        };
        let bytes = codec::encode(&lookup).unwrap();
        let decoded = codec::decode::<Message<NoService>>(&bytes).unwrap();
        assert!(matches!(decoded, Message::Lookup { name } if name == "just-hungry/frontend"));
    }
}
