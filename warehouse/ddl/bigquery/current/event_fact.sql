SELECT f.* REPLACE (
  IFNULL(c.valid_to, f.record_valid_to) AS record_valid_to,
  f.is_record_valid AND c.valid_to IS NULL AS is_record_valid)
FROM (SELECT * EXCEPT (`_loaded_at`) FROM `${dataset}.event_fact_log`
QUALIFY ROW_NUMBER() OVER (PARTITION BY `event_key`, `record_valid_from` ORDER BY `_loaded_at` DESC) = 1) AS f
LEFT JOIN (SELECT session_key, valid_from, MIN(valid_to) AS valid_to FROM `${dataset}.superseded_event_facts_log` GROUP BY session_key, valid_from) AS c
ON f.session_key = c.session_key AND f.record_valid_from = c.valid_from
