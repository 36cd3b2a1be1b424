//! Operators' tools that talk to a running Weir through its admin endpoint: `weir tap` and
//! `weir top`.

mod client;
pub mod tap;
pub mod top;
