SELECT d.date, d.year, d.quarter, d.month, s.artist, COUNT(*) AS listens
FROM `${dataset}.event_fact` AS f
JOIN `${dataset}.date_dim` AS d ON d.date_key = f.date_key
JOIN `${dataset}.song_dim` AS s ON s.song_key = f.song_key
WHERE f.is_record_valid
GROUP BY d.date, d.year, d.quarter, d.month, s.artist
