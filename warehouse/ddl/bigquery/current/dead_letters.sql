SELECT * EXCEPT (`_loaded_at`) FROM `${dataset}.dead_letters_log`
QUALIFY ROW_NUMBER() OVER (PARTITION BY `source_topic`, `source_partition`, `source_offset` ORDER BY `_loaded_at` ASC) = 1
