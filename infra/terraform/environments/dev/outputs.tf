# Every output of the stack (cluster, dataset, staging URI, image repository, service
# accounts), read by `cargo xtask up --gcp` with `terraform output -json`.
output "music_analytics" {
  description = "What the stack created, for the pipeline's flags and the gcp overlay."
  value       = module.music_analytics
}
