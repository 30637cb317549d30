"""Partner-facing descriptions for every type, field, argument, input field and enum value.

Descriptions written in the strawberry definitions win; the catalogue here fills the rest,
so that the exported SDL and introspection describe everything (tests/schema/
test_descriptions.py fails on an undescribed element or a catalogue line naming nothing).
Catalogue lines are `Coordinate: text`, the coordinate being `Type`, `Type.field`,
`Type.field(argument)` or `Enum.VALUE`; a line starting with spaces continues the last.
Relay plumbing (connections, edges, payloads, ids, paging arguments) is described by rule.
"""

from __future__ import annotations

import re

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
)

from schema.descriptions import catalogue_a, catalogue_b, catalogue_c

_PARSED: dict[str, str] | None = None


def catalogue() -> dict[str, str]:
    """Every catalogue line, by coordinate (parsed once)."""
    global _PARSED
    if _PARSED is None:
        parsed: dict[str, str] = {}
        last = None
        for text in (catalogue_a.TEXT, catalogue_b.TEXT, catalogue_c.TEXT):
            for line in text.splitlines():
                if not line.strip():
                    continue
                if line.startswith(" ") and last is not None:
                    parsed[last] += " " + line.strip()
                    continue
                coordinate, _, description = line.partition(": ")
                if coordinate in parsed or not description:
                    raise ValueError(f"catalogue line {line!r}: duplicate or without text")
                parsed[coordinate] = description.strip()
                last = coordinate
        _PARSED = parsed
    return _PARSED


def _words(type_name: str) -> str:
    """`WebhookDelivery` -> `webhook delivery`."""
    return re.sub(r"(?<!^)([A-Z])", r" \1", type_name).lower()


def _by_rule(type_name: str, field: str | None, argument: str | None) -> str | None:
    """Descriptions of Relay and payload plumbing, the same on every type."""
    if argument == "first":
        return (
            "Return at most this many items; above the page-size limit (500 unless configured)"
            " the request is refused with LIMIT_EXCEEDED."
        )
    if argument == "after":
        return "Return the items after this cursor (an `endCursor` or edge `cursor` of an earlier page)."
    if argument == "input" and type_name == "Mutation":
        return "The mutation's arguments, as one input object."
    if argument is not None:
        return None
    if type_name.endswith("Connection") and type_name != "Connection":
        node = type_name[: -len("Connection")]
        if field is None:
            return f"A page of {_words(node)} items (a Relay connection); page on with `first` and `after`."
        if field == "edges":
            return "The items of this page, each with its cursor."
        if field == "pageInfo":
            return "Where this page sits in the whole list."
    if type_name.endswith("Edge"):
        node = type_name[: -len("Edge")]
        if field is None:
            return f"One {_words(node)} in a page, with its cursor."
        if field == "node":
            return f"The {_words(node)}."
        if field == "cursor":
            return "Opaque cursor of this item; pass it as `after` to read on from here."
    if type_name.endswith("Payload"):
        if field is None:
            what = _words(type_name[: -len("Payload")])
            return f"What a mutation answers: the {what} it created or changed, or the business errors that stopped it."
        if field == "errors":
            return "Business errors; when not empty, the mutation changed nothing and the other fields are null."
        return "The object the mutation created or changed; null when `errors` is not empty."
    if field == "id":
        return "Opaque global id; `node(id:)` reads the object again by it."
    return None


def _fill(element, description: str | None) -> None:
    if not element.description and description:
        element.description = description


def describe(schema: GraphQLSchema) -> None:
    """Fill every missing description of `schema` from the catalogue and the rules."""
    texts = catalogue()
    for name, named in schema.type_map.items():
        if name.startswith("__"):
            continue
        _describe_type(named, texts)


def _describe_type(named: GraphQLNamedType, texts: dict[str, str]) -> None:
    name = named.name
    _fill(named, texts.get(name) or _by_rule(name, None, None))
    if isinstance(named, (GraphQLObjectType, GraphQLInterfaceType)):
        for field_name, field in named.fields.items():
            coordinate = f"{name}.{field_name}"
            _fill(field, texts.get(coordinate) or _by_rule(name, field_name, None))
            for arg_name, arg in field.args.items():
                _fill(arg, texts.get(f"{coordinate}({arg_name})") or _by_rule(name, field_name, arg_name))
    elif isinstance(named, GraphQLInputObjectType):
        for field_name, field in named.fields.items():
            _fill(field, texts.get(f"{name}.{field_name}"))
    elif isinstance(named, GraphQLEnumType):
        for value_name, value in named.values.items():
            _fill(value, texts.get(f"{name}.{value_name}"))


def coordinates(schema: GraphQLSchema) -> set[str]:
    """Every coordinate the catalogue could name in `schema`."""
    found: set[str] = set()
    for name, named in schema.type_map.items():
        if name.startswith("__"):
            continue
        found.add(name)
        if isinstance(named, (GraphQLObjectType, GraphQLInterfaceType)):
            for field_name, field in named.fields.items():
                found.add(f"{name}.{field_name}")
                found.update(f"{name}.{field_name}({arg})" for arg in field.args)
        elif isinstance(named, (GraphQLInputObjectType, GraphQLEnumType)):
            items = named.fields if isinstance(named, GraphQLInputObjectType) else named.values
            found.update(f"{name}.{item}" for item in items)
    return found
