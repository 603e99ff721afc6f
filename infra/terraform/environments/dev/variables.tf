variable "project_id" {
  description = "The GCP project, such as my-music-analytics."
  type        = string
}

variable "region" {
  description = "Region of the cluster and the image repository."
  type        = string
  default     = "us-central1"
}

variable "location" {
  description = "Location of the dataset and the staging bucket."
  type        = string
  default     = "US"
}
