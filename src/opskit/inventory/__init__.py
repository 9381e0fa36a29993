"""The inventory is the CMDB: configuration items (CIs), groups, relationships.

```python
from opskit.inventory import load_inventory
inv = load_inventory(Path("inventories/example"))
for ci in inv.select("group:core and not lifecycle:maintenance"):
    ...
report = inv.impact(["db1"])          # who depends on db1
inv.digest                            # "sha256:..." of the merged content
```
"""

from opskit.inventory.core import Edge, ImpactedCI, ImpactReport, Inventory, canonical_json
from opskit.inventory.loader import load_inventory, load_workspace_inventory
from opskit.inventory.model import (
    CI,
    DEPENDENCY_KINDS,
    CIType,
    Criticality,
    Group,
    Lifecycle,
    RelationKind,
    Relationship,
)
from opskit.inventory.select import SelectionError, compile_selection

__all__ = [
    "CI",
    "DEPENDENCY_KINDS",
    "CIType",
    "Criticality",
    "Edge",
    "Group",
    "ImpactReport",
    "ImpactedCI",
    "Inventory",
    "Lifecycle",
    "RelationKind",
    "Relationship",
    "SelectionError",
    "canonical_json",
    "compile_selection",
    "load_inventory",
    "load_workspace_inventory",
]
