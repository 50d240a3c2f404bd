//! Routing at the front-end: each client request goes to the primary of the active view, waits
//! while there is none, is forwarded again after a view change, and its answer is relayed.

use super::{Frontend, MAX_FORWARDS_IN_FLIGHT, MAX_RETRANSMIT_BACKOFF, PendingRequest};
use std::time::Duration;

use crate::ids::{Address, Identity, RequestId, Time, View};
use crate::protocol::MAX_PENDING_REQUESTS;
use crate::protocol::messages::{
    ClientRequest, ClientResponse, Message, Operation, Outcome, ServiceError,
};
use crate::protocol::trust::Refusal;
use crate::state_machine::StateMachine;

impl<S: StateMachine> Frontend<S> {
    pub(super) fn on_request(
        &mut self,
        now: Time,
        from: Address,
        sender: &Identity,
        request: ClientRequest<S>,
    ) {
        if let Operation::Status = request.operation {
            let status = self.cluster_status(now);
            let response = ClientResponse {
                id: request.id,
                outcome: Outcome::Status(status),
            };
            self.answer(from, response, None);
            return;
        }
        let id = request.id;
        if let Some(pending) = self.pending.get_mut(&id) {
            if pending.owner != sender.name {
                // Another identity's request: answering it here would hand over its reply.
                let why = Refusal::ForeignClient {
                    client: id.client.0,
                };
                self.refusals
                    .refuse(&self.config.name, sender, &from, "Request", &why);
                let response = ClientResponse {
                    id,
                    outcome: Outcome::Failed(ServiceError::Forbidden {
                        reason: why.to_string(),
                    }),
                };
                self.answer(from, response, None);
                return;
            }
            // A client's retry: the front-end retransmits what it forwarded on its own
            // schedule, so a retry only says where to answer.
            pending.client = from.clone();
        } else if self.pending.len() >= MAX_PENDING_REQUESTS {
            let response = ClientResponse {
                id,
                outcome: Outcome::Failed(ServiceError::Overloaded),
            };
            self.answer(from, response, None);
            return;
        } else {
            self.pending.insert(
                id,
                PendingRequest {
                    client: from.clone(),
                    owner: sender.name.clone(),
                    request,
                    arrived: now,
                    forwarded: None,
                    sends: 0,
                },
            );
            self.waiting.push_back(id);
        }
        if let Some(reason) = self.unavailable.clone() {
            let response = ClientResponse {
                id,
                outcome: Outcome::Failed(ServiceError::Unavailable { reason }),
            };
            self.answer(from, response, None);
        }
        self.forward_waiting(now);
    }

    /// Forwards waiting requests to the active primary while the forwarding window has room.
    pub(super) fn forward_waiting(&mut self, now: Time) {
        let Some(view) = self.active_view().cloned() else {
            return;
        };
        let mut sends = Vec::new();
        while self.in_flight < MAX_FORWARDS_IN_FLIGHT
            && let Some(id) = self.waiting.pop_front()
        {
            if let Some(p) = self.pending.get_mut(&id)
                && p.forwarded.is_none()
            {
                p.forwarded = Some((view.number, now));
                p.sends = 1;
                self.in_flight += 1;
                sends.push((p.request.clone(), p.owner.clone()));
            }
        }
        self.send_forwards(&view, sends);
    }

    /// Forwards again to the active primary every forwarded request not forwarded in its view
    /// or (unless `all`) due for retransmission, then fills the window with waiting ones. At
    /// most [`MAX_FORWARDS_IN_FLIGHT`] requests are ever forwarded and unanswered, so a burst
    /// of requests cannot make the front-end send the primary more than it can take, nor
    /// retransmit all of it every interval while the primary works through it (issue 13).
    pub(super) fn forward_pending(&mut self, now: Time, all: bool) {
        let Some(view) = self.active_view().cloned() else {
            return;
        };
        let retransmit = self.config.timing.retransmit_interval;
        let mut sends = Vec::new();
        for p in self.pending.values_mut() {
            let Some((v, at)) = p.forwarded else {
                continue;
            };
            let backoff = 1u32
                << p.sends
                    .saturating_sub(1)
                    .min(MAX_RETRANSMIT_BACKOFF.ilog2());
            let due = all || v != view.number || now.saturating_since(at) >= retransmit * backoff;
            if due {
                p.sends = if v == view.number {
                    p.sends.saturating_add(1)
                } else {
                    1
                };
                p.forwarded = Some((view.number, now));
                sends.push((p.request.clone(), p.owner.clone()));
            }
        }
        self.send_forwards(&view, sends);
        self.forward_waiting(now);
    }

    pub(super) fn send_forwards(&mut self, view: &View, sends: Vec<(ClientRequest<S>, String)>) {
        for (request, owner) in sends {
            self.send(
                view.primary.address.clone(),
                Message::Forward {
                    view: view.number,
                    request,
                    owner,
                },
            );
        }
    }

    /// Takes `id` off the pending requests, freeing its place in the forwarding window.
    pub(super) fn take_pending(&mut self, id: &RequestId) -> Option<PendingRequest<S>> {
        let p = self.pending.remove(id)?;
        if p.forwarded.is_some() {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        Some(p)
    }

    pub(super) fn on_response(&mut self, now: Time, response: ClientResponse<S>) {
        if let Outcome::Failed(ServiceError::NotPrimary { .. }) = response.outcome {
            if let Some(p) = self.pending.get_mut(&response.id)
                && p.forwarded.take().is_some()
            {
                self.in_flight = self.in_flight.saturating_sub(1);
                self.waiting.push_front(response.id);
            }
            return;
        }
        self.last_answer_at = Some(now);
        if let Some(p) = self.take_pending(&response.id) {
            let latency = now.saturating_since(p.arrived);
            self.answer(p.client, response, Some(latency));
        }
        self.forward_waiting(now);
    }

    /// Sends `response` to a client and counts it
    /// ([`FrontendStats`](crate::protocol::stats::FrontendStats)); `latency` is the time
    /// since its request arrived, for a final answer to a pending request.
    fn answer(&mut self, to: Address, response: ClientResponse<S>, latency: Option<Duration>) {
        self.stats.answered(&response.outcome, latency);
        self.send(to, Message::Response(response));
    }
}
