//! The wire formats, written by hand as pure functions over bytes: URL
//! grouping keys, the text exposition (parser and writer), delimited
//! protobuf, JSON, the selectors of deletes by selector, and gzip as
//! scrapes are compressed.

pub mod escape;
pub mod exposition;
pub mod gzip;
pub mod json;
mod meter;
pub mod openmetrics;
pub mod path;
pub mod protobuf;
pub mod prototext;
pub mod selector;
pub mod template;
pub mod text_format;

pub use meter::{Meter, Unmetered, cost, push_series};
