output "name" {
  description = "Cluster name, for `gcloud container clusters get-credentials`."
  value       = google_container_cluster.this.name
}

output "location" {
  description = "Cluster region."
  value       = google_container_cluster.this.location
}

output "workload_pool" {
  description = "The Workload Identity pool: PROJECT.svc.id.goog."
  value       = "${var.project_id}.svc.id.goog"
}
