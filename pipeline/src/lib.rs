//! The pipeline: raw events from Kafka (or files) into the star schema. So far its pure
//! transformation core, `transforms`; the runtime, sources and sinks follow (issue #4).

pub mod transforms;
