WITH listeners AS (
SELECT DISTINCT f.date_key, f.user_id FROM `${dataset}.event_fact` AS f WHERE f.is_record_valid
)
SELECT d.date, d.year, d.quarter, d.month, COUNT(DISTINCT l.user_id) AS active_users
FROM `${dataset}.date_dim` AS d
JOIN `${dataset}.date_dim` AS w ON w.timestamp_unix BETWEEN d.timestamp_unix - 29 * 86400 AND d.timestamp_unix
LEFT JOIN listeners AS l ON l.date_key = w.date_key
GROUP BY d.date, d.year, d.quarter, d.month
