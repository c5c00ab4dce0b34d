-- keysync schema v7: what each pull cost the API's rate limit, and what the next one may skip.
--
-- `requests` counts every HTTP request the pull sent (the answers 429 included, health pings
-- not); `rate_limited` how many of them were answered 429. Syncs recorded before this version
-- say 0 for both.
ALTER TABLE syncs ADD COLUMN requests INTEGER NOT NULL DEFAULT 0;
ALTER TABLE syncs ADD COLUMN rate_limited INTEGER NOT NULL DEFAULT 0;

-- Bookkeeping, not history: for each listed key, the first 16 bytes of the SHA-256 of the item
-- text its `keys` row was last written from. A pull that is sent the same text again knows the
-- key unchanged without reading it. A key without a row here (every key before this version)
-- is read in full, and gets its row.
CREATE TABLE key_digests (
    key_id INTEGER PRIMARY KEY,
    digest BLOB    NOT NULL
);

-- Every pull without --store-secrets clears stored full key values; this finds the few there
-- are without reading every key.
CREATE INDEX keys_holding_secret ON keys (id) WHERE key IS NOT NULL;
