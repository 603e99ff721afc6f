SELECT * EXCEPT (`_loaded_at`) FROM `${dataset}.level_change_fact_log`
QUALIFY ROW_NUMBER() OVER (PARTITION BY `event_key` ORDER BY `_loaded_at` DESC) = 1
