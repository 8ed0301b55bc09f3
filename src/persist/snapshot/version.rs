//! The first line of every snapshot: what the file is, and which version
//! of the format.

/// The first line of every snapshot; the number is the format version.
pub(crate) const MAGIC: &str = "pushgateway-snapshot";
/// Version 2 added the `created`, `exemplar` and `ttl` records and the
/// end record's checksum; version 1 files are read as they are.
pub(crate) const VERSION: u32 = 2;
