output "dataset" {
  description = "PROJECT.DATASET, what the pipeline's --bigquery takes."
  value       = "${var.project_id}.${google_bigquery_dataset.warehouse.dataset_id}"
}

output "dataset_id" {
  description = "The dataset id alone, for IAM bindings."
  value       = google_bigquery_dataset.warehouse.dataset_id
}

output "tables" {
  description = "Every table created."
  value       = sort(keys(google_bigquery_table.tables))
}

output "views" {
  description = "Every KPI view created."
  value       = sort(keys(google_bigquery_table.views))
}
