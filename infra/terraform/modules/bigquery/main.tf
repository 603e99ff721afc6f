# The warehouse dataset with every table and KPI view, read from the files that
# `cargo xtask codegen` generates from warehouse/src: schemas, partitioning, clustering
# and primary keys are declared once, in Rust, and never copied here. The pipeline only
# appends, to `<table>_log`; `<table>` is the view of the current rows, which the KPI
# views read.
terraform {
  required_version = ">= 1.5"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0, < 7.0"
    }
  }
}

locals {
  ddl      = var.ddl_dir
  manifest = jsondecode(file("${local.ddl}/tables.json"))
  tables   = { for t in local.manifest.tables : t.name => t }
  current  = { for v in local.manifest.current_views : v.name => v }
  views    = { for v in jsondecode(file("${local.ddl}/views.json")).views : v.name => v }
}

resource "google_bigquery_dataset" "warehouse" {
  project     = var.project_id
  dataset_id  = var.dataset_id
  location    = var.location
  description = "music-analytics: the star schema the pipeline writes, and the dashboard's KPI views."

  delete_contents_on_destroy = var.delete_contents_on_destroy
}

resource "google_bigquery_table" "tables" {
  for_each = local.tables

  project     = var.project_id
  dataset_id  = google_bigquery_dataset.warehouse.dataset_id
  table_id    = each.key
  description = each.value.description
  schema      = file("${local.ddl}/${each.value.schema_file}")
  clustering  = length(each.value.clustering) > 0 ? each.value.clustering : null

  deletion_protection = var.deletion_protection

  dynamic "time_partitioning" {
    for_each = each.value.partition_field == null ? [] : [each.value.partition_field]
    content {
      type  = "DAY"
      field = time_partitioning.value
    }
  }
}

resource "google_bigquery_table" "current" {
  for_each = local.current

  project     = var.project_id
  dataset_id  = google_bigquery_dataset.warehouse.dataset_id
  table_id    = each.key
  description = "${each.value.description} Key: ${join(", ", each.value.primary_key)}."

  deletion_protection = false

  view {
    query          = templatefile("${local.ddl}/${each.value.query_file}", { dataset = "${var.project_id}.${var.dataset_id}" })
    use_legacy_sql = false
  }

  depends_on = [google_bigquery_table.tables]
}

resource "google_bigquery_table" "views" {
  for_each = local.views

  project     = var.project_id
  dataset_id  = google_bigquery_dataset.warehouse.dataset_id
  table_id    = each.key
  description = each.value.description

  deletion_protection = false

  view {
    query          = templatefile("${local.ddl}/${each.value.query_file}", { dataset = "${var.project_id}.${var.dataset_id}" })
    use_legacy_sql = false
  }

  depends_on = [google_bigquery_table.current]
}
