SELECT * EXCEPT (`_loaded_at`) FROM `${dataset}.session_fact_log`
QUALIFY ROW_NUMBER() OVER (PARTITION BY `session_key`, `record_valid_from` ORDER BY `_loaded_at` DESC) = 1
