//! The shutdown signal handed to every server and delivery loop. A leaf: it imports nothing from the
//! crate, so the modules that wait on it need not import [`crate::app`], which starts them.

use tokio::sync::watch;

/// Resolves when shutdown begins; cheap to clone into every server.
#[derive(Clone)]
pub struct ShutdownSignal(watch::Receiver<bool>);

impl ShutdownSignal {
    pub fn new() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, ShutdownSignal(rx))
    }

    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}
