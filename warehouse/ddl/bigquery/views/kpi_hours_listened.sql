SELECT d.date, d.year, d.quarter, d.month, SUM(f.duration) AS seconds
FROM `${dataset}.event_fact` AS f
JOIN `${dataset}.date_dim` AS d ON d.date_key = f.date_key
WHERE f.is_record_valid
GROUP BY d.date, d.year, d.quarter, d.month
