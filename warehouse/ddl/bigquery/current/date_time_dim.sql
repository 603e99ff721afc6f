SELECT * EXCEPT (`_loaded_at`) FROM `${dataset}.date_time_dim_log`
QUALIFY ROW_NUMBER() OVER (PARTITION BY `date_time_key` ORDER BY `_loaded_at` ASC) = 1
