//! Rows as Arrow record batches with the warehouse's schemas, ready for any sink.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::ArrowError;
use warehouse::schema::{self, Table, arrow_schema};
use warehouse::time::DateTimeParts;

use super::rows::Tables;

/// Columns built one row at a time, checked against the table's schema at the end.
struct Columns {
    arrays: Vec<ArrayRef>,
}

impl Columns {
    fn new() -> Columns {
        Columns { arrays: Vec::new() }
    }

    fn int(mut self, values: impl Iterator<Item = i64>) -> Columns {
        let mut b = Int64Builder::new();
        values.for_each(|v| b.append_value(v));
        self.arrays.push(Arc::new(b.finish()));
        self
    }

    fn opt_int(mut self, values: impl Iterator<Item = Option<i64>>) -> Columns {
        let mut b = Int64Builder::new();
        values.for_each(|v| b.append_option(v));
        self.arrays.push(Arc::new(b.finish()));
        self
    }

    fn float(mut self, values: impl Iterator<Item = f64>) -> Columns {
        let mut b = Float64Builder::new();
        values.for_each(|v| b.append_value(v));
        self.arrays.push(Arc::new(b.finish()));
        self
    }

    fn opt_float(mut self, values: impl Iterator<Item = Option<f64>>) -> Columns {
        let mut b = Float64Builder::new();
        values.for_each(|v| b.append_option(v));
        self.arrays.push(Arc::new(b.finish()));
        self
    }

    fn bool(mut self, values: impl Iterator<Item = bool>) -> Columns {
        let mut b = BooleanBuilder::new();
        values.for_each(|v| b.append_value(v));
        self.arrays.push(Arc::new(b.finish()));
        self
    }

    fn opt_bool(mut self, values: impl Iterator<Item = Option<bool>>) -> Columns {
        let mut b = BooleanBuilder::new();
        values.for_each(|v| b.append_option(v));
        self.arrays.push(Arc::new(b.finish()));
        self
    }

    fn str<'a>(mut self, values: impl Iterator<Item = &'a str>) -> Columns {
        let mut b = StringBuilder::new();
        values.for_each(|v| b.append_value(v));
        self.arrays.push(Arc::new(b.finish()));
        self
    }

    fn opt_str<'a>(mut self, values: impl Iterator<Item = Option<&'a str>>) -> Columns {
        let mut b = StringBuilder::new();
        values.for_each(|v| b.append_option(v));
        self.arrays.push(Arc::new(b.finish()));
        self
    }

    fn bytes<'a>(mut self, values: impl Iterator<Item = &'a [u8]>) -> Columns {
        let mut b = BinaryBuilder::new();
        values.for_each(|v| b.append_value(v));
        self.arrays.push(Arc::new(b.finish()));
        self
    }

    /// Epoch milliseconds as UTC microsecond timestamps.
    fn ts(mut self, values: impl Iterator<Item = i64>) -> Columns {
        let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        values.for_each(|v| b.append_value(v * 1000));
        self.arrays.push(Arc::new(b.finish()));
        self
    }

    fn opt_ts(mut self, values: impl Iterator<Item = Option<i64>>) -> Columns {
        let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        values.for_each(|v| b.append_option(v.map(|v| v * 1000)));
        self.arrays.push(Arc::new(b.finish()));
        self
    }

    fn date(mut self, values: impl Iterator<Item = i64>) -> Columns {
        let mut b = Date32Builder::new();
        values.for_each(|v| b.append_value(v as i32));
        self.arrays.push(Arc::new(b.finish()));
        self
    }

    fn batch(self, table: &Table) -> Result<RecordBatch, ArrowError> {
        RecordBatch::try_new(arrow_schema(table), self.arrays)
    }
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
            .int(r.iter().map(|r| r.song_key))
            .str(r.iter().map(|r| r.artist.as_str()))
            .str(r.iter().map(|r| r.song.as_str())),
    )?;

    let r = t.location_dim.rows();
    add(
        &schema::LOCATION_DIM,
        r.len(),
        Columns::new()
            .int(r.iter().map(|r| r.location_key))
            .str(r.iter().map(|r| r.city.as_str()))
            .str(r.iter().map(|r| r.zip.as_str()))
            .str(r.iter().map(|r| r.state.as_str()))
            .float(r.iter().map(|r| r.lon))
            .float(r.iter().map(|r| r.lat)),
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
            .int(r.iter().map(|r| r.date_key))
            .date(r.iter().map(|r| r.epoch_day))
            .ts(r.iter().map(|r| r.epoch_day * 86_400_000))
            .int(r.iter().map(|r| r.epoch_day * 86_400))
            .int(days.iter().map(|d| d.year))
            .int(days.iter().map(|d| i64::from(d.quarter())))
            .int(days.iter().map(|d| i64::from(d.month)))
            .int(days.iter().map(|d| i64::from(d.day)))
            .int(days.iter().map(|d| i64::from(d.day_of_week())))
            .bool(days.iter().map(|d| d.day_of_week() >= 6)),
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
            .int(r.iter().map(|r| r.date_time_key))
            .ts(r.iter().map(|r| r.epoch_second * 1000))
            .int(r.iter().map(|r| r.epoch_second))
            .int(instants.iter().map(|d| d.year))
            .int(instants.iter().map(|d| i64::from(d.month)))
            .int(instants.iter().map(|d| i64::from(d.day)))
            .int(instants.iter().map(|d| i64::from(d.hour)))
            .int(instants.iter().map(|d| i64::from(d.minute)))
            .int(instants.iter().map(|d| i64::from(d.second)))
            .int(instants.iter().map(warehouse::keys::date_key)),
    )?;

    let r = t.user_dim.rows();
    add(
        &schema::USER_DIM,
        r.len(),
        Columns::new()
            .int(r.iter().map(|r| r.user_key))
            .int(r.iter().map(|r| r.user_id))
            .str(r.iter().map(|r| r.first_name.as_str()))
            .str(r.iter().map(|r| r.last_name.as_str()))
            .str(r.iter().map(|r| r.gender.as_str()))
            .str(r.iter().map(|r| r.level.as_str()))
            .ts(r.iter().map(|r| r.registration_ms))
            .str(r.iter().map(|r| r.registration_city.as_str()))
            .str(r.iter().map(|r| r.registration_zip.as_str()))
            .str(r.iter().map(|r| r.registration_state.as_str()))
            .float(r.iter().map(|r| r.registration_lon))
            .float(r.iter().map(|r| r.registration_lat))
            .ts(r.iter().map(|r| r.valid_from_ms))
            .opt_ts(r.iter().map(|r| r.valid_to_ms))
            .bool(r.iter().map(|r| r.is_current)),
    )?;

    let r = t.event_dim.rows();
    add(
        &schema::EVENT_DIM,
        r.len(),
        Columns::new()
            .int(r.iter().map(|r| r.event_key))
            .ts(r.iter().map(|r| r.ts_ms))
            .opt_int(r.iter().map(|r| r.user_id))
            .int(r.iter().map(|r| r.session_id))
            .int(r.iter().map(|r| r.item_in_session))
            .str(r.iter().map(|r| &*r.user_agent))
            .str(r.iter().map(|r| &*r.page))
            .str(r.iter().map(|r| r.auth))
            .str(r.iter().map(|r| &*r.method))
            .int(r.iter().map(|r| r.status))
            .str(r.iter().map(|r| r.level))
            .bool(r.iter().map(|r| r.is_listen_event)),
    )?;

    let r = t.session_dim.rows();
    add(
        &schema::SESSION_DIM,
        r.len(),
        Columns::new()
            .int(r.iter().map(|r| r.session_key))
            .int(r.iter().map(|r| r.session_id))
            .opt_int(r.iter().map(|r| r.user_id)),
    )?;

    let r = t.event_session_bridge.rows();
    add(
        &schema::EVENT_SESSION_BRIDGE,
        r.len(),
        Columns::new()
            .int(r.iter().map(|r| r.session_key))
            .int(r.iter().map(|r| r.event_key)),
    )?;

    let r = t.event_fact.rows();
    add(
        &schema::EVENT_FACT,
        r.len(),
        Columns::new()
            .int(r.iter().map(|r| r.event_key))
            .int(r.iter().map(|r| r.user_key))
            .int(r.iter().map(|r| r.user_id))
            .int(r.iter().map(|r| r.session_key))
            .int(r.iter().map(|r| r.date_time_key))
            .int(r.iter().map(|r| r.date_key))
            .int(r.iter().map(|r| r.location_key))
            .int(r.iter().map(|r| r.song_key))
            .ts(r.iter().map(|r| r.ts_ms))
            .str(r.iter().map(|r| r.level.as_str()))
            .float(r.iter().map(|r| r.duration))
            .bool(r.iter().map(|r| r.is_moving))
            .int(r.iter().map(|r| r.consecutive_no_song))
            .bool(r.iter().map(|r| r.is_first_listen_event))
            .bool(r.iter().map(|r| r.is_last_listen_event))
            .opt_bool(r.iter().map(|r| r.is_song_skipped))
            .opt_float(r.iter().map(|r| r.next_listen_event_time_gap))
            .ts(r.iter().map(|r| r.record_valid_from_ms))
            .opt_ts(r.iter().map(|r| r.record_valid_to_ms))
            .bool(r.iter().map(|r| r.is_record_valid)),
    )?;

    let r = t.session_fact.rows();
    add(
        &schema::SESSION_FACT,
        r.len(),
        Columns::new()
            .int(r.iter().map(|r| r.session_key))
            .opt_int(r.iter().map(|r| r.user_key))
            .opt_int(r.iter().map(|r| r.user_id))
            .int(r.iter().map(|r| r.date_key))
            .int(r.iter().map(|r| r.date_time_key))
            .ts(r.iter().map(|r| r.start_ms))
            .ts(r.iter().map(|r| r.end_ms))
            .str(r.iter().map(|r| r.level.as_str()))
            .float(r.iter().map(|r| r.session_duration))
            .float(r.iter().map(|r| r.listening_time))
            .int(r.iter().map(|r| r.listen_count))
            .int(r.iter().map(|r| r.event_count))
            .int(r.iter().map(|r| r.primary_location_key))
            .ts(r.iter().map(|r| r.record_valid_from_ms))
            .opt_ts(r.iter().map(|r| r.record_valid_to_ms))
            .bool(r.iter().map(|r| r.is_record_valid)),
    )?;

    let r = t.auth_fact.rows();
    add(
        &schema::AUTH_FACT,
        r.len(),
        Columns::new()
            .int(r.iter().map(|r| r.event_key))
            .int(r.iter().map(|r| r.session_key))
            .opt_int(r.iter().map(|r| r.user_id))
            .int(r.iter().map(|r| r.date_time_key))
            .int(r.iter().map(|r| r.date_key))
            .int(r.iter().map(|r| r.location_key))
            .ts(r.iter().map(|r| r.ts_ms))
            .str(r.iter().map(|r| r.level))
            .bool(r.iter().map(|r| r.success)),
    )?;

    let r = t.level_change_fact.rows();
    add(
        &schema::LEVEL_CHANGE_FACT,
        r.len(),
        Columns::new()
            .int(r.iter().map(|r| r.event_key))
            .int(r.iter().map(|r| r.user_id))
            .int(r.iter().map(|r| r.session_key))
            .int(r.iter().map(|r| r.date_time_key))
            .int(r.iter().map(|r| r.date_key))
            .int(r.iter().map(|r| r.location_key))
            .ts(r.iter().map(|r| r.ts_ms))
            .str(r.iter().map(|r| r.auth))
            .str(r.iter().map(|r| r.level)),
    )?;

    let r = &t.dead_letters;
    add(
        &schema::DEAD_LETTERS,
        r.len(),
        Columns::new()
            .str(r.iter().map(|r| r.source_topic.as_str()))
            .int(r.iter().map(|r| r.source_partition))
            .int(r.iter().map(|r| r.source_offset))
            .str(r.iter().map(|r| r.reason))
            .opt_str(r.iter().map(|r| r.field.as_deref()))
            .str(r.iter().map(|r| r.detail.as_str()))
            .bytes(r.iter().map(|r| r.payload.as_slice()))
            .ts(r.iter().map(|r| r.received_at_ms)),
    )?;
    Ok(out)
}
