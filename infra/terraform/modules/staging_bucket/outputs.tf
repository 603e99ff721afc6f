output "name" {
  description = "Bucket name."
  value       = google_storage_bucket.staging.name
}

output "staging_uri" {
  description = "What the pipeline's --staging takes."
  value       = "gs://${google_storage_bucket.staging.name}/staging"
}
