SELECT d.year, d.quarter, d.month, DATE(d.year, d.month, 1) AS month_start, COUNT(*) AS listens, SUM(f.duration) / 3600 AS hours
FROM `${dataset}.event_fact` AS f
JOIN `${dataset}.date_dim` AS d ON d.date_key = f.date_key
WHERE f.is_record_valid
GROUP BY d.year, d.quarter, d.month
