//! What the consumer hands committed transactions to: [`Deliver`], and [`Discard`], a sink
//! that drops them, standing in until the feed hub exists.

use std::sync::Arc;

use actix::prelude::*;

use crate::core::realtime::Committed;

/// One committed transaction with user-collection changes. The consumer awaits the send, so
/// once it returns the transaction is the receiver's; only then is its position confirmed.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Deliver(pub Arc<Committed>);

/// The slot had to be created again while this process streamed it (someone dropped it, or
/// it was invalidated): changes committed before `from` that were not delivered are gone. Sent
/// (and awaited) before anything from the new slot is delivered, so every subscriber is told
/// to refetch before it sees a change past the gap.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Recreated {
    pub from: crate::core::pgoutput::Lsn,
}

/// Accepts and drops every [`Deliver`]: lets the consumer run (and the slot advance) before
/// there is anything to feed.
#[derive(Debug, Default)]
pub struct Discard;

impl Actor for Discard {
    type Context = Context<Self>;
}

impl Handler<Deliver> for Discard {
    type Result = ();

    fn handle(&mut self, _: Deliver, _: &mut Context<Self>) {}
}
