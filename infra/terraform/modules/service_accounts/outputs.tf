output "pipeline_email" {
  description = "For the pipeline service account's iam.gke.io/gcp-service-account annotation."
  value       = google_service_account.pipeline.email
}

output "simulator_email" {
  description = "For the simulator service account's iam.gke.io/gcp-service-account annotation."
  value       = google_service_account.simulator.email
}
