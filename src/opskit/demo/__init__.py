"""`make demo`: the main job end to end against the emulated lab.

`scripts/demo.py` builds the workspace and the CMDB, then runs each part of
the demo in turn, one module each (`changes`: two real changes, one rolled
back). Demo code lives here, outside the engine packages, and only uses
opskit's public API and CLI.
"""
