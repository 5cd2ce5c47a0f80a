//! Requests in flight per connection. An HTTP/1.1 connection carries one
//! request at a time, but HTTP/2 (offered with HTTPS) multiplexes streams,
//! and actix-web sets no limit on them: each connection gets a budget of
//! `--http2-max-streams` permits, and a request beyond it is answered 429
//! at once, so one client cannot hold unbounded work and body buffers on a
//! single connection.

use std::{any::Any, sync::Arc};

use actix_web::dev::{Extensions, ServiceRequest};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ProxyError;

/// A connection's budget of requests in flight.
#[derive(Clone)]
struct Budget(Arc<Semaphore>);

/// Gives each new connection its budget (`HttpServer::on_connect`).
pub fn on_connect(max_streams: usize) -> impl Fn(&dyn Any, &mut Extensions) + Send + Sync {
    move |_, extensions| {
        extensions.insert(Budget(Arc::new(Semaphore::new(max_streams))));
    }
}

/// A permit for `request`, held until its response is complete; `None`
/// on connections without a budget (plain HTTP/1.1).
pub fn admit(request: &ServiceRequest) -> Result<Option<OwnedSemaphorePermit>, ProxyError> {
    let Some(Budget(budget)) = request.conn_data::<Budget>() else {
        return Ok(None);
    };
    budget.clone().try_acquire_owned().map(Some).map_err(|_| {
        ProxyError::TooManyRequests(
            "too many requests in flight on this connection (--http2-max-streams); wait for answers or open another".into(),
        )
    })
}
