"""The JSON Schemas shipped in `opskit/schemas/`, and how they are produced.

The inventory schema describes one inventory *file* (any of `defaults`,
`groups`, `cis`); editors use it through `# yaml-language-server: $schema=`
and the loader validates every file against the very same JSON document.
It is written by `python -m opskit.inventory.schema` from the definitions
below; a test checks that the shipped files are current.
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from opskit.inventory.model import CIType, Criticality, Lifecycle, RelationKind

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
INVENTORY_SCHEMA_FILE = "inventory.json"
POLICY_SCHEMA_FILE = "policy.json"

# CI names appear unquoted in selections (`name:core-*`) and in DOT output:
# no spaces, colons, parentheses or glob characters.
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.@-]*$"
# Group names are valid Ansible group names (exported as they are).
GROUP_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# netmiko's device_type vocabulary: cisco_ios, arista_eos, juniper_junos, linux, ...
PLATFORM_PATTERN = r"^[a-z][a-z0-9_]*$"
SECRET_REF_MARK = "opskit:secret-ref"
_ANSIBLE_NAME = {
    "type": "string",
    "minLength": 1,
    "description": "The name in the Ansible inventory it was imported from, when it does "
    "not fit the CMDB's names; export gives it back.",
}


def _secret_ref() -> dict[str, Any]:
    text = {"type": "string", "minLength": 1}
    return {
        "$comment": SECRET_REF_MARK,
        "description": "A reference to a secret, never the secret itself.",
        "type": "object",
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": False,
        "properties": {
            "env": {**text, "description": "Environment variable name."},
            "file": {
                **text,
                "description": "File holding the secret (relative to the inventory folder).",
            },
            "prompt": {**text, "description": "Ask interactively with this prompt."},
            "keyring": {
                "type": "object",
                "additionalProperties": False,
                "required": ["service"],
                "properties": {"service": text, "username": text},
            },
        },
    }


def _vars_properties() -> dict[str, Any]:
    """Fields a CI may inherit from defaults and groups."""
    text = {"type": "string", "minLength": 1}
    return {
        "type": {"enum": [t.value for t in CIType], "description": "The kind of CI."},
        "platform": {
            "type": "string",
            "pattern": PLATFORM_PATTERN,
            "description": "netmiko device_type: cisco_ios, arista_eos, juniper_junos, linux, ...",
        },
        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "owner": {**text, "description": "Who owns the CI (a person or a team)."},
        "department": text,
        "site": text,
        "lifecycle": {"enum": [v.value for v in Lifecycle]},
        "criticality": {"enum": [v.value for v in Criticality]},
        "credentials": {"$ref": "#/definitions/credentials"},
        "connection_options": {"$ref": "#/definitions/connection_options"},
        "attributes": {
            "type": "object",
            "description": "Free attributes (model, serial, os_version, ...), compared with "
            "observed facts by `opskit inventory drift`.",
        },
    }


def inventory_schema() -> dict[str, Any]:
    group_list = {
        "type": "array",
        "items": {"type": "string", "pattern": GROUP_PATTERN},
        "uniqueItems": True,
    }
    ci_properties = {
        "name": {"type": "string", "pattern": NAME_PATTERN},
        "description": {"type": "string"},
        "host": {"type": "string", "minLength": 1, "description": "Address or DNS name."},
        **_vars_properties(),
        "groups": group_list,
        "relationships": {"type": "array", "items": {"$ref": "#/definitions/relationship"}},
        "ansible_name": _ANSIBLE_NAME,
    }
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://opskit.dev/schemas/inventory.json",
        "title": "opskit inventory file",
        "description": "One YAML file of an inventory folder; every file may hold any of "
        "defaults, groups and cis.",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "defaults": {
                "description": "Applies to every CI (lowest precedence).",
                "type": "object",
                "additionalProperties": False,
                "properties": {**_vars_properties(), "groups": group_list},
            },
            "groups": {
                "type": "object",
                "propertyNames": {"pattern": GROUP_PATTERN},
                "additionalProperties": {"$ref": "#/definitions/group"},
            },
            "cis": {"type": "array", "items": {"$ref": "#/definitions/ci"}},
        },
        "definitions": {
            "secret_ref": _secret_ref(),
            "credentials": {
                "description": "username may be plain text; every other entry must be a "
                "secret reference.",
                "type": "object",
                "properties": {
                    "username": {
                        "oneOf": [
                            {"type": "string", "minLength": 1},
                            {"$ref": "#/definitions/secret_ref"},
                        ]
                    }
                },
                "additionalProperties": {"$ref": "#/definitions/secret_ref"},
            },
            "connection_options": {
                "description": "Per-connector options: netmiko, napalm, ansible, fabric, ...",
                "type": "object",
                "propertyNames": {"pattern": r"^[a-z][a-z0-9_]*$"},
                "additionalProperties": {"type": "object"},
            },
            "relationship": {
                "description": "One typed edge: {depends_on: other-ci}.",
                "type": "object",
                "minProperties": 1,
                "maxProperties": 1,
                "additionalProperties": False,
                "properties": {
                    kind.value: {"type": "string", "pattern": NAME_PATTERN} for kind in RelationKind
                },
            },
            "group": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "description": {"type": "string"},
                    "ansible_name": _ANSIBLE_NAME,
                    "groups": {**group_list, "description": "Parent groups."},
                    "vars": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": _vars_properties(),
                    },
                },
            },
            "ci": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "properties": ci_properties,
            },
        },
    }


def policy_schema() -> dict[str, Any]:
    from opskit.policy import Policy

    return Policy.model_json_schema()


def load_shipped_schema(name: str = INVENTORY_SCHEMA_FILE) -> dict[str, Any]:
    text = resources.files("opskit").joinpath("schemas", name).read_text(encoding="utf-8")
    return json.loads(text)


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in (
        (INVENTORY_SCHEMA_FILE, inventory_schema()),
        (POLICY_SCHEMA_FILE, policy_schema()),
    ):
        path = directory / name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_schemas(Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_DIR):
        print(written_path)
