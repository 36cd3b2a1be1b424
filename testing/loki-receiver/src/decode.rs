//! Request bodies → streams of entries: content encodings, the media type, snappy-block protobuf and
//! JSON, each failing with the message Loki gives.

use crate::{proto, Entry};
use std::io::Read;

pub(crate) fn media_type(content_type: &str) -> Result<String, String> {
    let mut parts = content_type.split(';');
    let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    if media.is_empty() {
        return Err("mime: no media type".into());
    }
    if !media.contains('/') {
        return Err("mime: expected slash after first token".into());
    }
    for p in parts {
        if !p.trim().is_empty() && !p.contains('=') {
            return Err("mime: invalid media parameter".into());
        }
    }
    Ok(media)
}

pub(crate) fn inflate(mut r: impl Read) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    r.read_to_end(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

pub(crate) fn proto_streams(body: &[u8]) -> Result<Vec<(String, Vec<Entry>)>, String> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|_| "snappy: corrupt input".to_string())?;
    let req: proto::PushRequest =
        prost::Message::decode(raw.as_slice()).map_err(|e| e.to_string())?;
    req.streams
        .into_iter()
        .map(|s| {
            let entries = s
                .entries
                .into_iter()
                .map(|e| {
                    let ts = e.timestamp.unwrap_or_default();
                    if !(0..1_000_000_000).contains(&ts.nanos)
                        || !(-62_135_596_800..253_402_300_800).contains(&ts.seconds)
                    {
                        return Err(format!("timestamp out of range: {ts:?}"));
                    }
                    Ok(Entry {
                        ts: if e.timestamp.is_none() {
                            i128::MIN / 2
                        } else {
                            i128::from(ts.seconds) * 1_000_000_000 + i128::from(ts.nanos)
                        },
                        line: e.line,
                        metadata: e
                            .structured_metadata
                            .into_iter()
                            .map(|p| (p.name, p.value))
                            .collect(),
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok((s.labels, entries))
        })
        .collect()
}

pub(crate) fn json_streams(body: &[u8]) -> Result<Vec<(String, Vec<Entry>)>, String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let Some(streams) = v.get("streams").and_then(|s| s.as_array()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for s in streams {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(map) = s.get("stream").and_then(|m| m.as_object()) {
            for (k, v) in map {
                let v = v
                    .as_str()
                    .ok_or_else(|| format!("label {k} is not a string"))?;
                pairs.push((k.clone(), v.to_string()));
            }
        }
        pairs.sort();
        let label_text = format!(
            "{{{}}}",
            pairs
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut entries = Vec::new();
        for value in s
            .get("values")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let Some(arr) = value.as_array() else {
                continue;
            };
            let ts = arr
                .first()
                .and_then(|t| t.as_str())
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or("Value is string, but can't find closing '\"' symbol")?;
            let line = match arr.get(1) {
                None => String::new(),
                Some(l) => l.as_str().ok_or("log line is not a string")?.to_string(),
            };
            let mut metadata = Vec::new();
            if let Some(sm) = arr.get(2) {
                let obj = sm
                    .as_object()
                    .ok_or("structured metadata is not an object")?;
                for (k, v) in obj {
                    metadata.push((
                        k.clone(),
                        v.as_str()
                            .ok_or("structured metadata value is not a string")?
                            .to_string(),
                    ));
                }
            }
            entries.push(Entry {
                ts: i128::from(ts),
                line,
                metadata,
            });
        }
        out.push((label_text, entries));
    }
    Ok(out)
}
