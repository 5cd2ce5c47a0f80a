//! The broker's `/metrics` over HTTP (`--metrics-listen`), for Prometheus
//! to scrape a broker that runs without a proxy in the same process.

use actix_web::{App, HttpResponse, HttpServer, web};

use crate::broker::Broker;

/// Serves `GET /metrics` on `listener` with one worker until the actix
/// system stops.
pub fn start(broker: Broker, listener: std::net::TcpListener) -> std::io::Result<()> {
    let server = HttpServer::new(move || {
        let broker = broker.clone();
        App::new().route(
            "/metrics",
            web::get().to(move || {
                let text = broker.metrics_text();
                async move {
                    HttpResponse::Ok()
                        .content_type("text/plain; version=0.0.4")
                        .body(text)
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    actix::spawn(server);
    Ok(())
}
