SELECT * EXCEPT (`_loaded_at`) FROM `${dataset}.song_dim_log`
QUALIFY ROW_NUMBER() OVER (PARTITION BY `song_key` ORDER BY `_loaded_at` ASC) = 1
