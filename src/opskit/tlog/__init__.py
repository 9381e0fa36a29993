"""Transparency-log formats and the Merkle tree: RFC 6962 / C2SP tlog."""
