SELECT d.date, d.year, d.quarter, d.month, COUNT(*) AS sessions, SUM(s.listening_time) AS listening_seconds
FROM `${dataset}.session_fact` AS s
JOIN `${dataset}.date_dim` AS d ON d.date_key = s.date_key
WHERE s.is_record_valid
GROUP BY d.date, d.year, d.quarter, d.month
