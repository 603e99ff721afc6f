SELECT d.year, d.quarter, d.month, DATE(d.year, d.month, 1) AS month_start, l.state, COUNT(DISTINCT f.user_id) AS users
FROM `${dataset}.event_fact` AS f
JOIN `${dataset}.date_dim` AS d ON d.date_key = f.date_key
JOIN `${dataset}.location_dim` AS l ON l.location_key = f.location_key
WHERE f.is_record_valid
GROUP BY d.year, d.quarter, d.month, l.state
