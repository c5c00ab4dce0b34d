-- keysync schema v7: what each pull cost the API's rate limit. `requests` counts every HTTP
-- request the pull sent (the answers 429 included, health pings not); `rate_limited` how many of
-- them were answered 429. Syncs recorded before this version say 0 for both.
ALTER TABLE syncs ADD COLUMN requests INTEGER NOT NULL DEFAULT 0;
ALTER TABLE syncs ADD COLUMN rate_limited INTEGER NOT NULL DEFAULT 0;
