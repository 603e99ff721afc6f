//! Arrow schemas of the tables: the in-memory format every sink receives.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, TimeUnit};

use super::{ColumnType, Table};

/// The Arrow type of a column type. Timestamps are microseconds in UTC, like both
/// BigQuery's `TIMESTAMP` and DuckDB's `TIMESTAMPTZ`.
pub fn arrow_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Int64 => DataType::Int64,
        ColumnType::Float64 => DataType::Float64,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::String => DataType::Utf8,
        ColumnType::Bytes => DataType::Binary,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ColumnType::Date => DataType::Date32,
    }
}

/// The table's Arrow schema; each field carries its description as metadata.
pub fn arrow_schema(table: &Table) -> Arc<Schema> {
    let fields: Vec<Field> = table
        .columns
        .iter()
        .map(|column| {
            Field::new(column.name, arrow_type(column.ty), column.nullable).with_metadata(
                HashMap::from([("description".to_owned(), column.description.to_owned())]),
            )
        })
        .collect();
    Arc::new(Schema::new(fields).with_metadata(HashMap::from([(
        "description".to_owned(),
        table.description.to_owned(),
    )])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::SONG_DIM;

    #[test]
    fn song_dim_schema_has_non_nullable_typed_fields() {
        let schema = arrow_schema(&SONG_DIM);
        let fields: Vec<_> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type().clone(), f.is_nullable()))
            .collect();
        assert_eq!(
            fields,
            [
                ("song_key", DataType::Int64, false),
                ("artist", DataType::Utf8, false),
                ("song", DataType::Utf8, false)
            ]
        );
        assert_eq!(schema.metadata()["description"], SONG_DIM.description);
    }
}
