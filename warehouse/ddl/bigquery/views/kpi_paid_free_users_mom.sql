WITH m AS (
SELECT d.year, d.quarter, d.month, f.level, COUNT(DISTINCT f.user_id) AS users
FROM `${dataset}.event_fact` AS f
JOIN `${dataset}.date_dim` AS d ON d.date_key = f.date_key
WHERE f.is_record_valid
GROUP BY d.year, d.quarter, d.month, f.level
)
SELECT m.year, m.quarter, m.month, DATE(m.year, m.month, 1) AS month_start, m.level, m.users,
p.users AS previous_users,
100 * (m.users - p.users) / NULLIF(p.users, 0) AS percent_change
FROM m
LEFT JOIN m AS p ON p.level = m.level AND p.year * 12 + p.month = m.year * 12 + m.month - 1
