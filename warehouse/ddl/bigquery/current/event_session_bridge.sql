SELECT * EXCEPT (`_loaded_at`) FROM `${dataset}.event_session_bridge_log`
QUALIFY ROW_NUMBER() OVER (PARTITION BY `session_key`, `event_key` ORDER BY `_loaded_at` ASC) = 1
