"""Every element partners see is described: the GraphQL schema (types, fields, arguments,
input fields, enum values) as exported and introspected, and the POS REST face's OpenAPI
document (operations, schema properties). Each test lists every undescribed element."""

from __future__ import annotations

from pathlib import Path

import yaml
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    build_client_schema,
    get_introspection_query,
    specified_scalar_types,
)
from graphql import build_schema as parse_sdl

from schema import build_schema, export_sdl
from schema.descriptions import catalogue, coordinates
from tests.support.auth import get_token, graphql, register_partner

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = ROOT / "connectors" / "pos_openapi.yaml"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def undescribed(gql) -> list[str]:
    """Coordinates of every element of `gql` without a description (built-ins skipped)."""
    missing: list[str] = []
    for name, named in sorted(gql.type_map.items()):
        if name.startswith("__") or name in specified_scalar_types:
            continue
        if not (named.description or "").strip():
            missing.append(name)
        if isinstance(named, (GraphQLObjectType, GraphQLInterfaceType)):
            for field_name, field in named.fields.items():
                if not (field.description or "").strip():
                    missing.append(f"{name}.{field_name}")
                missing += [
                    f"{name}.{field_name}({arg_name})"
                    for arg_name, arg in field.args.items()
                    if not (arg.description or "").strip()
                ]
        elif isinstance(named, GraphQLInputObjectType):
            missing += [f"{name}.{f}" for f, field in named.fields.items() if not (field.description or "").strip()]
        elif isinstance(named, GraphQLEnumType):
            missing += [f"{name}.{v}" for v, value in named.values.items() if not (value.description or "").strip()]
    return missing


def test_every_graphql_element_is_described():
    missing = undescribed(build_schema()._schema)
    assert not missing, f"{len(missing)} undescribed:\n" + "\n".join(missing)


def test_the_exported_sdl_carries_the_descriptions():
    """What partners download (`mileage-gateway export-schema`) is described too."""
    missing = undescribed(parse_sdl(export_sdl()))
    assert not missing, f"{len(missing)} undescribed in the exported SDL:\n" + "\n".join(missing)


async def test_introspection_over_http_describes_everything(db, live_server):
    """What a partner's tooling (GraphiQL, codegen) reads from the running gateway."""
    office = await register_partner(db, code="office", kind="ADMIN", scopes=["admin"])
    token = get_token(live_server.url, office.client_id, office.client_secret)
    result = graphql(live_server.url, token, get_introspection_query(descriptions=True))
    assert "errors" not in result, result
    missing = undescribed(build_client_schema(result["data"]))
    assert not missing, f"{len(missing)} undescribed over introspection:\n" + "\n".join(missing)


def test_every_catalogue_line_names_a_schema_element():
    """A renamed or removed field must take its catalogue line along."""
    stale = sorted(set(catalogue()) - coordinates(build_schema()._schema))
    assert not stale, "catalogue lines naming nothing: " + ", ".join(stale)


def _schema_properties(name: str, schema: dict, path: str):
    """(path, property) of every property in `schema`, nested ones and compositions included."""
    for prop_name, prop in (schema.get("properties") or {}).items():
        where = f"{path}.{prop_name}"
        yield where, prop
        yield from _schema_properties(name, prop, where)
    if isinstance(schema.get("items"), dict):
        yield from _schema_properties(name, schema["items"], f"{path}[]")
    for key in ("allOf", "oneOf", "anyOf"):
        for i, part in enumerate(schema.get(key) or []):
            yield from _schema_properties(name, part, f"{path}.{key}[{i}]")


def _described(element: dict) -> bool:
    # A $ref property takes the description of the schema it names.
    return bool((element.get("description") or "").strip()) or ("$ref" in element and len(element) == 1)


def test_every_pos_rest_operation_and_property_is_described():
    spec = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    missing: list[str] = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            for key in ("summary", "description"):
                if not (operation.get(key) or "").strip():
                    missing.append(f"{method.upper()} {path}: {key}")
            for parameter in operation.get("parameters") or []:
                if "$ref" not in parameter and not (parameter.get("description") or "").strip():
                    missing.append(f"{method.upper()} {path}: parameter {parameter.get('name')}")
    components = spec.get("components") or {}
    for name, schema in (components.get("schemas") or {}).items():
        if not (schema.get("description") or "").strip():
            missing.append(f"schema {name}")
        missing += [f"schema {where}" for where, prop in _schema_properties(name, schema, name) if not _described(prop)]
    for name, parameter in (components.get("parameters") or {}).items():
        if not (parameter.get("description") or "").strip():
            missing.append(f"parameter {name}")
    assert not missing, f"{len(missing)} undescribed in {OPENAPI.name}:\n" + "\n".join(missing)
