SELECT d.date, d.year, d.quarter, d.month, COUNT(DISTINCT f.user_id) AS active_users
FROM `${dataset}.date_dim` AS d
JOIN `${dataset}.date_dim` AS w ON w.timestamp_unix BETWEEN d.timestamp_unix - 29 * 86400 AND d.timestamp_unix
LEFT JOIN `${dataset}.event_fact` AS f ON f.date_key = w.date_key AND f.is_record_valid
GROUP BY d.date, d.year, d.quarter, d.month
