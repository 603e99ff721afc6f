# The whole GCP side of music-analytics, one module per concern, wired together; the
# environments differ only in the values they pass.
terraform {
  required_version = ">= 1.5"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0, < 7.0"
    }
  }
}

locals {
  apis = [
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "container.googleapis.com",
    "iam.googleapis.com",
    "storage.googleapis.com",
  ]
}

resource "google_project_service" "apis" {
  for_each = toset(local.apis)

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

module "gke" {
  source = "../gke"

  project_id          = var.project_id
  region              = var.region
  name                = var.cluster_name
  release_channel     = var.release_channel
  deletion_protection = var.protect

  depends_on = [google_project_service.apis]
}

module "staging_bucket" {
  source = "../staging_bucket"

  project_id        = var.project_id
  name              = "${var.project_id}-music-analytics-staging"
  location          = var.location
  delete_after_days = var.staging_days
  force_destroy     = !var.protect

  depends_on = [google_project_service.apis]
}

module "bigquery" {
  source = "../bigquery"

  project_id                 = var.project_id
  dataset_id                 = var.dataset_id
  location                   = var.location
  ddl_dir                    = var.ddl_dir
  deletion_protection        = var.protect
  delete_contents_on_destroy = !var.protect

  depends_on = [google_project_service.apis]
}

module "artifact_registry" {
  source = "../artifact_registry"

  project_id = var.project_id
  region     = var.region

  depends_on = [google_project_service.apis]
}

module "service_accounts" {
  source = "../service_accounts"

  project_id     = var.project_id
  dataset_id     = module.bigquery.dataset_id
  staging_bucket = module.staging_bucket.name

  # The workload pool exists once the cluster does.
  depends_on = [module.gke]
}
