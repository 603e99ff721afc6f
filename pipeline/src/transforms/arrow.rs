//! Rows as Arrow record batches with the warehouse's schemas, ready for any sink, and
//! the fact versions that later ones close, as a batch to stage.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::ArrowError;
use warehouse::schema::bigquery::SUPERSEDED_EVENT_FACTS;
use warehouse::schema::{self, Table, arrow_schema};
use warehouse::time::DateTimeParts;

use super::rows::{SupersededFacts, Tables};

/// Columns built one row at a time, each named, and put in the table's order by name
/// at the end: a column added under a wrong name, twice, or not at all is an error
/// rather than data in the wrong place.
struct Columns {
    arrays: Vec<(&'static str, ArrayRef)>,
}

impl Columns {
    fn new() -> Columns {
        Columns { arrays: Vec::new() }
    }

    fn int(mut self, name: &'static str, values: impl Iterator<Item = i64>) -> Columns {
        let mut b = Int64Builder::new();
        values.for_each(|v| b.append_value(v));
        self.arrays.push((name, Arc::new(b.finish())));
        self
    }

    fn opt_int(mut self, name: &'static str, values: impl Iterator<Item = Option<i64>>) -> Columns {
        let mut b = Int64Builder::new();
        values.for_each(|v| b.append_option(v));
        self.arrays.push((name, Arc::new(b.finish())));
        self
    }

    fn float(mut self, name: &'static str, values: impl Iterator<Item = f64>) -> Columns {
        let mut b = Float64Builder::new();
        values.for_each(|v| b.append_value(v));
        self.arrays.push((name, Arc::new(b.finish())));
        self
    }

    fn opt_float(
        mut self,
        name: &'static str,
        values: impl Iterator<Item = Option<f64>>,
    ) -> Columns {
        let mut b = Float64Builder::new();
        values.for_each(|v| b.append_option(v));
        self.arrays.push((name, Arc::new(b.finish())));
        self
    }

    fn bool(mut self, name: &'static str, values: impl Iterator<Item = bool>) -> Columns {
        let mut b = BooleanBuilder::new();
        values.for_each(|v| b.append_value(v));
        self.arrays.push((name, Arc::new(b.finish())));
        self
    }

    fn opt_bool(
        mut self,
        name: &'static str,
        values: impl Iterator<Item = Option<bool>>,
    ) -> Columns {
        let mut b = BooleanBuilder::new();
        values.for_each(|v| b.append_option(v));
        self.arrays.push((name, Arc::new(b.finish())));
        self
    }

    fn str<'a>(mut self, name: &'static str, values: impl Iterator<Item = &'a str>) -> Columns {
        let mut b = StringBuilder::new();
        values.for_each(|v| b.append_value(v));
        self.arrays.push((name, Arc::new(b.finish())));
        self
    }

    fn opt_str<'a>(
        mut self,
        name: &'static str,
        values: impl Iterator<Item = Option<&'a str>>,
    ) -> Columns {
        let mut b = StringBuilder::new();
        values.for_each(|v| b.append_option(v));
        self.arrays.push((name, Arc::new(b.finish())));
        self
    }

    fn bytes<'a>(mut self, name: &'static str, values: impl Iterator<Item = &'a [u8]>) -> Columns {
        let mut b = BinaryBuilder::new();
        values.for_each(|v| b.append_value(v));
        self.arrays.push((name, Arc::new(b.finish())));
        self
    }

    /// Epoch milliseconds as UTC microsecond timestamps.
    fn ts(mut self, name: &'static str, values: impl Iterator<Item = i64>) -> Columns {
        let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        values.for_each(|v| b.append_value(v * 1000));
        self.arrays.push((name, Arc::new(b.finish())));
        self
    }

    fn opt_ts(mut self, name: &'static str, values: impl Iterator<Item = Option<i64>>) -> Columns {
        let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        values.for_each(|v| b.append_option(v.map(|v| v * 1000)));
        self.arrays.push((name, Arc::new(b.finish())));
        self
    }

    fn date(mut self, name: &'static str, values: impl Iterator<Item = i64>) -> Columns {
        let mut b = Date32Builder::new();
        values.for_each(|v| b.append_value(v as i32));
        self.arrays.push((name, Arc::new(b.finish())));
        self
    }

    fn batch(mut self, table: &Table) -> Result<RecordBatch, ArrowError> {
        let mut ordered = Vec::with_capacity(table.columns.len());
        for column in table.columns {
            let Some(at) = self
                .arrays
                .iter()
                .position(|(name, _)| *name == column.name)
            else {
                return Err(ArrowError::SchemaError(format!(
                    "{}: no values for column {}",
                    table.name, column.name
                )));
            };
            ordered.push(self.arrays.swap_remove(at).1);
        }
        if let Some((name, _)) = self.arrays.first() {
            return Err(ArrowError::SchemaError(format!(
                "{}: values for {name}, which is not one of its columns (or is given twice)",
                table.name
            )));
        }
        RecordBatch::try_new(arrow_schema(table), ordered)
    }
}

/// A batch's rows as a sink writes them: every table with rows, and the closes of the
/// superseded listen facts. Built on the thread that transforms, so that the thread that
/// writes the batch before spends its time in the warehouse alone.
#[derive(Debug)]
pub struct Columnar {
    pub tables: Vec<(&'static Table, RecordBatch)>,
    pub superseded: Option<RecordBatch>,
}

impl Columnar {
    pub fn of(t: &Tables) -> Result<Columnar, ArrowError> {
        let superseded = &t.superseded_event_facts;
        Ok(Columnar {
            tables: record_batches(t)?,
            superseded: (!superseded.is_empty())
                .then(|| superseded_batch(superseded))
                .transpose()?,
        })
    }
}

/// Closed versions of sessions' event_fact rows, as `session_key`, `valid_from` and
/// `valid_to` (the table BigQuery appends them to): what DuckDB stages to close them all
/// in one update, and what BigQuery's view of event_fact closes them with.
pub fn superseded_batch(versions: &[SupersededFacts]) -> Result<RecordBatch, ArrowError> {
    Columns::new()
        .int("session_key", versions.iter().map(|v| v.session_key))
        .ts("valid_from", versions.iter().map(|v| v.valid_from_ms))
        .ts("valid_to", versions.iter().map(|v| v.valid_to_ms))
        .batch(&SUPERSEDED_EVENT_FACTS)
}

/// Every table with rows, as a record batch, in the order of `warehouse::schema::TABLES`.
pub fn record_batches(t: &Tables) -> Result<Vec<(&'static Table, RecordBatch)>, ArrowError> {
    let mut out = Vec::new();
    let mut add = |table: &'static Table, rows: usize, columns: Columns| {
        if rows > 0 {
            out.push((table, columns.batch(table)?));
        }
        Ok::<(), ArrowError>(())
    };

    let r = t.song_dim.rows();
    add(
        &schema::SONG_DIM,
        r.len(),
        Columns::new()
            .int("song_key", r.iter().map(|r| r.song_key))
            .str("artist", r.iter().map(|r| r.artist.as_str()))
            .str("song", r.iter().map(|r| r.song.as_str())),
    )?;

    let r = t.location_dim.rows();
    add(
        &schema::LOCATION_DIM,
        r.len(),
        Columns::new()
            .int("location_key", r.iter().map(|r| r.location_key))
            .str("city", r.iter().map(|r| r.city.as_str()))
            .str("zip", r.iter().map(|r| r.zip.as_str()))
            .str("state", r.iter().map(|r| r.state.as_str()))
            .float("lon", r.iter().map(|r| r.lon))
            .float("lat", r.iter().map(|r| r.lat)),
    )?;

    let r = t.date_dim.rows();
    let days: Vec<DateTimeParts> = r
        .iter()
        .map(|r| DateTimeParts::from_epoch_millis(r.epoch_day * 86_400_000))
        .collect();
    add(
        &schema::DATE_DIM,
        r.len(),
        Columns::new()
            .int("date_key", r.iter().map(|r| r.date_key))
            .date("date", r.iter().map(|r| r.epoch_day))
            .ts("timestamp", r.iter().map(|r| r.epoch_day * 86_400_000))
            .int("timestamp_unix", r.iter().map(|r| r.epoch_day * 86_400))
            .int("year", days.iter().map(|d| d.year))
            .int("quarter", days.iter().map(|d| i64::from(d.quarter())))
            .int("month", days.iter().map(|d| i64::from(d.month)))
            .int("day", days.iter().map(|d| i64::from(d.day)))
            .int(
                "day_of_week",
                days.iter().map(|d| i64::from(d.day_of_week())),
            )
            .bool("is_weekend", days.iter().map(|d| d.day_of_week() >= 6)),
    )?;

    let r = t.date_time_dim.rows();
    let instants: Vec<DateTimeParts> = r
        .iter()
        .map(|r| DateTimeParts::from_epoch_millis(r.epoch_second * 1000))
        .collect();
    add(
        &schema::DATE_TIME_DIM,
        r.len(),
        Columns::new()
            .int("date_time_key", r.iter().map(|r| r.date_time_key))
            .ts("timestamp", r.iter().map(|r| r.epoch_second * 1000))
            .int("timestamp_unix", r.iter().map(|r| r.epoch_second))
            .int("year", instants.iter().map(|d| d.year))
            .int("month", instants.iter().map(|d| i64::from(d.month)))
            .int("day", instants.iter().map(|d| i64::from(d.day)))
            .int("hour", instants.iter().map(|d| i64::from(d.hour)))
            .int("minute", instants.iter().map(|d| i64::from(d.minute)))
            .int("second", instants.iter().map(|d| i64::from(d.second)))
            .int("date_key", instants.iter().map(warehouse::keys::date_key)),
    )?;

    let r = t.user_dim.rows();
    add(
        &schema::USER_DIM,
        r.len(),
        Columns::new()
            .int("user_key", r.iter().map(|r| r.user_key))
            .int("user_id", r.iter().map(|r| r.user_id))
            .str("first_name", r.iter().map(|r| r.first_name.as_str()))
            .str("last_name", r.iter().map(|r| r.last_name.as_str()))
            .str("gender", r.iter().map(|r| r.gender.as_str()))
            .str("level", r.iter().map(|r| r.level.as_str()))
            .ts("registration_ts", r.iter().map(|r| r.registration_ms))
            .str(
                "registration_city",
                r.iter().map(|r| r.registration_city.as_str()),
            )
            .str(
                "registration_zip",
                r.iter().map(|r| r.registration_zip.as_str()),
            )
            .str(
                "registration_state",
                r.iter().map(|r| r.registration_state.as_str()),
            )
            .float("registration_lon", r.iter().map(|r| r.registration_lon))
            .float("registration_lat", r.iter().map(|r| r.registration_lat))
            .ts("valid_from", r.iter().map(|r| r.valid_from_ms))
            .opt_ts("valid_to", r.iter().map(|r| r.valid_to_ms))
            .bool("is_current", r.iter().map(|r| r.is_current)),
    )?;

    let r = t.event_dim.rows();
    add(
        &schema::EVENT_DIM,
        r.len(),
        Columns::new()
            .int("event_key", r.iter().map(|r| r.event_key))
            .ts("timestamp", r.iter().map(|r| r.ts_ms))
            .opt_int("user_id", r.iter().map(|r| r.user_id))
            .int("session_id", r.iter().map(|r| r.session_id))
            .int("item_in_session", r.iter().map(|r| r.item_in_session))
            .str("user_agent", r.iter().map(|r| &*r.user_agent))
            .str("page", r.iter().map(|r| &*r.page))
            .str("auth", r.iter().map(|r| r.auth))
            .str("method", r.iter().map(|r| &*r.method))
            .int("status", r.iter().map(|r| r.status))
            .str("level", r.iter().map(|r| r.level))
            .bool("is_listen_event", r.iter().map(|r| r.is_listen_event)),
    )?;

    let r = t.session_dim.rows();
    add(
        &schema::SESSION_DIM,
        r.len(),
        Columns::new()
            .int("session_key", r.iter().map(|r| r.session_key))
            .int("session_id", r.iter().map(|r| r.session_id))
            .opt_int("user_id", r.iter().map(|r| r.user_id)),
    )?;

    let r = t.event_session_bridge.rows();
    add(
        &schema::EVENT_SESSION_BRIDGE,
        r.len(),
        Columns::new()
            .int("session_key", r.iter().map(|r| r.session_key))
            .int("event_key", r.iter().map(|r| r.event_key)),
    )?;

    let r = t.event_fact.rows();
    add(
        &schema::EVENT_FACT,
        r.len(),
        Columns::new()
            .int("event_key", r.iter().map(|r| r.event_key))
            .int("user_key", r.iter().map(|r| r.user_key))
            .int("user_id", r.iter().map(|r| r.user_id))
            .int("session_key", r.iter().map(|r| r.session_key))
            .int("date_time_key", r.iter().map(|r| r.date_time_key))
            .int("date_key", r.iter().map(|r| r.date_key))
            .int("location_key", r.iter().map(|r| r.location_key))
            .int("song_key", r.iter().map(|r| r.song_key))
            .ts("timestamp", r.iter().map(|r| r.ts_ms))
            .str("level", r.iter().map(|r| r.level.as_str()))
            .float("duration", r.iter().map(|r| r.duration))
            .bool("is_moving", r.iter().map(|r| r.is_moving))
            .int(
                "consecutive_no_song",
                r.iter().map(|r| r.consecutive_no_song),
            )
            .bool(
                "is_first_listen_event",
                r.iter().map(|r| r.is_first_listen_event),
            )
            .bool(
                "is_last_listen_event",
                r.iter().map(|r| r.is_last_listen_event),
            )
            .opt_bool("is_song_skipped", r.iter().map(|r| r.is_song_skipped))
            .opt_float(
                "next_listen_event_time_gap",
                r.iter().map(|r| r.next_listen_event_time_gap),
            )
            .ts(
                "record_valid_from",
                r.iter().map(|r| r.record_valid_from_ms),
            )
            .opt_ts("record_valid_to", r.iter().map(|r| r.record_valid_to_ms))
            .bool("is_record_valid", r.iter().map(|r| r.is_record_valid)),
    )?;

    let r = t.session_fact.rows();
    add(
        &schema::SESSION_FACT,
        r.len(),
        Columns::new()
            .int("session_key", r.iter().map(|r| r.session_key))
            .opt_int("user_key", r.iter().map(|r| r.user_key))
            .opt_int("user_id", r.iter().map(|r| r.user_id))
            .int("date_key", r.iter().map(|r| r.date_key))
            .int("date_time_key", r.iter().map(|r| r.date_time_key))
            .ts("session_start_ts", r.iter().map(|r| r.start_ms))
            .ts("session_end_ts", r.iter().map(|r| r.end_ms))
            .str("level", r.iter().map(|r| r.level.as_str()))
            .float("session_duration", r.iter().map(|r| r.session_duration))
            .float("listening_time", r.iter().map(|r| r.listening_time))
            .int("listen_count", r.iter().map(|r| r.listen_count))
            .int("event_count", r.iter().map(|r| r.event_count))
            .int(
                "primary_s_location",
                r.iter().map(|r| r.primary_location_key),
            )
            .ts(
                "record_valid_from",
                r.iter().map(|r| r.record_valid_from_ms),
            )
            .opt_ts("record_valid_to", r.iter().map(|r| r.record_valid_to_ms))
            .bool("is_record_valid", r.iter().map(|r| r.is_record_valid)),
    )?;

    let r = t.auth_fact.rows();
    add(
        &schema::AUTH_FACT,
        r.len(),
        Columns::new()
            .int("event_key", r.iter().map(|r| r.event_key))
            .int("session_key", r.iter().map(|r| r.session_key))
            .opt_int("user_id", r.iter().map(|r| r.user_id))
            .int("date_time_key", r.iter().map(|r| r.date_time_key))
            .int("date_key", r.iter().map(|r| r.date_key))
            .int("location_key", r.iter().map(|r| r.location_key))
            .ts("timestamp", r.iter().map(|r| r.ts_ms))
            .str("level", r.iter().map(|r| r.level))
            .bool("success", r.iter().map(|r| r.success)),
    )?;

    let r = t.level_change_fact.rows();
    add(
        &schema::LEVEL_CHANGE_FACT,
        r.len(),
        Columns::new()
            .int("event_key", r.iter().map(|r| r.event_key))
            .int("user_id", r.iter().map(|r| r.user_id))
            .int("session_key", r.iter().map(|r| r.session_key))
            .int("date_time_key", r.iter().map(|r| r.date_time_key))
            .int("date_key", r.iter().map(|r| r.date_key))
            .int("location_key", r.iter().map(|r| r.location_key))
            .ts("timestamp", r.iter().map(|r| r.ts_ms))
            .str("auth", r.iter().map(|r| r.auth))
            .str("level", r.iter().map(|r| r.level)),
    )?;

    let r = &t.dead_letters;
    add(
        &schema::DEAD_LETTERS,
        r.len(),
        Columns::new()
            .str("source_topic", r.iter().map(|r| r.source_topic.as_str()))
            .int("source_partition", r.iter().map(|r| r.source_partition))
            .int("source_offset", r.iter().map(|r| r.source_offset))
            .str("reason", r.iter().map(|r| r.reason))
            .opt_str("field", r.iter().map(|r| r.field.as_deref()))
            .str("detail", r.iter().map(|r| r.detail.as_str()))
            .bytes("payload", r.iter().map(|r| r.payload.as_slice()))
            .ts("received_at", r.iter().map(|r| r.received_at_ms)),
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn song_columns(names: [&'static str; 3]) -> Columns {
        Columns::new()
            .int(names[0], [1].into_iter())
            .str(names[1], ["Artist"].into_iter())
            .str(names[2], ["Song"].into_iter())
    }

    #[test]
    fn columns_are_placed_by_name_whatever_order_they_come_in() {
        let batch = song_columns(["song", "artist", "song_key"]).batch(&schema::SONG_DIM);
        // A string column under an integer column's name is refused by the schema.
        assert!(batch.is_err());
        let batch = Columns::new()
            .str("song", ["Song"].into_iter())
            .int("song_key", [1].into_iter())
            .str("artist", ["Artist"].into_iter())
            .batch(&schema::SONG_DIM)
            .unwrap();
        let names: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["song_key", "artist", "song"]);
        assert_eq!(batch.num_rows(), 1);
    }

    #[test]
    fn a_misnamed_missing_or_repeated_column_is_an_error_naming_it() {
        let error = song_columns(["song_key", "artist", "title"])
            .batch(&schema::SONG_DIM)
            .unwrap_err()
            .to_string();
        assert!(error.contains("no values for column song"), "{error}");
        let error = song_columns(["song_key", "artist", "song"])
            .str("artist", ["Again"].into_iter())
            .batch(&schema::SONG_DIM)
            .unwrap_err()
            .to_string();
        assert!(error.contains("values for artist"), "{error}");
    }
}
