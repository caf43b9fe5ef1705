-- Credential health per connection: when the stored credential expires (operator-declared, or an OAuth
-- token's lifetime), next to the last success and last error already kept.
ALTER TABLE connections ADD COLUMN expires_at timestamptz;
