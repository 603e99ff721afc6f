//! Who the pipeline is to Google: one token source, from the `--bigquery-auth` mode, for
//! both the REST client (jobs, tables) and the Storage Write API's gRPC calls, which
//! gcp-bigquery-client's own authenticators cannot serve (they are private to it).

use gcp_bigquery_client::auth::Authenticator;
use gcp_bigquery_client::error::BQError;
use gcp_bigquery_client::yup_oauth2::{
    self, ApplicationDefaultCredentialsAuthenticator, ApplicationDefaultCredentialsFlowOpts,
    AuthorizedUserAuthenticator, ServiceAccountAuthenticator,
    authenticator::{ApplicationDefaultCredentialsTypes, DefaultAuthenticator},
};

use super::api::Auth;

/// What both APIs need: BigQuery's scope, which covers the Storage Write API.
const SCOPES: [&str; 1] = ["https://www.googleapis.com/auth/bigquery"];

/// Tokens for one auth mode, renewed by yup-oauth2 before they expire.
#[derive(Clone)]
pub(crate) enum Credentials {
    /// The emulator takes any bearer token.
    None,
    Google(DefaultAuthenticator),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credentials::None => "Credentials::None",
            Credentials::Google(_) => "Credentials::Google",
        })
    }
}

impl Credentials {
    /// Reads the credentials the mode names. Application-default credentials are, in
    /// order: gcloud's user credentials (an `authorized_user` file at
    /// `GOOGLE_APPLICATION_CREDENTIALS` or gcloud's own path), a service-account key at
    /// `GOOGLE_APPLICATION_CREDENTIALS`, then the metadata server, which is also what
    /// workload identity is on GKE.
    pub(crate) async fn new(auth: &Auth) -> Result<Credentials, BQError> {
        let authenticator = match auth {
            Auth::None => return Ok(Credentials::None),
            Auth::ServiceAccount(path) => {
                let key = yup_oauth2::read_service_account_key(path).await?;
                ServiceAccountAuthenticator::builder(key)
                    .build()
                    .await
                    .map_err(BQError::InvalidServiceAccountAuthenticator)?
            }
            Auth::ApplicationDefault | Auth::WorkloadIdentity => {
                match authorized_user_file(matches!(auth, Auth::ApplicationDefault)).await {
                    Some(path) => {
                        let secret = yup_oauth2::read_authorized_user_secret(path).await?;
                        AuthorizedUserAuthenticator::builder(secret)
                            .build()
                            .await
                            .map_err(BQError::InvalidAuthorizedUserAuthenticator)?
                    }
                    None => {
                        let options = ApplicationDefaultCredentialsFlowOpts::default();
                        match ApplicationDefaultCredentialsAuthenticator::builder(options).await {
                            ApplicationDefaultCredentialsTypes::ServiceAccount(builder) => {
                                builder.build().await
                            }
                            ApplicationDefaultCredentialsTypes::InstanceMetadata(builder) => {
                                builder.build().await
                            }
                        }
                        .map_err(BQError::InvalidApplicationDefaultCredentialsAuthenticator)?
                    }
                }
            }
        };
        Ok(Credentials::Google(authenticator))
    }

    /// A bearer token, or none for the emulator.
    pub(crate) async fn token(&self) -> Result<Option<String>, BQError> {
        match self {
            Credentials::None => Ok(None),
            Credentials::Google(authenticator) => {
                let token = authenticator.token(&SCOPES).await?;
                token
                    .token()
                    .map(|t| Some(t.to_owned()))
                    .ok_or(BQError::NoToken)
            }
        }
    }
}

#[async_trait::async_trait]
impl Authenticator for Credentials {
    async fn access_token(&self) -> Result<String, BQError> {
        Ok(self.token().await?.unwrap_or_else(|| "emulator".to_owned()))
    }
}

/// gcloud's user credentials, where application-default credentials would find them
/// (`GOOGLE_APPLICATION_CREDENTIALS`, else gcloud's path when `gcloud_path`), if the file
/// there is of that kind.
async fn authorized_user_file(gcloud_path: bool) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            gcloud_path.then(|| {
                std::env::var_os("HOME").map(|home| {
                    std::path::PathBuf::from(home)
                        .join(".config/gcloud/application_default_credentials.json")
                })
            })?
        })?;
    let text = tokio::fs::read_to_string(&path).await.ok()?;
    let kind: serde_json::Value = serde_json::from_str(&text).ok()?;
    (kind["type"] == "authorized_user").then_some(path)
}
