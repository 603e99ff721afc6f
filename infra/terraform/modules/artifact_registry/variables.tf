variable "project_id" {
  description = "Project that owns the repository."
  type        = string
}

variable "region" {
  description = "Repository region; the cluster's, so pulls stay in region."
  type        = string
}

variable "repository_id" {
  description = "Repository name."
  type        = string
  default     = "music-analytics"
}

variable "untagged_days" {
  description = "Untagged images older than this many days are deleted."
  type        = number
  default     = 14
}
