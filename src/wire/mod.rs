//! The wire formats, written by hand as pure functions over bytes: URL
//! grouping keys, the text exposition (parser and writer), delimited
//! protobuf, and JSON.

pub mod escape;
pub mod exposition;
pub mod json;
pub mod path;
pub mod protobuf;
pub mod text_format;
