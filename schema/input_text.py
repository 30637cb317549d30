"""Text the database cannot store is refused before anything runs.

PostgreSQL refuses a NUL character in text and a string holding an unpaired UTF-16
surrogate cannot be encoded as UTF-8 at all; both would fail deep inside a service, as
a driver error. graphql-core lets both in: a NUL through a string literal (`"a\\u0000b"`)
or a variable, a lone surrogate through a JSON variable (`"\\ud800"`). This extension
looks at every string of the operation (its literals and its variables, at any depth)
and answers `INVALID_INPUT` before execution, so nothing is written.

A `String` scalar override cannot do it: graphql-core reserves the names of its
built-in scalars.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError, StringValueNode, visit
from graphql.language import DocumentNode, Visitor
from strawberry.extensions import SchemaExtension

from gateway.untrusted import UNSTORABLE, storable, unstorable_path

INVALID_INPUT = "INVALID_INPUT"
_WHY = UNSTORABLE


def _literal_error(document: DocumentNode, query: str | None) -> GraphQLError | None:
    # Surrogates cannot reach a literal (the lexer refuses them), a NUL can, raw or as
    # an escape; documents without either need no walk.
    if query is not None and "\x00" not in query and "\\u" not in query:
        return None
    found: list[StringValueNode] = []

    class Finder(Visitor):
        def enter_string_value(self, node: StringValueNode, *_args: Any) -> Any:
            if not storable(node.value):
                found.append(node)
                return Visitor.BREAK
            return None

    visit(document, Finder())
    if not found:
        return None
    return GraphQLError(f"A string argument {_WHY}.", found[0], extensions={"code": INVALID_INPUT})


def _variable_path(variables: dict[str, Any]) -> str | None:
    """The path (`$input.name`, `$ids[2]`) of the first unstorable string in the
    variables, names included."""
    for name, value in variables.items():
        path = unstorable_path(value, f"${name}")
        if path is not None:
            return path
    return None


def unstorable_text(document: DocumentNode, query: str | None, variables: dict[str, Any] | None) -> GraphQLError | None:
    """An INVALID_INPUT error for the first string of the operation the database cannot hold."""
    error = _literal_error(document, query)
    if error is not None:
        return error
    if isinstance(variables, dict):
        for name in variables:
            if isinstance(name, str) and not storable(name):
                return GraphQLError(f"A variable name {_WHY}.", extensions={"code": INVALID_INPUT})
        path = _variable_path(variables)
        if path is not None:
            shown = path if len(path) <= 200 else path[:200] + "..."
            return GraphQLError(f"The variable value at {shown} {_WHY}.", extensions={"code": INVALID_INPUT})
    return None


class StorableText(SchemaExtension):
    """Refuses, before execution, an operation carrying text the database cannot store."""

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        if context.graphql_document is not None and not context.result:
            error = unstorable_text(context.graphql_document, context.query, context.variables)
            if error is not None:
                # A result set before execution stops strawberry from executing at all.
                context.result = GraphQLExecutionResult(data=None, errors=[error])
        yield
