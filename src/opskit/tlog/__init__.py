"""Standard transparency-log formats and their checks, independent of any database.

- `opskit.tlog.note`: C2SP signed notes, Ed25519 note signatures and cosignatures, vkeys.
- `opskit.tlog.checkpoint`: C2SP tlog-checkpoint bodies.
- `opskit.tlog.merkle`: RFC 6962 hashing, inclusion and consistency proofs.
- `opskit.tlog.proof`: C2SP tlog-proof files and tlog-witness consistency bodies.
- `opskit.tlog.trust`: the trust policy (C2SP tlog-policy) and checkpoint verification.
- `opskit.tlog.witnessclient`: asks a C2SP tlog-witness to cosign a checkpoint.
"""
