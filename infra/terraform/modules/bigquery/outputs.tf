output "dataset" {
  description = "PROJECT.DATASET, what the pipeline's --bigquery takes."
  value       = "${var.project_id}.${google_bigquery_dataset.warehouse.dataset_id}"
}

output "dataset_id" {
  description = "The dataset id alone, for IAM bindings."
  value       = google_bigquery_dataset.warehouse.dataset_id
}

output "tables" {
  description = "Every log table created: what the pipeline appends to."
  value       = sort(keys(google_bigquery_table.tables))
}

output "current_views" {
  description = "Every view of a table's current rows: what queries read."
  value       = sort(keys(google_bigquery_table.current))
}

output "views" {
  description = "Every KPI view created."
  value       = sort(keys(google_bigquery_table.views))
}
