"""Query cost: what an operation may make the gateway fetch, known before it runs.

Each operation is priced on its validated document with its variables applied, then
refused (`LIMIT_EXCEEDED`) if the price is over the budget (`GATEWAY_MAX_QUERY_COST`);
the price is in `extensions.cost` of the response either way. The rules (as GitHub's
and Shopify's GraphQL APIs price queries; docs/graphql-limits.md):

- A scalar or enum field costs 0: it comes with the object that holds it.
- An object field costs 1 (one row or one lookup), plus what is selected in it.
- Relay plumbing costs 0 itself: `edges` (types named `...Edge`) and `pageInfo`
  (`PageInfo`) hold nothing the connection has not fetched; their contents count.
- A field taking `first` is a page: its result is counted `first` times (`first`
  given, by a variable or literal, or else the field's default, 50 when null). For a
  connection, the page size applies to its `edges`.
- Any other list of objects is counted `UNPAGED_LIST_SIZE` times: the contract keeps
  lists that can grow without bound as connections, the others are short.
- Counts multiply down the tree: 100 partners each with 100 entries cost 10,000.
- Introspection (`__schema`, `__type`, `__typename`) costs 0: it reads the schema in
  memory and has its own rule (schema/limits.py).

A fragment is priced once per page size it is spread under (its price does not depend
on anything else), so pricing is linear in the document, like the limits of
`schema.fragments`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
)
from graphql.pyutils import Undefined

from schema.fragments import fragment_definitions

#: A page whose `first` is null: what `schema.pagination.check_first` then fetches.
DEFAULT_PAGE_SIZE = 50
#: How many elements an unpaginated list of objects (`errors`, `lines`, `agreements`) counts as.
UNPAGED_LIST_SIZE = 10
_PLUMBING_SUFFIX = "Edge"
_PAGE_INFO = "PageInfo"


@dataclass(frozen=True, slots=True)
class Cost:
    """An operation's price and the budget it was held to (`extensions.cost`)."""

    requested: int
    budget: int

    @property
    def over_budget(self) -> bool:
        return self.requested > self.budget

    def as_extension(self) -> dict[str, int]:
        return {"requestedQueryCost": self.requested, "maximumAvailable": self.budget}


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: dict[str, Any] | None,
) -> int:
    """The price of `operation` (of a validated `document`) with `variables` applied.

    Raises RecursionError only for nesting graphql-core's validation would have refused."""
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0
    given = variables if isinstance(variables, dict) else {}  # anything else fails coercion in execution
    return _Pricer(schema, document, operation, given).selection_set(root, operation.selection_set, None)


class _Pricer:
    def __init__(
        self, schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode, variables: dict
    ) -> None:
        self._schema = schema
        self._fragments = fragment_definitions(document)
        self._variables = variables
        self._defaults = {
            var.variable.name.value: int(var.default_value.value)
            for var in operation.variable_definitions or ()
            if isinstance(var.default_value, IntValueNode)
        }
        self._prices: dict[tuple[str, int | None], int] = {}
        self._open: set[str] = set()

    def selection_set(self, parent: GraphQLNamedType, selection_set: SelectionSetNode, page: int | None) -> int:
        """The price of one instance of `selection_set` on `parent`; `page` is the page
        size of the connection `parent` is (None outside a connection)."""
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self._field(parent, selection, page)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                kind = self._schema.get_type(condition.name.value) if condition else parent
                total += self.selection_set(kind or parent, selection.selection_set, page)
            elif isinstance(selection, FragmentSpreadNode):
                total += self._fragment(selection.name.value, page)
        return total

    def _fragment(self, name: str, page: int | None) -> int:
        key = (name, page)
        price = self._prices.get(key)
        if price is not None:
            return price
        definition = self._fragments.get(name)
        kind = self._schema.get_type(definition.type_condition.name.value) if definition else None
        if definition is None or kind is None or name in self._open:
            return 0  # not in a validated document
        self._open.add(name)
        try:
            price = self.selection_set(kind, definition.selection_set, page)
        finally:
            self._open.discard(name)
        self._prices[key] = price
        return price

    def _field(self, parent: GraphQLNamedType, node: FieldNode, page: int | None) -> int:
        name = node.name.value
        fields = getattr(parent, "fields", None)
        definition: GraphQLField | None = fields.get(name) if fields and not name.startswith("__") else None
        if definition is None or node.selection_set is None:
            return 0  # a leaf, introspection, or (not in a validated document) unknown
        kind = get_named_type(definition.type)
        size = self._page_size(definition, node) if "first" in definition.args else None
        if _is_list(definition.type):
            count = size if size is not None else page if page is not None else UNPAGED_LIST_SIZE
            inner_page = None
        else:
            count = 1
            inner_page = size  # a connection: its `edges` are the page
        weight = 0 if kind.name == _PAGE_INFO or kind.name.endswith(_PLUMBING_SUFFIX) else 1
        return count * (weight + self.selection_set(kind, node.selection_set, inner_page))

    def _page_size(self, definition: GraphQLField, node: FieldNode) -> int:
        argument = next((a for a in node.arguments or () if a.name.value == "first"), None)
        default = definition.args["first"].default_value
        value: Any = None if default is Undefined else default
        if argument is not None:
            if isinstance(argument.value, IntValueNode):
                value = int(argument.value.value)
            elif isinstance(argument.value, VariableNode):
                variable = argument.value.name.value
                value = self._variables.get(variable, self._defaults.get(variable, value))
            else:
                value = None  # null
        if not isinstance(value, int) or isinstance(value, bool):
            return DEFAULT_PAGE_SIZE  # null, or a value execution will refuse anyway
        return max(value, 0)


def _is_list(type_: Any) -> bool:
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)
