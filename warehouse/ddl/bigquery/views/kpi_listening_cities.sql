SELECT d.date, d.year, d.quarter, d.month, l.city, l.state, l.lat, l.lon, COUNT(*) AS listens
FROM `${dataset}.event_fact` AS f
JOIN `${dataset}.date_dim` AS d ON d.date_key = f.date_key
JOIN `${dataset}.location_dim` AS l ON l.location_key = f.location_key
WHERE f.is_record_valid
GROUP BY d.date, d.year, d.quarter, d.month, l.city, l.state, l.lat, l.lon
