//! Accepts everything and keeps nothing: the exporter for benchmarks and capacity tests, so a
//! measurement sees Weir's own cost without a destination's.

use crate::exporter::{Encoded, ExportError, Exporter};
use weir_pipeline::{Batch, Signal};

#[derive(Debug, Default)]
pub struct Blackhole;

impl<S: Signal> Exporter<S> for Blackhole {
    type Request = ();

    fn kind(&self) -> &'static str {
        "blackhole"
    }

    fn encode(&self, batch: Batch<S>) -> Result<Vec<Encoded<()>>, ExportError> {
        Ok(vec![Encoded {
            request: (),
            items: batch.items(),
            bytes: 0,
        }])
    }

    async fn send(&self, _request: &()) -> Result<(), ExportError> {
        Ok(())
    }
}
