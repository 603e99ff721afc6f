SELECT * EXCEPT (`_loaded_at`) FROM `${dataset}.session_dim_log`
QUALIFY ROW_NUMBER() OVER (PARTITION BY `session_key` ORDER BY `_loaded_at` ASC) = 1
