# The prod environment: the whole stack with prod's settings. State lives in GCS; the
# bucket is given at init (`cargo xtask infra` passes PROJECT-tfstate).
terraform {
  required_version = ">= 1.5"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0, < 7.0"
    }
  }
  backend "gcs" {
    prefix = "music-analytics/prod"
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

module "music_analytics" {
  source = "../../modules/music_analytics"

  project_id      = var.project_id
  region          = var.region
  location        = var.location
  ddl_dir         = "${path.root}/../../../../warehouse/ddl/bigquery"
  release_channel = "STABLE"
  staging_days    = 3
  protect         = true
}
