//! The WebSocket ceiling: a bare actix-ws server, with the proxy's worker
//! count, that holds the same clients and broadcasts each `POST /broadcast`
//! body to all of them through a bounded queue per connection, as the
//! proxy does, with nothing behind it (no broker, no per-message work).

use std::{
    net::TcpListener,
    sync::{Arc, Mutex},
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use actix_ws::AggregatedMessage;
use bytestring::ByteString;
use futures::StreamExt;
use tokio::sync::mpsc;

type Registry = Arc<Mutex<Vec<mpsc::Sender<ByteString>>>>;

async fn connect(
    request: HttpRequest,
    body: web::Payload,
    registry: web::Data<Registry>,
) -> actix_web::Result<HttpResponse> {
    let (response, mut session, stream) = actix_ws::handle(&request, body)?;
    let mut stream = stream.aggregate_continuations();
    let (queue, mut outbound) = mpsc::channel::<ByteString>(1024);
    registry.lock().expect("registry").push(queue.clone());
    let mut writer = session.clone();
    actix_web::rt::spawn(async move {
        while let Some(frame) = outbound.recv().await {
            if writer.text(frame).await.is_err() {
                return;
            }
        }
    });
    actix_web::rt::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            match message {
                AggregatedMessage::Text(_) => {
                    let _ = queue
                        .send(ByteString::from_static(
                            r#"{"action":"subscribed","from":0}"#,
                        ))
                        .await;
                }
                AggregatedMessage::Ping(bytes) => {
                    let _ = session.pong(&bytes).await;
                }
                AggregatedMessage::Close(_) => return,
                _ => {}
            }
        }
    });
    Ok(response)
}

async fn broadcast(body: web::Bytes, registry: web::Data<Registry>) -> HttpResponse {
    let Ok(frame) = ByteString::try_from(body) else {
        return HttpResponse::BadRequest().finish();
    };
    let queues = registry.lock().expect("registry").clone();
    for queue in &queues {
        let _ = queue.try_send(frame.clone());
    }
    HttpResponse::Ok().finish()
}

/// Serves until killed.
pub fn serve(listen: &str) -> std::io::Result<()> {
    actix_web::rt::System::new().block_on(async {
        let listener = TcpListener::bind(listen)?;
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let registry: Registry = Arc::default();
        let registry = web::Data::new(registry);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(registry.clone())
                .route("/ws", web::get().to(connect))
                .route("/broadcast", web::post().to(broadcast))
        })
        .workers(workers)
        .listen(listener)?;
        println!("bare-ws listening on {}", server.addrs()[0]);
        server.run().await
    })
}
