//! Loopback servers for tests and benchmarks that need none of the fake's faults (test support
//! only): a ping recorder, a page server tuned for measurement.

use std::net::SocketAddr;

use axum::Router;

/// Serves `app` on an ephemeral 127.0.0.1 port from a thread of its own, for as long as the
/// process lives, and returns its base URL. For test and benchmark servers that need none of
/// [`super::FakeServer`]'s faults.
pub fn serve_in_background(app: Router) -> std::io::Result<String> {
    let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    listener.set_nonblocking(true)?;
    let url = format!("http://{}", listener.local_addr()?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("loopback-server".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                axum::serve(listener, app).await
            })
        })?;
    Ok(url)
}
