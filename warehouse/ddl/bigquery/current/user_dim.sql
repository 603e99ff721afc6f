SELECT * EXCEPT (`_loaded_at`) FROM `${dataset}.user_dim_log`
QUALIFY ROW_NUMBER() OVER (PARTITION BY `user_key` ORDER BY `_loaded_at` DESC) = 1
