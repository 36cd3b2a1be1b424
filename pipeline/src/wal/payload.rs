//! What durable mode stores per record: the batch as one OTLP export request (field 1, repeated
//! resources, the same for all three signals), encoded from the resources in place and zstd-compressed
//! with a context kept per thread.

use crate::batch::Batch;
use crate::signal::Signal;

/// Record flag: the payload is zstd-compressed.
pub const ZSTD: u16 = 1;

/// The batch's payload and record flags.
pub fn encode<S: Signal>(batch: &Batch<S>, compress: bool) -> (Vec<u8>, u16) {
    let len: usize = batch
        .resources
        .iter()
        .map(|r| prost::encoding::message::encoded_len(1, r))
        .sum();
    let mut raw = Vec::with_capacity(len);
    for r in &batch.resources {
        prost::encoding::message::encode(1, r, &mut raw);
    }
    if !compress {
        return (raw, 0);
    }
    match zstd(&raw) {
        Some(z) => (z, ZSTD),
        None => (raw, 0),
    }
}

/// zstd level 1 with a compression context kept per thread; `None` if zstd fails.
pub fn zstd(raw: &[u8]) -> Option<Vec<u8>> {
    thread_local! {
        static CTX: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    CTX.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = zstd::bulk::Compressor::new(1).ok();
        }
        c.as_mut().and_then(|z| z.compress(raw).ok())
    })
}

/// Why a stored payload could not be turned back into a batch.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("does not decompress within {limit} bytes: {source}")]
    Decompress {
        limit: usize,
        source: std::io::Error,
    },
    #[error("does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
}

/// The batch a payload was made from; `limit` bounds the decompressed size.
pub fn decode<S: Signal>(
    payload: &[u8],
    flags: u16,
    limit: usize,
) -> Result<Batch<S>, PayloadError> {
    let decompressed;
    let raw = if flags & ZSTD != 0 {
        decompressed =
            unzstd(payload, limit).map_err(|source| PayloadError::Decompress { limit, source })?;
        &decompressed[..]
    } else {
        payload
    };
    let (request, bytes) = crate::memory::measured_or(raw.len(), || S::decode(raw));
    Ok(Batch::received(
        S::into_resources(request?),
        bytes,
        raw.len(),
    ))
}

/// Decompresses into a buffer of the frame's own content size: zstd's bulk API would allocate the
/// whole `limit` up front (a 1 GiB allocation per spilled batch, which the memory limit counts).
fn unzstd(payload: &[u8], limit: usize) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    match zstd::zstd_safe::get_frame_content_size(payload) {
        Ok(Some(n)) if n > limit as u64 => Err(Error::new(
            ErrorKind::InvalidData,
            format!("frame holds {n} bytes"),
        )),
        Ok(Some(n)) => zstd::bulk::decompress(payload, n as usize),
        // Frames written without their size: stream, stopping one byte past the limit.
        _ => {
            let mut out = Vec::new();
            zstd::stream::read::Decoder::new(payload)?
                .take(limit as u64 + 1)
                .read_to_end(&mut out)?;
            if out.len() > limit {
                return Err(Error::new(
                    ErrorKind::InvalidData,
                    "frame exceeds the limit",
                ));
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{fixtures, Logs, Traces};

    #[test]
    fn round_trips_compressed_or_not() {
        let batch: Batch<Traces> = Batch::measured(fixtures::resource_spans(3, 7));
        for compress in [true, false] {
            let (payload, flags) = encode(&batch, compress);
            let back: Batch<Traces> = decode(&payload, flags, 1 << 20).unwrap();
            assert_eq!(back.resources, batch.resources);
            assert_eq!(back.items(), batch.items());
        }
        let (payload, flags) = encode(
            &Batch::<Logs>::measured(fixtures::resource_logs(2, 50)),
            true,
        );
        assert!(matches!(
            decode::<Logs>(&payload, flags, 100),
            Err(PayloadError::Decompress { .. })
        ));
    }

    #[test]
    fn decompression_allocates_what_the_frame_holds_not_the_limit() {
        let raw = vec![7u8; 10_000];
        let framed = zstd(&raw).unwrap();
        let out = unzstd(&framed, 1 << 30).unwrap();
        assert_eq!(out, raw);
        assert!(out.capacity() < 20_000, "allocated {}", out.capacity());

        // A frame without its size (a streaming writer) is bounded by the limit all the same.
        let mut sizeless = Vec::new();
        let mut enc = zstd::stream::write::Encoder::new(&mut sizeless, 1).unwrap();
        enc.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut enc, &raw).unwrap();
        enc.finish().unwrap();
        assert_eq!(unzstd(&sizeless, 10_000).unwrap(), raw);
        assert!(unzstd(&sizeless, 9_999).is_err());
        assert!(unzstd(&framed, 9_999).is_err());
    }
}
