# A GKE Autopilot cluster: Google runs the nodes, Workload Identity is always on, and
# pods pay for what they request, which suits a pipeline sized by its partitions.
terraform {
  required_version = ">= 1.5"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0, < 7.0"
    }
  }
}

resource "google_container_cluster" "this" {
  project  = var.project_id
  name     = var.name
  location = var.region

  enable_autopilot    = true
  deletion_protection = var.deletion_protection

  release_channel {
    channel = var.release_channel
  }

  # Private nodes: nothing in the cluster needs a public address; the control plane
  # stays reachable for kubectl.
  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = false
  }

  ip_allocation_policy {}
}
