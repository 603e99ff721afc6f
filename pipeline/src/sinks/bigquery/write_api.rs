//! The Storage Write API calls the sink makes (create a BUFFERED stream, append rows at
//! an offset, flush a stream up to an offset), over the gRPC client gcp-bigquery-client
//! generates: its own wrapper sets no offsets, and offsets are what make a retried
//! append recognisable (`ALREADY_EXISTS`) instead of a duplicate.
//!
//! Each append is a bidirectional AppendRows call carrying one request, opened and
//! closed per table and batch: a long-lived connection per stream would save a round
//! trip a second, at the cost of reconnecting and replaying in-flight requests by hand.
//!
//! Streams are BUFFERED, flushed per stream: nothing here commits several streams
//! together, which BigQuery allows only for PENDING streams of one table (the emulator
//! would take streams of several tables in one BatchCommitWriteStreams).

use std::sync::Arc;

use gcp_bigquery_client::google::cloud::bigquery::storage::v1::append_rows_request::{
    ProtoData, Rows,
};
use gcp_bigquery_client::google::cloud::bigquery::storage::v1::append_rows_response::Response;
use gcp_bigquery_client::google::cloud::bigquery::storage::v1::big_query_write_client::BigQueryWriteClient;
use gcp_bigquery_client::google::cloud::bigquery::storage::v1::write_stream::Type as StreamType;
use gcp_bigquery_client::google::cloud::bigquery::storage::v1::{
    AppendRowsRequest, CreateWriteStreamRequest, FlushRowsRequest, ProtoRows, ProtoSchema,
    WriteStream,
};
use prost_types::DescriptorProto;
use tonic::Code;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use super::api::{Counted, Failure, Retry, retrying};
use super::credentials::Credentials;
use crate::error::PipelineError;
use crate::metrics::ApiCalls;

/// Google's endpoint of the API.
pub const GOOGLE_ENDPOINT: &str = "https://bigquerystorage.googleapis.com";
/// An AppendRows request may carry 10 MB; rows are sent in requests of at most this.
const REQUEST_BYTES: usize = 8 << 20;
/// What the client accepts and sends in one message.
const MESSAGE_BYTES: usize = 20 << 20;

/// How an append ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Appended {
    Written,
    /// The stream held rows at that offset already: an earlier attempt of this append
    /// landed, and its answer was lost.
    AlreadyThere,
}

pub(crate) struct WriteApi {
    client: BigQueryWriteClient<Channel>,
    credentials: Credentials,
    runtime: Arc<tokio::runtime::Runtime>,
    retry: Retry,
    calls: ApiCalls,
    /// FlushRows takes an exclusive offset (bqemulator) rather than BigQuery's inclusive.
    flush_exclusive: bool,
}

impl std::fmt::Debug for WriteApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteApi").finish_non_exhaustive()
    }
}

impl WriteApi {
    /// A client of `endpoint` (`https://…` with the system's roots, or plain `http://`
    /// for an emulator, `flush_exclusive` for bqemulator's). It connects on the first
    /// call.
    pub(crate) fn connect(
        endpoint: &str,
        credentials: Credentials,
        runtime: Arc<tokio::runtime::Runtime>,
        retry: Retry,
        calls: ApiCalls,
        flush_exclusive: bool,
    ) -> Result<WriteApi, PipelineError> {
        let setting = |e: tonic::transport::Error| {
            PipelineError::Setting(format!("the Storage Write API endpoint {endpoint:?}: {e}"))
        };
        let mut target = Endpoint::from_shared(endpoint.to_owned()).map_err(setting)?;
        if endpoint.starts_with("https://") {
            target = target
                .tls_config(ClientTlsConfig::new().with_enabled_roots())
                .map_err(setting)?;
        }
        // The channel's background task lives on the sink's runtime.
        let channel = {
            let _entered = runtime.enter();
            target.connect_lazy()
        };
        let client = BigQueryWriteClient::new(channel)
            .max_encoding_message_size(MESSAGE_BYTES)
            .max_decoding_message_size(MESSAGE_BYTES);
        Ok(WriteApi {
            client,
            credentials,
            runtime,
            retry,
            calls,
            flush_exclusive,
        })
    }

    /// Creates a BUFFERED stream on `table` (`projects/P/datasets/D/tables/T`) and
    /// returns its name.
    pub(crate) fn create_stream(&self, table: &str) -> Result<String, PipelineError> {
        let request = CreateWriteStreamRequest {
            parent: table.to_owned(),
            write_stream: Some(WriteStream {
                r#type: StreamType::Buffered as i32,
                ..WriteStream::default()
            }),
        };
        let created = self.call(
            &format!("create a write stream on {table}"),
            "CreateWriteStream",
            |mut client, request: tonic::Request<CreateWriteStreamRequest>| async move {
                client.create_write_stream(request).await
            },
            request,
            ("parent", table),
        )?;
        Ok(created.into_inner().name)
    }

    /// Appends `rows` (encoded as `schema`) to `stream` from `offset` on, in requests of
    /// at most [`REQUEST_BYTES`]. Rows the stream holds already at those offsets are
    /// [`Appended::AlreadyThere`]; an offset past the stream's end is an error.
    pub(crate) fn append(
        &self,
        stream: &str,
        schema: &DescriptorProto,
        rows: &[Vec<u8>],
        offset: i64,
    ) -> Result<Appended, PipelineError> {
        let mut outcome = Appended::Written;
        let mut at = offset;
        for chunk in chunks(rows, REQUEST_BYTES) {
            let request = AppendRowsRequest {
                write_stream: stream.to_owned(),
                offset: Some(at),
                rows: Some(Rows::ProtoRows(ProtoData {
                    writer_schema: Some(ProtoSchema {
                        proto_descriptor: Some(schema.clone()),
                    }),
                    rows: Some(ProtoRows {
                        serialized_rows: chunk.to_vec(),
                    }),
                })),
                trace_id: "music-analytics".to_owned(),
                ..AppendRowsRequest::default()
            };
            let answer = self.call(
                &format!("append {} rows to {stream} at {at}", chunk.len()),
                "AppendRows",
                |mut client, request: tonic::Request<AppendRowsRequest>| async move {
                    let (metadata, extensions, message) = request.into_parts();
                    let streaming = tonic::Request::from_parts(
                        metadata,
                        extensions,
                        futures_util::stream::iter([message]),
                    );
                    let mut answers = client.append_rows(streaming).await?.into_inner();
                    match answers.message().await? {
                        Some(answer) => match answer.response {
                            Some(Response::AppendResult(_)) => Ok(Appended::Written),
                            Some(Response::Error(status)) => {
                                let code = Code::from_i32(status.code);
                                if code == Code::AlreadyExists {
                                    Ok(Appended::AlreadyThere)
                                } else {
                                    Err(tonic::Status::new(code, status.message))
                                }
                            }
                            None => Err(tonic::Status::internal("an empty AppendRows answer")),
                        },
                        None => Err(tonic::Status::internal("no AppendRows answer")),
                    }
                },
                request,
                ("write_stream", stream),
            );
            if answer? == Appended::AlreadyThere {
                outcome = Appended::AlreadyThere;
            }
            at += chunk.len() as i64;
        }
        Ok(outcome)
    }

    /// Makes the stream's first `rows` rows visible (see [`flush_offset`] for the
    /// offset that takes). A stream flushed that far already answers as the server does:
    /// the emulator with an error saying so, which is success here.
    pub(crate) fn flush(&self, stream: &str, rows: i64) -> Result<(), PipelineError> {
        let offset = flush_offset(rows, self.flush_exclusive);
        let request = FlushRowsRequest {
            write_stream: stream.to_owned(),
            offset: Some(offset),
        };
        self.call(
            &format!("flush {stream} to {offset}"),
            "FlushRows",
            |mut client, request: tonic::Request<FlushRowsRequest>| async move {
                match client.flush_rows(request).await {
                    Err(status)
                        if status.code() == Code::OutOfRange
                            && status.message().contains("already flushed") =>
                    {
                        Ok(())
                    }
                    answer => answer.map(|_| ()),
                }
            },
            request,
            ("write_stream", stream),
        )
    }

    /// One call, retried while it fails in a way worth retrying, with the credentials'
    /// token and the routing header Google's front ends read.
    fn call<M: Clone, T, F>(
        &self,
        doing: &str,
        call: &'static str,
        send: impl Fn(BigQueryWriteClient<Channel>, tonic::Request<M>) -> F,
        message: M,
        routing: (&str, &str),
    ) -> Result<T, PipelineError>
    where
        F: Future<Output = Result<T, tonic::Status>>,
    {
        let counted = Counted {
            calls: &self.calls,
            service: "bigquery_storage",
            call,
        };
        retrying(&self.runtime, self.retry, counted, doing, || {
            let message = message.clone();
            let send = &send;
            async move {
                let mut request = tonic::Request::new(message);
                let metadata = request.metadata_mut();
                let routing = format!("{}={}", routing.0, percent_encoded(routing.1));
                metadata.insert(
                    "x-goog-request-params",
                    routing.parse().map_err(|_| Failure {
                        message: format!("a routing header that is not ASCII: {routing}"),
                        retryable: false,
                    })?,
                );
                if let Some(token) = self.credentials.token().await.map_err(|e| Failure {
                    message: format!("no token: {e}"),
                    retryable: true,
                })? {
                    metadata.insert(
                        "authorization",
                        format!("Bearer {token}").parse().map_err(|_| Failure {
                            message: "a token that is not ASCII".to_owned(),
                            retryable: false,
                        })?,
                    );
                }
                send(self.client.clone(), request)
                    .await
                    .map_err(|status| Failure {
                        retryable: retryable(status.code()),
                        message: format!("{:?}: {}", status.code(), status.message()),
                    })
            }
        })
    }
}

/// The offset to give FlushRows so that every row before `rows` becomes visible.
/// BigQuery's offset is inclusive ("rows before this offset, including this offset"):
/// the last row's, `rows - 1`. The emulator (bqemulator 1.4) takes it as exclusive, and
/// with BigQuery's number would keep the last row buffered, so a client of the emulator
/// is connected with `flush_exclusive` set, and only then.
fn flush_offset(rows: i64, exclusive: bool) -> i64 {
    if exclusive { rows } else { rows - 1 }
}

/// What is worth another attempt: the service unavailable or overloaded, a deadline
/// passed, an aborted request. A refusal (bad argument, permission, a missing table, an
/// offset past the end) fails the same way again.
fn retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::Internal
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Unknown
    )
}

/// `rows` in runs of at most `limit` bytes (a row larger than that alone).
fn chunks(rows: &[Vec<u8>], limit: usize) -> Vec<&[Vec<u8>]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, row) in rows.iter().enumerate() {
        if i > start && bytes + row.len() > limit {
            out.push(&rows[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += row.len();
    }
    if start < rows.len() {
        out.push(&rows[start..]);
    }
    out
}

/// A header value's parameter, percent-encoded but for the characters URLs leave as they
/// are, as Google's client libraries send routing parameters.
fn percent_encoded(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bigquery_flushes_through_the_last_rows_offset_and_the_emulator_up_to_it() {
        assert_eq!(flush_offset(10, false), 9, "BigQuery: inclusive");
        assert_eq!(flush_offset(10, true), 10, "bqemulator: exclusive");
    }

    #[test]
    fn rows_are_sent_in_requests_under_the_limit() {
        let rows: Vec<Vec<u8>> = [4, 4, 4, 9, 1].iter().map(|n| vec![0; *n]).collect();
        let sizes: Vec<usize> = chunks(&rows, 8).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [2, 1, 1, 1], "a row over the limit goes alone");
        assert!(chunks(&[], 8).is_empty());
    }

    #[test]
    fn routing_parameters_are_percent_encoded() {
        assert_eq!(
            percent_encoded("projects/p/datasets/d_1/tables/t"),
            "projects%2Fp%2Fdatasets%2Fd_1%2Ftables%2Ft"
        );
    }
}
