//! What the hangar shows of itself: traces (OpenTelemetry over OTLP, Langfuse).

pub mod trace;
