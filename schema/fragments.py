"""Walks over a GraphQL document that visit each fragment once.

A fragment spread twice in a fragment that is itself spread twice is written once but
expands four times; k such fragments expand 2^k times from a document of k lines. A
walk that follows every spread (strawberry's depth and alias limiters, a naive audit
walk) therefore costs 2^k, and k=17 blocked the event loop for seconds. Here every
fragment is summarised once and the summary reused at each spread, so a walk costs
time linear in the document, whatever it expands to.

- `shape`: fields, aliases and depth of an operation as if every fragment were
  expanded (the numbers the limits compare), computed without expanding anything.
- `root_fields`: the root fields an operation runs, each fragment taken once per
  operation as execution does (graphql-core's `collect_fields`), for the audit log
  and the metrics.

Both run on unvalidated documents (the limits refuse before the spec rules have looked):
unknown fragments add nothing and a cycle through a fragment is cut where it closes (the
spec rules report both).
"""

from __future__ import annotations

from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)


@dataclass(frozen=True, slots=True)
class Shape:
    """An operation or fragment as if its fragments were expanded.

    `fields`: field selections (the size of the expanded document); `aliases`: those
    with an alias; `depth`: how many levels of fields with a selection set it nests
    (`{ viewer { clientId } }` is 1), introspection fields not counted (as strawberry's
    `QueryDepthLimiter` counts)."""

    fields: int = 0
    aliases: int = 0
    depth: int = 0


EMPTY = Shape()


def fragment_definitions(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    """Fragments by name; for a name defined twice (a validation error) the first."""
    found: dict[str, FragmentDefinitionNode] = {}
    for definition in document.definitions:
        if isinstance(definition, FragmentDefinitionNode):
            found.setdefault(definition.name.value, definition)
    return found


def operations(document: DocumentNode) -> list[OperationDefinitionNode]:
    return [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]


class ShapeWalker:
    """Shapes of a document's operations; each fragment's shape is computed once.

    The walk recurses along the nesting of selection sets and of fragment spreads; a
    document nested beyond what the interpreter's stack allows raises RecursionError,
    which the caller answers as a limit (graphql-core's validation aborts such a document
    too, see `graphql.validation.validate.FragmentNestingVisitor`)."""

    def __init__(self, document: DocumentNode) -> None:
        self._fragments = fragment_definitions(document)
        self._shapes: dict[str, Shape] = {}
        self._open: set[str] = set()

    def operation(self, operation: OperationDefinitionNode) -> Shape:
        return self._selection_set(operation.selection_set)

    def _fragment(self, name: str) -> Shape:
        shape = self._shapes.get(name)
        if shape is not None:
            return shape
        definition = self._fragments.get(name)
        if definition is None or name in self._open:
            return EMPTY  # unknown or a cycle: the spec rules refuse the document
        self._open.add(name)
        try:
            shape = self._selection_set(definition.selection_set)
        finally:
            self._open.discard(name)
        self._shapes[name] = shape
        return shape

    def _selection_set(self, selection_set: SelectionSetNode | None) -> Shape:
        fields = aliases = depth = 0
        for selection in selection_set.selections if selection_set is not None else ():
            if isinstance(selection, FieldNode):
                inner = self._selection_set(selection.selection_set)
                fields += 1 + inner.fields
                aliases += (selection.alias is not None) + inner.aliases
                if selection.selection_set is not None and not selection.name.value.startswith("__"):
                    depth = max(depth, 1 + inner.depth)
                continue
            if isinstance(selection, InlineFragmentNode):
                inner = self._selection_set(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                inner = self._fragment(selection.name.value)
            else:  # pragma: no cover - the three kinds of selection are all there are
                continue
            fields += inner.fields
            aliases += inner.aliases
            depth = max(depth, inner.depth)
        return Shape(fields, aliases, depth)


def root_fields(document: DocumentNode, selection_set: SelectionSetNode) -> list[FieldNode]:
    """The root fields of an operation in order, `__typename` left out, each fragment
    taken once (a second spread of a fragment adds nothing, as in execution).

    Iterative: a chain of fragments spread into one another as long as the token limit
    allows costs no stack."""
    fragments = fragment_definitions(document)
    seen: set[str] = set()
    fields: list[FieldNode] = []
    stack = [iter(selection_set.selections)]
    while stack:
        selection = next(stack[-1], None)
        if selection is None:
            stack.pop()
        elif isinstance(selection, FieldNode):
            if selection.name.value != "__typename":
                fields.append(selection)
        elif isinstance(selection, InlineFragmentNode):
            stack.append(iter(selection.selection_set.selections))
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in fragments and name not in seen:
                seen.add(name)
                stack.append(iter(fragments[name].selection_set.selections))
    return fields
