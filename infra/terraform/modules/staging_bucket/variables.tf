variable "project_id" {
  description = "Project that owns the bucket."
  type        = string
}

variable "name" {
  description = "Globally unique bucket name."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][-_a-z0-9]{1,61}[a-z0-9]$", var.name))
    error_message = "A bucket name is 3 to 63 lowercase letters, digits, hyphens or underscores."
  }
}

variable "location" {
  description = "Bucket location; the BigQuery dataset's location, so loads stay in one place."
  type        = string
}

variable "delete_after_days" {
  description = "Staging files older than this many days are deleted."
  type        = number
  default     = 3

  validation {
    condition     = var.delete_after_days >= 1
    error_message = "Keep staging files at least a day."
  }
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete a bucket that still holds files."
  type        = bool
  default     = false
}
