"""A C2SP tlog witness: cosigns a log's checkpoints only if they extend what it saw.

A separate small program (`opskit-witness`, also `opskit witness`) with its own
Ed25519 cosigner key and its own SQLite state, no access to any workspace:

- `opskit.witness.keys`: its key (``witness.key``, type 0x04, mode 0600);
- `opskit.witness.state`: pinned log keys and the last cosigned head per log;
- `opskit.witness.core`: the decision on one add-checkpoint request;
- `opskit.witness.server`: the HTTP server (``POST /add-checkpoint``).

See docs/witnesses.md for how to run one and what it refuses.
"""
