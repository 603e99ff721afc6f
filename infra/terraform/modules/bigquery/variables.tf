variable "project_id" {
  description = "Project that owns the dataset."
  type        = string
}

variable "dataset_id" {
  description = "Dataset name, as the pipeline's --bigquery PROJECT.DATASET takes it."
  type        = string
  default     = "music_analytics"

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_]{0,1023}$", var.dataset_id))
    error_message = "A dataset id is letters, digits and underscores, not starting with a digit."
  }
}

variable "location" {
  description = "Dataset location (US, EU or a region); the staging bucket's too."
  type        = string
}

variable "ddl_dir" {
  description = "Folder of the generated BigQuery files (tables.json, views.json, schemas/, views/)."
  type        = string
}

variable "deletion_protection" {
  description = "Refuse to delete tables (true in prod)."
  type        = bool
  default     = true
}

variable "delete_contents_on_destroy" {
  description = "Let `terraform destroy` drop a dataset that still holds tables."
  type        = bool
  default     = false
}
