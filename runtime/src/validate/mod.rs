//! Checks a tool call's arguments before the hangar forwards it to a provider.
//!
//! Two steps, cheapest first: [`check_limits`] bounds the nesting depth and serialized size of the
//! arguments, then [`SchemaCache::validate`] checks them against the tool's `inputSchema`. Callers
//! must run the limits first: the serializer and the schema validator both recurse over the value,
//! and the depth limit is what keeps that recursion short.
//!
//! Deliberately absent:
//! - No network and no file system. A provider's schema is untrusted input; a `$ref` to an
//!   `http(s)://` or `file://` URI is never followed, the schema is reported as unusable instead.
//! - No blocking of calls on a provider bug. A schema that does not compile turns validation off for
//!   that tool (until the provider publishes a different schema) and yields one warning.
//! - No JSON Schema code of our own: the `jsonschema` crate does drafts 4 to 2020-12 and is kept up
//!   to date against the official test suite.

mod error;
mod limits;
mod schema;

pub use error::{ValidationError, Violation};
pub use limits::{Limits, check_limits};
pub use schema::SchemaCache;
