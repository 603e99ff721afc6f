# The bucket the pipeline stages Parquet files in before BigQuery loads them, and keeps
# its checkpoint logs in (under <prefix>/_checkpoints/). Staging files are useless once
# loaded, so they are deleted after a few days; the rule matches Parquet files only,
# since a checkpoint's base state object stays in force for as long as the log does not
# fold again, which may be weeks.
terraform {
  required_version = ">= 1.5"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0, < 7.0"
    }
  }
}

resource "google_storage_bucket" "staging" {
  project  = var.project_id
  name     = var.name
  location = var.location

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy

  lifecycle_rule {
    condition {
      age            = var.delete_after_days
      matches_suffix = [".parquet"]
    }
    action {
      type = "Delete"
    }
  }
}
