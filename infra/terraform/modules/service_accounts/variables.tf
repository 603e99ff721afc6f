variable "project_id" {
  description = "Project of the service accounts and the cluster's workload pool."
  type        = string
}

variable "prefix" {
  description = "Prefix of the service account ids (<prefix>-pipeline, <prefix>-simulator)."
  type        = string
  default     = "ma"

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{1,15}$", var.prefix))
    error_message = "prefix is 2 to 16 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "dataset_id" {
  description = "The warehouse dataset the pipeline writes."
  type        = string
}

variable "staging_bucket" {
  description = "The staging bucket's name."
  type        = string
}

variable "namespace" {
  description = "Kubernetes namespace of the workloads."
  type        = string
  default     = "music-analytics"
}

variable "pipeline_ksa" {
  description = "The pipeline's Kubernetes service account."
  type        = string
  default     = "pipeline"
}

variable "simulator_ksa" {
  description = "The simulator's Kubernetes service account."
  type        = string
  default     = "simulator"
}
