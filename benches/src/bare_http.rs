//! The HTTP ceiling: a bare actix-web server that reads the body and answers
//! 200, with the proxy's worker count, measured in the same run.

use std::{net::TcpListener, path::PathBuf};

use actix_web::{App, HttpResponse, HttpServer, web};

async fn accept(body: web::Bytes) -> HttpResponse {
    // Touch the body so it is read, as the proxy reads it.
    HttpResponse::Ok().body(format!("{{\"len\":{}}}", body.len()))
}

/// Serves until killed; HTTPS with `tls` (certificate, key), as the proxy
/// does with `--tls-cert`.
pub fn serve(listen: &str, tls: Option<(PathBuf, PathBuf)>) -> std::io::Result<()> {
    actix_web::rt::System::new().block_on(async {
        let listener = TcpListener::bind(listen)?;
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let server = HttpServer::new(|| {
            App::new()
                .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
                .default_service(web::post().to(accept))
        })
        .workers(workers);
        let server = match tls {
            Some((cert, key)) => {
                let config = depot_broker::tls::server_config(&cert, &key)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                server.listen_rustls_0_23(listener, config)?
            }
            None => server.listen(listener)?,
        };
        println!("bare-http listening on {}", server.addrs()[0]);
        server.run().await
    })
}
