"""Security: roles and the RLS proof, the hash-chained audit log, kill switches and the Security Center."""
