//! Depot's HTTP proxy: the front door for curl users, batch producers and
//! browsers. Stateless, so any number can run against one broker.
//!
//! A request goes: [`routes`] (parse, authenticate with [`tokens`]) ->
//! [`coalesce`] (single produces waiting for the same call go together) ->
//! [`broker_link`] (embedded broker or remote over the wire protocol) ->
//! the broker, which checks permissions and persists. [`error`] maps every
//! refusal to a status and a JSON body in one place; [`body`] enforces body
//! limits and decompresses; [`streams`] bounds the requests in flight on an
//! HTTP/2 connection; [`message_view`] is how a stored message looks to
//! clients; [`ws`] serves WebSockets; [`metrics`] counts; [`config`] is the
//! command line; [`startup`] builds the server (HTTP or HTTPS) and stops it
//! on a signal.

pub mod body;
pub mod broker_link;
pub mod coalesce;
pub mod config;
pub mod error;
pub mod message_view;
pub mod metrics;
pub mod places;
pub mod routes;
pub mod startup;
pub mod streams;
pub mod tokens;
pub mod ws;
