//! Real HTTP receivers for the delivery tests: actix-web servers on
//! loopback ports of their own.

use std::net::TcpListener;

/// Binds a loopback port, starts the server `build` makes on it, and
/// returns its base URL.
pub fn spawn_on_loopback(
    build: impl FnOnce(TcpListener) -> std::io::Result<actix_web::dev::Server>,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    actix_rt::spawn(build(listener).expect("the receiver starts"));
    format!("http://{addr}")
}
