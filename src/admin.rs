//! The admin HTTP API (stub: being written).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tracing::info;

use crate::control::Control;

/// Binds the admin address and logs `listening for admin HTTP on ADDR`.
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let l = TcpListener::bind(addr).await.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot listen for admin HTTP on {addr}: {e}"),
        )
    })?;
    info!("listening for admin HTTP on {}", l.local_addr()?);
    Ok(l)
}

/// Serves the admin API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    control: Arc<Control>,
    token: Option<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let _ = (listener, control, token);
    shutdown.await;
    Ok(())
}
