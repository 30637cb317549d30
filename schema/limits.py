"""GraphQL limits (contract README, "GraphQL limits"): depth, aliases, tokens, `first`,
introspection and field suggestions. Body size, batching and rate limits are HTTP
matters and live in schema/http.py.

A request over a limit gets an error with `extensions.code = LIMIT_EXCEEDED` and
nothing of it executes: the limits are validation rules (or, for tokens, a parser
option), so they refuse before the first resolver runs.

The depth and alias checks are strawberry's own (`QueryDepthLimiter`,
`MaxAliasesLimiter` build these same validators), the token count is strawberry's
`MaxTokensLimiter`. The rule classes are built once per combination of settings and
reused by every request: strawberry's `ValidationCache` keys its LRU cache on the
tuple of rule classes, so building a fresh `QueryDepthLimiter` per request (the
factory pattern strawberry recommends for extensions) would create a new validator
class every time and the cache would never hit.
"""
from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

from graphql import (
    ArgumentNode,
    FieldNode,
    GraphQLError,
    IntValueNode,
    VariableNode,
    visit,
)
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql.language import DocumentNode, OperationDefinitionNode, Visitor
from graphql.validation import NoSchemaIntrospectionCustomRule, ValidationContext, ValidationRule
from strawberry.extensions import MaxTokensLimiter, SchemaExtension
from strawberry.extensions.max_aliases import create_validator as aliases_validator
from strawberry.extensions.query_depth_limiter import create_validator as depth_validator

LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
FORBIDDEN = "FORBIDDEN"

_SUGGESTION = re.compile(r"\s*Did you mean .*$", re.DOTALL)
_TOO_MANY_TOKENS = "Document contains more than"
_TOO_DEEP = "Document is nested too deeply"


def _tag(error: GraphQLError, code: str) -> GraphQLError:
    error.extensions = {**(error.extensions or {}), "code": code}
    return error


def coded(rule: type[ValidationRule], code: str) -> type[ValidationRule]:
    """`rule` with `extensions.code = code` on every error it reports.

    Works for rules that report while constructed (strawberry's depth and alias
    validators) as well as while visiting.
    """

    class Coded(rule):  # type: ignore[misc, valid-type]
        def __init__(self, context: ValidationContext) -> None:
            original = context.on_error
            context.on_error = lambda error: original(_tag(error, code))  # type: ignore[method-assign]
            try:
                super().__init__(context)
            finally:
                context.on_error = original  # type: ignore[method-assign]

        def report_error(self, error: GraphQLError) -> None:
            super().report_error(_tag(error, code))

    Coded.__name__ = Coded.__qualname__ = f"Coded{rule.__name__}"
    return Coded


class NoSuggestionsRule(ValidationRule):
    """Asks graphql-core's own rules to leave out "Did you mean ..." (production)."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        context._hide_suggestions = True  # noqa: SLF001 - the flag validate() would set


def first_limit_rule(max_page_size: int) -> type[ValidationRule]:
    """Refuses a literal `first:` argument above the page-size limit."""

    class FirstArgumentLimit(ValidationRule):
        def enter_argument(self, node: ArgumentNode, *_args: Any) -> None:
            if (
                node.name.value == "first"
                and self.context.get_directive() is None
                and isinstance(node.value, IntValueNode)
                and int(node.value.value) > max_page_size
            ):
                self.report_error(
                    GraphQLError(
                        f"`first` may be at most {max_page_size}",
                        node,
                        extensions={"code": LIMIT_EXCEEDED},
                    )
                )

    return FirstArgumentLimit


@functools.lru_cache(maxsize=32)
def validation_rules(
    *, max_depth: int, max_aliases: int, max_page_size: int, introspection: bool, suggestions: bool
) -> tuple[type[ValidationRule], ...]:
    """The gateway's extra validation rules; the same tuple (same classes) for the same arguments."""
    rules: list[type[ValidationRule]] = [
        coded(depth_validator(max_depth, None), LIMIT_EXCEEDED),
        coded(aliases_validator(max_aliases), LIMIT_EXCEEDED),
        first_limit_rule(max_page_size),
    ]
    if not introspection:
        rules.append(coded(NoSchemaIntrospectionCustomRule, FORBIDDEN))
    if not suggestions:
        rules.append(NoSuggestionsRule)
    return tuple(rules)


def introspection_allowed(settings, principal) -> bool:
    """Development: everyone authenticated. Production: ADMIN clients only."""
    if principal is None:
        return False
    return settings.development or principal.is_admin


def rules_for(settings, principal) -> tuple[type[ValidationRule], ...]:
    return validation_rules(
        max_depth=settings.max_depth,
        max_aliases=settings.max_aliases,
        max_page_size=settings.max_page_size,
        introspection=introspection_allowed(settings, principal),
        suggestions=settings.development,
    )


def variable_first_violation(
    document: DocumentNode, variables: dict[str, Any] | None, max_page_size: int
) -> GraphQLError | None:
    """A `first: $var` whose value (given or default) is above the limit, as an error."""
    defaults: dict[str, Any] = {}
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            for var in definition.variable_definitions or ():
                if isinstance(var.default_value, IntValueNode):
                    defaults.setdefault(var.variable.name.value, int(var.default_value.value))
    given = variables or {}
    found: list[GraphQLError] = []

    class Finder(Visitor):
        def enter_argument(self, node: ArgumentNode, _key, _parent, _path, ancestors) -> None:
            if node.name.value != "first" or not isinstance(node.value, VariableNode):
                return
            if not ancestors or not isinstance(ancestors[-1], FieldNode):
                return
            name = node.value.name.value
            value = given.get(name, defaults.get(name))
            if isinstance(value, int) and not isinstance(value, bool) and value > max_page_size:
                found.append(
                    GraphQLError(
                        f"`first` may be at most {max_page_size}", node, extensions={"code": LIMIT_EXCEEDED}
                    )
                )

    visit(document, Finder())
    return found[0] if found else None


def tag_limit_errors(errors: list[GraphQLError], *, hide_suggestions: bool) -> None:
    """Codes the parser's limit errors; strips suggestions the validator could not hide."""
    for error in errors:
        message = error.message
        if _TOO_MANY_TOKENS in message or _TOO_DEEP in message or isinstance(error.original_error, RecursionError):
            _tag(error, LIMIT_EXCEEDED)
        if hide_suggestions and "Did you mean" in message:
            error.message = _SUGGESTION.sub("", message)


class TokenLimit(MaxTokensLimiter):
    """strawberry's `MaxTokensLimiter`, with the count read from the request's settings."""

    def __init__(self) -> None:
        super().__init__(max_token_count=5000)

    def on_operation(self) -> Iterator[None]:
        ctx = self.execution_context.context
        settings = getattr(ctx, "settings", None)
        if settings is not None:
            self.max_token_count = settings.max_tokens
        yield from super().on_operation()


class GraphQLLimits(SchemaExtension):
    """Per request: picks the validation rules for the caller; checks `first: $var` before execution."""

    def on_operation(self) -> Iterator[None]:
        ctx = self.execution_context.context
        settings = getattr(ctx, "settings", None)
        if settings is not None:
            self.execution_context.validation_rules = self.execution_context.validation_rules + rules_for(
                settings, getattr(ctx, "principal", None)
            )
        yield

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        settings = getattr(context.context, "settings", None)
        if settings is not None and context.graphql_document is not None and not context.result:
            error = variable_first_violation(context.graphql_document, context.variables, settings.max_page_size)
            if error is not None:
                # A result set before execution stops strawberry from executing at all.
                context.result = GraphQLExecutionResult(data=None, errors=[error])
        yield
