//! The HTTP ceiling: a bare actix-web server that reads the body and answers
//! 200, with the proxy's worker count, measured in the same run.

use std::net::TcpListener;

use actix_web::{App, HttpResponse, HttpServer, web};

async fn accept(body: web::Bytes) -> HttpResponse {
    // Touch the body so it is read, as the proxy reads it.
    HttpResponse::Ok().body(format!("{{\"len\":{}}}", body.len()))
}

/// Serves until killed.
pub fn serve(listen: &str) -> std::io::Result<()> {
    actix_web::rt::System::new().block_on(async {
        let listener = TcpListener::bind(listen)?;
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let server = HttpServer::new(|| {
            App::new()
                .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
                .default_service(web::post().to(accept))
        })
        .workers(workers)
        .listen(listener)?;
        println!("bare-http listening on {}", server.addrs()[0]);
        server.run().await
    })
}
