output "cluster" {
  description = "GKE cluster name and region."
  value       = { name = module.gke.name, location = module.gke.location }
}

output "bigquery_dataset" {
  description = "PROJECT.DATASET for the pipeline's --bigquery."
  value       = module.bigquery.dataset
}

output "staging_uri" {
  description = "gs://BUCKET/staging for the pipeline's --staging."
  value       = module.staging_bucket.staging_uri
}

output "image_repository" {
  description = "Where `docker push` sends our images."
  value       = module.artifact_registry.repository
}

output "pipeline_service_account" {
  description = "Annotates the pipeline's Kubernetes service account."
  value       = module.service_accounts.pipeline_email
}

output "simulator_service_account" {
  description = "Annotates the simulator's Kubernetes service account."
  value       = module.service_accounts.simulator_email
}
