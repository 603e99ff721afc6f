variable "project_id" {
  description = "Project the cluster lives in."
  type        = string
}

variable "region" {
  description = "Region of the (regional) Autopilot cluster."
  type        = string
}

variable "name" {
  description = "Cluster name."
  type        = string
  default     = "music-analytics"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", var.name))
    error_message = "A cluster name is 1 to 40 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "release_channel" {
  description = "GKE release channel: RAPID, REGULAR or STABLE."
  type        = string
  default     = "REGULAR"

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE"], var.release_channel)
    error_message = "release_channel is RAPID, REGULAR or STABLE."
  }
}

variable "deletion_protection" {
  description = "Refuse `terraform destroy` of the cluster (true in prod)."
  type        = bool
  default     = true
}
