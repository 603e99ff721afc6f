//! Parquet staging: one file per table and batch, named after the batch's offsets, in a
//! GCS bucket (`gs://bucket/prefix`) or a local directory. BigQuery loads batches from
//! here, as the original pipeline staged in GCS before loading.

use std::sync::Arc;

use arrow_array::RecordBatch;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::error::{Cause, PipelineError};
use crate::metrics::ApiCalls;

/// Cloned by a checkpoint log on the same location: its handles are shared.
#[derive(Clone)]
pub struct Staging {
    store: Arc<dyn ObjectStore>,
    /// Counts the requests to the store, as `gcs` or `file`.
    calls: ApiCalls,
    /// The staging location as load jobs name it: `gs://bucket/prefix` or `file:///dir`.
    url: String,
    prefix: ObjectPath,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Staging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staging").field("url", &self.url).finish()
    }
}

impl Staging {
    /// `gs://bucket[/prefix]` (credentials from the environment: application-default
    /// credentials, `GOOGLE_APPLICATION_CREDENTIALS` or workload identity) or a local
    /// directory, created when missing.
    pub fn open(
        location: &str,
        runtime: Arc<tokio::runtime::Runtime>,
    ) -> Result<Staging, PipelineError> {
        let fail = |doing: &str, error: Cause| PipelineError::Staging {
            location: location.to_owned(),
            doing: doing.to_owned(),
            error,
        };
        if let Some(rest) = location.strip_prefix("gs://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(PipelineError::Setting(format!(
                    "staging {location:?}: no bucket name after gs://"
                )));
            }
            // A few quick retries: the runner retries a failed batch whole, with its
            // own backoff and not-ready meanwhile, so a long wait inside one request
            // (the default is up to three minutes) only hides the failure.
            let retry = object_store::RetryConfig {
                max_retries: 3,
                retry_timeout: std::time::Duration::from_secs(30),
                ..object_store::RetryConfig::default()
            };
            let store = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(bucket)
                .with_retry(retry)
                .build()
                .map_err(|e| fail("cannot set up GCS", e.into()))?;
            let prefix = prefix.trim_matches('/');
            return Ok(Staging {
                store: Arc::new(store),
                calls: ApiCalls::default(),
                url: format!("gs://{bucket}"),
                prefix: ObjectPath::from(prefix),
                runtime,
            });
        }
        let dir = location.strip_prefix("file://").unwrap_or(location);
        std::fs::create_dir_all(dir).map_err(|e| fail("cannot create it", e.into()))?;
        let dir = std::fs::canonicalize(dir).map_err(|e| fail("cannot resolve it", e.into()))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| fail("cannot open it", e.into()))?;
        Ok(Staging {
            store: Arc::new(store),
            calls: ApiCalls::default(),
            url: format!("file://{}", dir.display()),
            prefix: ObjectPath::default(),
            runtime,
        })
    }

    /// Writes `<prefix>/<table>/<batch>.parquet` and returns its URI. The same batch
    /// writes the same name, so a replay overwrites rather than adds.
    pub fn put(
        &self,
        table: &str,
        batch_id: &str,
        batch: &RecordBatch,
    ) -> Result<String, PipelineError> {
        let bytes =
            encode(batch).map_err(|e| self.error(format!("cannot encode {table}"), e.into()))?;
        let path = self
            .prefix
            .parts()
            .chain([table.into(), format!("{batch_id}.parquet").as_str().into()])
            .collect::<ObjectPath>();
        self.count("objects.put");
        self.runtime
            .block_on(self.store.put(&path, bytes.into()))
            .map_err(|e| self.error(format!("cannot write {path}"), e.into()))?;
        Ok(format!("{}/{path}", self.url))
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Counts its requests (and those of a checkpoint log on it) into `calls`.
    pub fn with_calls(mut self, calls: ApiCalls) -> Staging {
        self.calls = calls;
        self
    }

    /// Counts one request to the store.
    pub(crate) fn count(&self, call: &'static str) {
        self.calls.count(self.service(), call);
    }

    fn service(&self) -> &'static str {
        if self.url.starts_with("gs://") {
            "gcs"
        } else {
            "file"
        }
    }

    /// The folder under the bucket or directory that everything is written below.
    pub(crate) fn prefix(&self) -> &ObjectPath {
        &self.prefix
    }

    pub(crate) fn runtime(&self) -> &Arc<tokio::runtime::Runtime> {
        &self.runtime
    }

    fn error(&self, doing: String, error: Cause) -> PipelineError {
        PipelineError::Staging {
            location: self.url.clone(),
            doing,
            error,
        }
    }
}

/// One Parquet file with Snappy pages, the compression BigQuery loads fastest.
pub fn encode(batch: &RecordBatch) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(properties))?;
    writer.write(batch)?;
    writer.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn runtime() -> Arc<tokio::runtime::Runtime> {
        Arc::new(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        )
    }

    #[test]
    fn a_local_staging_file_reads_back_as_the_batch_under_its_deterministic_name() {
        let dir = std::env::temp_dir().join(format!("staging-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let staging = Staging::open(dir.to_str().unwrap(), runtime()).unwrap();
        let schema = Arc::new(arrow_schema::Schema::new(vec![
            arrow_schema::Field::new("k", arrow_schema::DataType::Int64, false),
            arrow_schema::Field::new("v", arrow_schema::DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("a"), None])),
            ],
        )
        .unwrap();
        let uri = staging
            .put("song_dim", "listen_events-0-5-9", &batch)
            .unwrap();
        let path = dir
            .canonicalize()
            .unwrap()
            .join("song_dim/listen_events-0-5-9.parquet");
        assert_eq!(uri, format!("file://{}", path.display()));
        let file = std::fs::File::open(&path).unwrap();
        let read: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(read, vec![batch]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_gcs_location_without_a_bucket_is_refused() {
        let error = Staging::open("gs://", runtime()).unwrap_err().to_string();
        assert!(error.contains("no bucket name"), "{error}");
    }
}
