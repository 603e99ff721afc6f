SELECT * EXCEPT (`_loaded_at`) FROM `${dataset}.location_dim_log`
QUALIFY ROW_NUMBER() OVER (PARTITION BY `location_key` ORDER BY `_loaded_at` ASC) = 1
