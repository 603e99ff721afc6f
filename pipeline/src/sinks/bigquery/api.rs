//! The BigQuery requests the sink makes (datasets, tables, load and query jobs) over
//! `gcp-bigquery-client`, with retries of what is worth retrying: throttling, server
//! errors and the network, with exponential backoff and jitter.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gcp_bigquery_client::Client;
use gcp_bigquery_client::error::BQError;
use gcp_bigquery_client::model::dataset::Dataset;
use gcp_bigquery_client::model::error_proto::ErrorProto;
use gcp_bigquery_client::model::get_query_results_parameters::GetQueryResultsParameters;
use gcp_bigquery_client::model::get_query_results_response::GetQueryResultsResponse;
use gcp_bigquery_client::model::job::Job;
use gcp_bigquery_client::model::query_request::QueryRequest;
use gcp_bigquery_client::model::query_response::{QueryResponse, ResultSet};
use gcp_bigquery_client::model::table::Table;

use super::credentials::Credentials;
use crate::error::PipelineError;
use crate::metrics::ApiCalls;

/// How the pipeline proves who it is to BigQuery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's user credentials, or the metadata
    /// server, in the order Google's libraries try them.
    ApplicationDefault,
    /// A service-account key file.
    ServiceAccount(std::path::PathBuf),
    /// The GKE metadata server's token for the pod's Kubernetes service account.
    WorkloadIdentity,
    /// No credentials: for the BigQuery emulator only.
    None,
}

impl std::fmt::Display for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::ApplicationDefault => f.write_str("application-default"),
            Auth::ServiceAccount(path) => write!(f, "service-account:{}", path.display()),
            Auth::WorkloadIdentity => f.write_str("workload-identity"),
            Auth::None => f.write_str("none"),
        }
    }
}

impl std::str::FromStr for Auth {
    type Err = String;

    fn from_str(text: &str) -> Result<Auth, String> {
        match text {
            "application-default" => Ok(Auth::ApplicationDefault),
            "workload-identity" => Ok(Auth::WorkloadIdentity),
            "none" => Ok(Auth::None),
            _ => match text.strip_prefix("service-account:") {
                Some(path) if !path.is_empty() => Ok(Auth::ServiceAccount(path.into())),
                _ => Err(format!(
                    "{text:?}: expected application-default, workload-identity, service-account:PATH or none"
                )),
            },
        }
    }
}

/// How often and how patiently to retry.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            attempts: 8,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

pub struct Api {
    client: Client,
    /// Shared with the Storage Write API's calls.
    pub(crate) credentials: Credentials,
    runtime: Arc<tokio::runtime::Runtime>,
    pub project: String,
    retry: Retry,
    calls: ApiCalls,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("project", &self.project)
            .finish()
    }
}

/// Where the next page of a query's rows is.
struct NextPage {
    job: String,
    location: Option<String>,
    token: String,
}

impl NextPage {
    /// The page after one that came with `token`, if the token says there is one.
    fn after(job: &str, location: &Option<String>, token: &Option<String>) -> Option<NextPage> {
        token
            .as_ref()
            .filter(|t| !t.is_empty())
            .map(|token| NextPage {
                job: job.to_owned(),
                location: location.clone(),
                token: token.clone(),
            })
    }
}

/// A failed request, before retries decide what it means.
pub(super) struct Failure {
    pub(super) message: String,
    pub(super) retryable: bool,
}

/// Where one kind of request is counted.
pub(super) struct Counted<'a> {
    pub(super) calls: &'a ApiCalls,
    pub(super) service: &'static str,
    pub(super) call: &'static str,
}

/// Runs `request` on `runtime` until it succeeds, fails for good, or `retry`'s attempts
/// run out, counting every attempt: what both BigQuery APIs share.
pub(super) fn retrying<T, F>(
    runtime: &tokio::runtime::Runtime,
    retry: Retry,
    counted: Counted<'_>,
    doing: &str,
    mut request: impl FnMut() -> F,
) -> Result<T, PipelineError>
where
    F: Future<Output = Result<T, Failure>>,
{
    let mut delay = retry.first_delay;
    let mut attempt = 1;
    loop {
        counted.calls.count(counted.service, counted.call);
        match runtime.block_on(request()) {
            Ok(value) => return Ok(value),
            Err(failure) if failure.retryable && attempt < retry.attempts => {
                let pause = jitter(delay);
                tracing::warn!(
                    attempt,
                    retry_in_ms = pause.as_millis() as u64,
                    "BigQuery: {doing}: {}",
                    failure.message
                );
                std::thread::sleep(pause);
                delay = (delay * 2).min(retry.max_delay);
                attempt += 1;
            }
            Err(failure) => {
                let tries = if failure.retryable {
                    format!(" (gave up after {attempt} attempts)")
                } else {
                    String::new()
                };
                return Err(PipelineError::BigQuery {
                    message: format!("{doing}: {}{tries}", failure.message),
                    retryable: failure.retryable,
                });
            }
        }
    }
}

impl From<BQError> for Failure {
    fn from(error: BQError) -> Failure {
        let retryable = match &error {
            BQError::RequestError(_) | BQError::ConnectionPoolError(_) => true,
            BQError::ResponseError { error } => {
                let code = error.error.code;
                code == 429
                    || code >= 500
                    || error
                        .error
                        .errors
                        .iter()
                        .filter_map(|e| e.get("reason"))
                        .any(|reason| retryable_reason(reason))
            }
            _ => false,
        };
        let message = match &error {
            BQError::ResponseError { error } => {
                format!("{} (HTTP {})", error.error.message, error.error.code)
            }
            other => other.to_string(),
        };
        Failure { message, retryable }
    }
}

fn retryable_reason(reason: &str) -> bool {
    matches!(
        reason,
        "rateLimitExceeded" | "jobRateLimitExceeded" | "backendError" | "internalError"
    )
}

fn job_failure(errors: &[ErrorProto]) -> Failure {
    let message = errors
        .iter()
        .map(|e| {
            let reason = e.reason.as_deref().unwrap_or("error");
            format!(
                "{reason}: {}",
                e.message.as_deref().unwrap_or("(no message)")
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    Failure {
        retryable: errors
            .iter()
            .all(|e| e.reason.as_deref().is_some_and(retryable_reason)),
        message,
    }
}

impl Api {
    /// `endpoint` is the REST base up to `/bigquery/v2`; `None` is Google's.
    pub fn connect(
        project: &str,
        endpoint: Option<&str>,
        auth: &Auth,
        runtime: Arc<tokio::runtime::Runtime>,
    ) -> Result<Api, PipelineError> {
        let mut builder = gcp_bigquery_client::client_builder::ClientBuilder::new();
        if let Some(endpoint) = endpoint {
            builder.with_v2_base_url(endpoint.trim_end_matches('/').to_owned());
        }
        let credentials =
            runtime
                .block_on(Credentials::new(auth))
                .map_err(|e| PipelineError::BigQuery {
                    message: format!("cannot set up credentials ({auth}): {e}"),
                    retryable: false,
                })?;
        let client = runtime
            .block_on(builder.build_from_authenticator(Arc::new(credentials.clone())))
            .map_err(|e| PipelineError::BigQuery {
                message: format!("cannot set up the BigQuery client: {e}"),
                retryable: false,
            })?;
        Ok(Api {
            client,
            credentials,
            runtime,
            project: project.to_owned(),
            retry: Retry::default(),
            calls: ApiCalls::default(),
        })
    }

    /// Counts its requests into `calls`.
    pub fn with_calls(mut self, calls: ApiCalls) -> Api {
        self.calls = calls;
        self
    }

    pub fn with_retry(mut self, retry: Retry) -> Api {
        self.retry = retry;
        self
    }

    /// Runs `request` until it succeeds, fails for good, or retries run out.
    fn retrying<T, F>(
        &self,
        doing: &str,
        call: &'static str,
        request: impl FnMut() -> F,
    ) -> Result<T, PipelineError>
    where
        F: Future<Output = Result<T, Failure>>,
    {
        let counted = Counted {
            calls: &self.calls,
            service: "bigquery",
            call,
        };
        retrying(&self.runtime, self.retry, counted, doing, request)
    }

    /// Creates the dataset in `location` unless it exists.
    pub fn ensure_dataset(&self, dataset: &str, location: &str) -> Result<(), PipelineError> {
        let exists = self.retrying(
            &format!("read dataset {dataset}"),
            "datasets.get",
            || async {
                match self.client.dataset().get(&self.project, dataset).await {
                    Ok(_) => Ok(true),
                    Err(BQError::ResponseError { error }) if error.error.code == 404 => Ok(false),
                    Err(e) => Err(Failure::from(e)),
                }
            },
        )?;
        if !exists {
            self.retrying(
                &format!("create dataset {dataset}"),
                "datasets.insert",
                || async {
                    let dataset = Dataset::new(&self.project, dataset).location(location);
                    match self.client.dataset().create(dataset).await {
                        Ok(_) => Ok(()),
                        // Another instance made it first.
                        Err(BQError::ResponseError { error }) if error.error.code == 409 => Ok(()),
                        Err(e) => Err(Failure::from(e)),
                    }
                },
            )?;
        }
        Ok(())
    }

    /// The names of the dataset's tables.
    /// Every table and view of the dataset: its name and type (`TABLE`, `VIEW`, …).
    pub fn tables(&self, dataset: &str) -> Result<Vec<(String, String)>, PipelineError> {
        let mut names = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let list = self.retrying(
                &format!("list the tables of {dataset}"),
                "tables.list",
                || async {
                    let mut options =
                        gcp_bigquery_client::table::ListOptions::default().max_results(1000);
                    if let Some(token) = &page {
                        options = options.page_token(token.clone());
                    }
                    self.client
                        .table()
                        .list(&self.project, dataset, options)
                        .await
                        .map_err(Failure::from)
                },
            )?;
            names.extend(
                list.tables
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| (t.table_reference.table_id, t.r#type.unwrap_or_default())),
            );
            match list.next_page_token {
                Some(token) if !token.is_empty() => page = Some(token),
                _ => return Ok(names),
            }
        }
    }

    pub fn create_table(&self, table: Table) -> Result<(), PipelineError> {
        let name = table.table_reference.table_id.clone();
        self.retrying(&format!("create table {name}"), "tables.insert", || async {
            match self.client.table().create(table.clone()).await {
                Ok(_) => Ok(()),
                // Another instance made it first.
                Err(BQError::ResponseError { error }) if error.error.code == 409 => Ok(()),
                Err(e) => Err(Failure::from(e)),
            }
        })
    }

    /// Starts a job and returns its id and location.
    pub fn start_job(
        &self,
        doing: &str,
        job: Job,
    ) -> Result<(String, Option<String>), PipelineError> {
        let kind = match &job.configuration {
            Some(c) if c.load.is_some() => "jobs.insert:load",
            Some(c) if c.query.is_some() => "jobs.insert:query",
            _ => "jobs.insert",
        };
        let job = self.retrying(doing, kind, || async {
            self.client
                .job()
                .insert(&self.project, job.clone())
                .await
                .map_err(Failure::from)
        })?;
        let reference = job.job_reference.unwrap_or_default();
        let id = reference.job_id.ok_or_else(|| PipelineError::BigQuery {
            message: format!("{doing}: the job came back without an id"),
            retryable: false,
        })?;
        Ok((id, reference.location))
    }

    /// Waits for a job to finish; its errors are the result.
    pub fn wait_for_job(
        &self,
        doing: &str,
        id: &str,
        location: Option<&str>,
    ) -> Result<Job, PipelineError> {
        let began = Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            let job = self.retrying(doing, "jobs.get", || async {
                self.client
                    .job()
                    .get_job(&self.project, id, location)
                    .await
                    .map_err(Failure::from)
            })?;
            let status = job.status.clone().unwrap_or_default();
            if status.state.as_deref() == Some("DONE") {
                if let Some(error) = status.error_result {
                    let mut errors = vec![error];
                    errors.extend(status.errors.unwrap_or_default());
                    let failure = job_failure(&errors);
                    return Err(PipelineError::BigQuery {
                        message: format!("{doing}: job {id} failed: {}", failure.message),
                        retryable: failure.retryable,
                    });
                }
                return Ok(job);
            }
            if began.elapsed() > Duration::from_secs(30 * 60) {
                return Err(PipelineError::BigQuery {
                    message: format!("{doing}: job {id} still running after 30 minutes"),
                    retryable: true,
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// Runs a query and returns every row (all pages), `columns` text cells each.
    pub fn rows(
        &self,
        doing: &str,
        sql: &str,
        columns: usize,
    ) -> Result<Vec<Vec<Option<String>>>, PipelineError> {
        let (mut result, mut next) = self.query_page(doing, sql)?;
        let mut rows = Vec::new();
        loop {
            while result.next_row() {
                let row = (0..columns)
                    .map(|i| result.get_string(i))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| PipelineError::BigQuery {
                        message: format!("{doing}: unexpected answer: {e}"),
                        retryable: false,
                    })?;
                rows.push(row);
            }
            let Some(page) = next else {
                return Ok(rows);
            };
            let answer =
                self.results_page(doing, &page.job, page.location.clone(), Some(page.token))?;
            next = NextPage::after(&page.job, &page.location, &answer.page_token);
            result = ResultSet::new_from_get_query_results_response(answer);
        }
    }

    /// One page of a finished query job's rows.
    fn results_page(
        &self,
        doing: &str,
        id: &str,
        location: Option<String>,
        page_token: Option<String>,
    ) -> Result<GetQueryResultsResponse, PipelineError> {
        self.retrying(doing, "jobs.getQueryResults", || async {
            let parameters = GetQueryResultsParameters {
                location: location.clone(),
                page_token: page_token.clone(),
                ..Default::default()
            };
            self.client
                .job()
                .get_query_results(&self.project, id, parameters)
                .await
                .map_err(Failure::from)
        })
    }

    /// Runs a query or script in GoogleSQL and returns its first page of rows.
    pub fn query(&self, doing: &str, sql: &str) -> Result<ResultSet, PipelineError> {
        self.query_page(doing, sql).map(|(page, _)| page)
    }

    /// The first page of a query's rows, and the next page if there is one.
    fn query_page(
        &self,
        doing: &str,
        sql: &str,
    ) -> Result<(ResultSet, Option<NextPage>), PipelineError> {
        let response: QueryResponse = self.retrying(doing, "jobs.query", || async {
            let mut request = QueryRequest::new(sql);
            request.use_legacy_sql = false;
            request.timeout_ms = Some(60_000);
            let response = self
                .client
                .job()
                .query(&self.project, request)
                .await
                .map_err(Failure::from)?;
            // Some servers answer a failed statement with 200 and the errors inside.
            match response.errors.as_deref() {
                Some(errors) if !errors.is_empty() => Err(job_failure(errors)),
                _ => Ok(response),
            }
        })?;
        if response.job_complete == Some(false) {
            let reference = response.job_reference.clone().unwrap_or_default();
            let id = reference.job_id.ok_or_else(|| PipelineError::BigQuery {
                message: format!("{doing}: an unfinished query came back without a job id"),
                retryable: false,
            })?;
            self.wait_for_job(doing, &id, reference.location.as_deref())?;
            let results = self.results_page(doing, &id, reference.location.clone(), None)?;
            let next = NextPage::after(&id, &reference.location, &results.page_token);
            return Ok((
                ResultSet::new_from_get_query_results_response(results),
                next,
            ));
        }
        let reference = response.job_reference.clone().unwrap_or_default();
        let next = reference
            .job_id
            .and_then(|id| NextPage::after(&id, &reference.location, &response.page_token));
        Ok((ResultSet::new_from_query_response(response), next))
    }
}

/// Between half and all of `delay`, so that instances that failed together do not retry
/// together.
fn jitter(delay: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let fraction = 0.5 + f64::from(nanos % 1000) / 2000.0;
    delay.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_modes_parse_and_a_wrong_one_names_the_choices() {
        assert_eq!("none".parse(), Ok(Auth::None));
        assert_eq!(
            "service-account:/k.json".parse(),
            Ok(Auth::ServiceAccount("/k.json".into()))
        );
        let error = "service-account:".parse::<Auth>().unwrap_err();
        assert!(error.contains("workload-identity"), "{error}");
    }

    #[test]
    fn only_throttling_and_server_errors_are_retried() {
        assert!(
            job_failure(&[ErrorProto {
                reason: Some("rateLimitExceeded".into()),
                ..Default::default()
            }])
            .retryable
        );
        assert!(
            !job_failure(&[ErrorProto {
                reason: Some("accessDenied".into()),
                ..Default::default()
            }])
            .retryable
        );
        let delay = jitter(Duration::from_secs(2));
        assert!(delay >= Duration::from_secs(1) && delay <= Duration::from_secs(2));
    }
}
