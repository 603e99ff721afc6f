SELECT * EXCEPT (`_loaded_at`) FROM `${dataset}.event_dim_log`
QUALIFY ROW_NUMBER() OVER (PARTITION BY `event_key` ORDER BY `_loaded_at` ASC) = 1
