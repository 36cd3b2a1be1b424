use super::*;
use weir_pipeline::fixtures;

#[test]
fn one_row_per_record_and_portable_is_longer_by_the_split_columns() {
    let logs = fixtures::resource_logs(2, 3);
    let mut e = Encoder::default();
    let (mut modern, mut portable) = (Vec::new(), Vec::new());
    assert_eq!(e.logs(&logs, Layout::Modern, &mut modern), 6);
    assert_eq!(e.logs(&logs, Layout::Portable, &mut portable), 6);
    // Portable adds a 4-byte DateTime per row and a second count varint per attribute column.
    assert_eq!(portable.len(), modern.len() + 6 * (4 + 3));
}

#[test]
fn first_row_bytes_start_with_timestamp_and_hex_trace_id() {
    let logs = fixtures::resource_logs(1, 1);
    let mut out = Vec::new();
    Encoder::default().logs(&logs, Layout::Modern, &mut out);
    let r = &logs[0].scope_logs[0].log_records[0];
    assert_eq!(&out[..8], &(r.time_unix_nano as i64).to_le_bytes());
    assert_eq!(out[8], 32);
    assert_eq!(&out[9..41], hex_lower(&r.trace_id).as_bytes());
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
