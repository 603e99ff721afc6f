# One Google service account per workload, reached from Kubernetes through Workload
# Identity: no key is ever created. The pipeline may run BigQuery jobs, write the
# warehouse dataset and use the staging bucket; the simulator may do nothing in GCP.
terraform {
  required_version = ">= 1.5"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0, < 7.0"
    }
  }
}

resource "google_service_account" "pipeline" {
  project      = var.project_id
  account_id   = "${var.prefix}-pipeline"
  display_name = "music-analytics pipeline"
  description  = "Writes the warehouse: BigQuery jobs, the dataset, the staging bucket."
}

resource "google_service_account" "simulator" {
  project      = var.project_id
  account_id   = "${var.prefix}-simulator"
  display_name = "music-analytics simulator"
  description  = "Holds no role: the simulator only talks to Kafka."
}

# Load and query jobs run in the project.
resource "google_project_iam_member" "pipeline_jobs" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = google_service_account.pipeline.member
}

# Tables of the warehouse dataset only: create, MERGE, read back checkpoints.
resource "google_bigquery_dataset_iam_member" "pipeline_data" {
  project    = var.project_id
  dataset_id = var.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = google_service_account.pipeline.member
}

# Staging files: written by the pipeline, read by its load jobs (which run as it).
resource "google_storage_bucket_iam_member" "pipeline_staging" {
  bucket = var.staging_bucket
  role   = "roles/storage.objectAdmin"
  member = google_service_account.pipeline.member
}

resource "google_service_account_iam_member" "pipeline_workload_identity" {
  service_account_id = google_service_account.pipeline.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${var.namespace}/${var.pipeline_ksa}]"
}

resource "google_service_account_iam_member" "simulator_workload_identity" {
  service_account_id = google_service_account.simulator.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${var.namespace}/${var.simulator_ksa}]"
}
