variable "project_id" {
  description = "The GCP project everything is created in."
  type        = string

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.project_id))
    error_message = "A project id is 6 to 30 lowercase letters, digits or hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "region" {
  description = "Region of the cluster and the image repository, such as us-central1."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "A region looks like us-central1 or europe-west4."
  }
}

variable "location" {
  description = "Location of the dataset and the staging bucket: US, EU or a region."
  type        = string
  default     = "US"
}

variable "cluster_name" {
  description = "GKE cluster name."
  type        = string
  default     = "music-analytics"
}

variable "release_channel" {
  description = "GKE release channel."
  type        = string
  default     = "REGULAR"
}

variable "dataset_id" {
  description = "Warehouse dataset id."
  type        = string
  default     = "music_analytics"
}

variable "ddl_dir" {
  description = "The generated BigQuery files (warehouse/ddl/bigquery)."
  type        = string
}

variable "staging_days" {
  description = "Days staging files are kept."
  type        = number
  default     = 3
}

variable "protect" {
  description = "Deletion protection on the cluster and tables; no force-destroy of data."
  type        = bool
  default     = true
}
