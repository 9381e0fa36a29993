"""opskit: versioned runbooks, a CMDB inventory and a tamper-evident change ledger.

The public API lives in the subpackages; the CLI (`opskit.cli`) is a thin layer
over it, so everything the CLI does a script can do with an import.
"""

from opskit.errors import OpskitError
from opskit.secrets import install_log_redaction

# No log line of this process may carry a registered secret.
install_log_redaction()

__version__ = "0.1.0"
__all__ = ["OpskitError", "__version__"]
