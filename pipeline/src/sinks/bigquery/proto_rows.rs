//! Rows for the Storage Write API: a table's log as a protocol-buffer message type (its
//! columns, then `_loaded_at`) and each row of an Arrow batch encoded as one such
//! message. The types follow the API's mapping: INT64 and TIMESTAMP (microseconds since
//! the epoch) as int64, DATE (days) as int32, FLOAT64 as double; a null is a field left
//! out, which proto2's optional fields allow.

use arrow_array::cast::AsArray as _;
use arrow_array::types::{Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use prost::encoding::{self, WireType};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto};
use warehouse::schema::bigquery::LOADED_AT;
use warehouse::schema::{ColumnType, Table};

use crate::error::PipelineError;

/// The message type of `table`'s log rows: field `i + 1` is column `i`, and the last is
/// `_loaded_at`.
pub(crate) fn descriptor(table: &Table) -> DescriptorProto {
    let mut fields: Vec<FieldDescriptorProto> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, column)| field(column.name, field_number(i), column.ty))
        .collect();
    fields.push(field(
        LOADED_AT,
        field_number(table.columns.len()),
        ColumnType::Timestamp,
    ));
    DescriptorProto {
        name: Some(format!("{}_row", table.name)),
        field: fields,
        ..DescriptorProto::default()
    }
}

fn field_number(column: usize) -> i32 {
    // Tables have tens of columns, far below protobuf's limit on field numbers.
    i32::try_from(column + 1).unwrap_or(i32::MAX)
}

fn field(name: &str, number: i32, ty: ColumnType) -> FieldDescriptorProto {
    let ty = match ty {
        ColumnType::Int64 | ColumnType::Timestamp => Type::Int64,
        ColumnType::Float64 => Type::Double,
        ColumnType::Bool => Type::Bool,
        ColumnType::String => Type::String,
        ColumnType::Bytes => Type::Bytes,
        ColumnType::Date => Type::Int32,
    };
    FieldDescriptorProto {
        name: Some(name.to_owned()),
        number: Some(number),
        label: Some(Label::Optional as i32),
        r#type: Some(ty as i32),
        ..FieldDescriptorProto::default()
    }
}

/// Each row of `batch` (the table's columns, in its order) as one message, stamped
/// `loaded_at` (microseconds).
pub(crate) fn encode(
    table: &Table,
    batch: &RecordBatch,
    loaded_at: i64,
) -> Result<Vec<Vec<u8>>, PipelineError> {
    let mut rows = vec![Vec::new(); batch.num_rows()];
    for (i, column) in table.columns.iter().enumerate() {
        let array = batch.column_by_name(column.name).ok_or_else(|| {
            PipelineError::Bug(format!(
                "{}: no column {} to encode",
                table.name, column.name
            ))
        })?;
        let tag = u32::try_from(field_number(i)).unwrap_or(u32::MAX);
        encode_column(tag, column.ty, array.as_ref(), &mut rows)
            .map_err(|e| PipelineError::Bug(format!("{}.{}: {e}", table.name, column.name)))?;
    }
    let tag = u32::try_from(field_number(table.columns.len())).unwrap_or(u32::MAX);
    for row in &mut rows {
        encoding::int64::encode(tag, &loaded_at, row);
    }
    Ok(rows)
}

/// Appends column `tag` of every non-null row to its message.
fn encode_column(
    tag: u32,
    ty: ColumnType,
    array: &dyn Array,
    rows: &mut [Vec<u8>],
) -> Result<(), String> {
    let wrong = || format!("an Arrow array of type {} for {ty:?}", array.data_type());
    // The rows whose value is not null, each with its index into the array.
    let present = rows
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| !array.is_null(*i));
    match ty {
        ColumnType::Int64 => {
            let values = array.as_primitive_opt::<Int64Type>().ok_or_else(wrong)?;
            present.for_each(|(i, row)| encoding::int64::encode(tag, &values.value(i), row));
        }
        ColumnType::Timestamp => {
            let values = array
                .as_primitive_opt::<TimestampMicrosecondType>()
                .ok_or_else(wrong)?;
            present.for_each(|(i, row)| encoding::int64::encode(tag, &values.value(i), row));
        }
        ColumnType::Date => {
            let values = array.as_primitive_opt::<Date32Type>().ok_or_else(wrong)?;
            present.for_each(|(i, row)| encoding::int32::encode(tag, &values.value(i), row));
        }
        ColumnType::Float64 => {
            let values = array.as_primitive_opt::<Float64Type>().ok_or_else(wrong)?;
            present.for_each(|(i, row)| encoding::double::encode(tag, &values.value(i), row));
        }
        ColumnType::Bool => {
            let values = array.as_boolean_opt().ok_or_else(wrong)?;
            present.for_each(|(i, row)| encoding::bool::encode(tag, &values.value(i), row));
        }
        ColumnType::String => {
            let values = array.as_string_opt::<i32>().ok_or_else(wrong)?;
            present.for_each(|(i, row)| length_delimited(tag, values.value(i).as_bytes(), row));
        }
        ColumnType::Bytes => {
            let values = array.as_binary_opt::<i32>().ok_or_else(wrong)?;
            present.for_each(|(i, row)| length_delimited(tag, values.value(i), row));
        }
    }
    Ok(())
}

/// A string or bytes field, written from a borrowed slice (prost's own encoders take
/// owned values).
fn length_delimited(tag: u32, bytes: &[u8], row: &mut Vec<u8>) {
    encoding::encode_key(tag, WireType::LengthDelimited, row);
    encoding::encode_varint(bytes.len() as u64, row);
    row.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{BinaryArray, Int64Array, StringArray, TimestampMicrosecondArray};
    use prost::Message as _;
    use warehouse::schema::{DEAD_LETTERS, arrow_schema};

    use super::*;

    /// `dead_letters`' row as prost decodes it: text, integers, bytes and a timestamp.
    #[derive(Clone, PartialEq, prost::Message)]
    struct DeadLetterRow {
        #[prost(string, optional, tag = "1")]
        source_topic: Option<String>,
        #[prost(int64, optional, tag = "2")]
        source_partition: Option<i64>,
        #[prost(int64, optional, tag = "3")]
        source_offset: Option<i64>,
        #[prost(string, optional, tag = "4")]
        reason: Option<String>,
        #[prost(string, optional, tag = "5")]
        field: Option<String>,
        #[prost(string, optional, tag = "6")]
        detail: Option<String>,
        #[prost(bytes = "vec", optional, tag = "7")]
        payload: Option<Vec<u8>>,
        #[prost(int64, optional, tag = "8")]
        received_at: Option<i64>,
        #[prost(int64, optional, tag = "9")]
        loaded_at: Option<i64>,
    }

    #[test]
    fn rows_decode_as_their_descriptor_says_and_nulls_are_left_out() {
        let described: Vec<_> = descriptor(&DEAD_LETTERS)
            .field
            .iter()
            .map(|f| (f.name().to_owned(), f.number(), f.r#type()))
            .collect();
        assert_eq!(described.len(), DEAD_LETTERS.columns.len() + 1);
        assert_eq!(described[0], ("source_topic".to_owned(), 1, Type::String));
        assert_eq!(described[6].2, Type::Bytes);
        assert_eq!(described[7], ("received_at".to_owned(), 8, Type::Int64));
        assert_eq!(described[8], (LOADED_AT.to_owned(), 9, Type::Int64));

        let batch = RecordBatch::try_new(
            arrow_schema(&DEAD_LETTERS),
            vec![
                Arc::new(StringArray::from(vec!["listen_events", "t"])),
                Arc::new(Int64Array::from(vec![3, 0])),
                Arc::new(Int64Array::from(vec![-7, 1 << 40])),
                Arc::new(StringArray::from(vec!["invalid_json", "missing_field"])),
                Arc::new(StringArray::from(vec![Some("ts"), None])),
                Arc::new(StringArray::from(vec!["a détail", ""])),
                Arc::new(BinaryArray::from(vec![b"{".as_slice(), b"\xff".as_slice()])),
                Arc::new(TimestampMicrosecondArray::from(vec![1_000_000, -2]).with_timezone("UTC")),
            ],
        )
        .unwrap();
        let rows = encode(&DEAD_LETTERS, &batch, 99).unwrap();
        let first = DeadLetterRow::decode(rows[0].as_slice()).unwrap();
        assert_eq!(
            first,
            DeadLetterRow {
                source_topic: Some("listen_events".to_owned()),
                source_partition: Some(3),
                source_offset: Some(-7),
                reason: Some("invalid_json".to_owned()),
                field: Some("ts".to_owned()),
                detail: Some("a détail".to_owned()),
                payload: Some(b"{".to_vec()),
                received_at: Some(1_000_000),
                loaded_at: Some(99),
            }
        );
        let second = DeadLetterRow::decode(rows[1].as_slice()).unwrap();
        assert_eq!(second.source_offset, Some(1 << 40));
        assert_eq!(second.field, None, "a null is left out");
        assert_eq!(
            second.detail.as_deref(),
            Some(""),
            "an empty text is not a null"
        );
        assert_eq!(second.payload.as_deref(), Some(b"\xff".as_slice()));
        assert_eq!(second.received_at, Some(-2));
    }
}
