"""GraphQL limits (contract README, "GraphQL limits"): depth, aliases, tokens, `first`,
fields once fragments are expanded, query cost, introspection and field suggestions.
Body size, batching and rate limits are HTTP matters and live in schema/http.py.

A request over a limit gets an error with `extensions.code = LIMIT_EXCEEDED` and
nothing of it executes: the limits are validation rules (or, for tokens, a parser
option; for the cost and `first: $var`, a check between validation and execution), so
they refuse before the first resolver runs.

Depth, aliases and expanded size are one rule (`DocumentShape`) over `schema.fragments`,
which summarises each fragment once: strawberry's `QueryDepthLimiter` and
`MaxAliasesLimiter` follow every spread anew, so a document of k fragments each
spreading the next twice cost them 2^k steps (seconds for k=17, while the token limit
allows k of several hundred). The token count is strawberry's `MaxTokensLimiter`.

The rule classes are built once per combination of settings and reused by every
request: strawberry's `ValidationCache` keys its LRU cache on the tuple of rule
classes, so a fresh class per request would never hit the cache.
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
from graphql.utilities import get_operation_ast
from graphql.validation import NoSchemaIntrospectionCustomRule, ValidationContext, ValidationRule
from strawberry.extensions import MaxTokensLimiter, SchemaExtension

from schema.cost import Cost, operation_cost
from schema.fragments import ShapeWalker, operations

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

    Works for rules that report while constructed as well as while visiting.
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


def _count(n: int) -> str:
    # 2^400 spelled out would be a 121-digit message.
    return f"{n:,}" if n < 10**9 else "more than 1,000,000,000"


def shape_errors(document: DocumentNode, *, max_depth: int, max_aliases: int, max_fields: int) -> list[GraphQLError]:
    """An operation nested deeper than `max_depth`, a document with more than
    `max_aliases` aliases (all operations together, as strawberry's `MaxAliasesLimiter`
    counted), an operation that expands to more than `max_fields` fields: each counted
    as if its fragments were expanded, in time linear in the document
    (`schema.fragments`). Introspection fields do not count towards the depth."""
    errors: list[GraphQLError] = []

    def refuse(message: str, node) -> None:
        errors.append(GraphQLError(message, node, extensions={"code": LIMIT_EXCEEDED}))

    walker = ShapeWalker(document)
    aliases = 0
    for operation in operations(document):
        name = operation.name.value if operation.name else "anonymous"
        try:
            shape = walker.operation(operation)
        except RecursionError:
            refuse(f"'{name}' nests fragments too deeply", operation)
            return errors
        aliases += shape.aliases
        if shape.fields > max_fields:
            refuse(
                f"'{name}' expands to {_count(shape.fields)} fields once its fragments are spread;"
                f" at most {max_fields:,} are allowed",
                operation,
            )
        if shape.depth > max_depth:
            refuse(f"'{name}' exceeds maximum operation depth of {max_depth}", operation)
    if aliases > max_aliases:
        refuse(f"{_count(aliases)} aliases found. Allowed: {max_aliases}", None)
    return errors


class DocumentShape(ValidationRule):
    """Base of the rules `document_shape_rule` builds (so `GraphQLLimits` can find them)."""


def document_shape_rule(*, max_depth: int, max_aliases: int, max_fields: int) -> type[ValidationRule]:
    """`shape_errors` as a validation rule."""

    class ShapeLimits(DocumentShape):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            for error in shape_errors(
                context.document, max_depth=max_depth, max_aliases=max_aliases, max_fields=max_fields
            ):
                self.report_error(error)

    return ShapeLimits


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
    *,
    max_depth: int,
    max_aliases: int,
    max_fields: int,
    max_page_size: int,
    introspection: bool,
    suggestions: bool,
) -> tuple[type[ValidationRule], ...]:
    """The gateway's extra validation rules; the same tuple (same classes) for the same arguments."""
    rules: list[type[ValidationRule]] = [
        document_shape_rule(max_depth=max_depth, max_aliases=max_aliases, max_fields=max_fields),
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
        max_fields=settings.max_fields,
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
                    GraphQLError(f"`first` may be at most {max_page_size}", node, extensions={"code": LIMIT_EXCEEDED})
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
    """Per request: picks the validation rules for the caller; before execution, checks
    `first: $var` and prices the operation (schema/cost.py), refusing it over the budget;
    puts the price in the response's `extensions.cost`."""

    def __init__(self) -> None:
        super().__init__()
        self.cost: Cost | None = None

    def on_operation(self) -> Iterator[None]:
        ctx = self.execution_context.context
        settings = getattr(ctx, "settings", None)
        if settings is not None:
            self.execution_context.validation_rules = self.execution_context.validation_rules + rules_for(
                settings, getattr(ctx, "principal", None)
            )
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        settings = getattr(context.context, "settings", None)
        if settings is not None and context.graphql_document is not None:
            over = shape_errors(
                context.graphql_document,
                max_depth=settings.max_depth,
                max_aliases=settings.max_aliases,
                max_fields=settings.max_fields,
            )
            if over:
                # Refused anyway: validate with the shape rule alone, so the spec rules
                # (graphql-core's overlapping-fields rule is quadratic in repeated
                # fields) never spend time on a document this large.
                context.validation_rules = tuple(r for r in context.validation_rules if issubclass(r, DocumentShape))
        yield

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        settings = getattr(context.context, "settings", None)
        if settings is not None and context.graphql_document is not None and not context.result:
            error = variable_first_violation(context.graphql_document, context.variables, settings.max_page_size)
            if error is None:
                error = self._price(settings)
            if error is not None:
                # A result set before execution stops strawberry from executing at all.
                context.result = GraphQLExecutionResult(data=None, errors=[error])
        yield

    def _price(self, settings) -> GraphQLError | None:
        context = self.execution_context
        document = context.graphql_document
        operation = get_operation_ast(document, context.operation_name)
        if operation is None:
            return None  # execution reports the missing operation
        try:
            requested = operation_cost(context.schema._schema, document, operation, context.variables)  # noqa: SLF001
        except RecursionError:
            # Only nesting graphql-core's validation aborts reaches here; refuse it all the same.
            return GraphQLError("The operation nests too deeply to be priced", extensions={"code": LIMIT_EXCEEDED})
        self.cost = Cost(requested=requested, budget=settings.max_query_cost)
        if not self.cost.over_budget:
            return None
        return GraphQLError(
            f"The operation's cost is {requested:,}, over the budget of {settings.max_query_cost:,} "
            "(extensions.cost; ask for smaller pages with `first`)",
            operation,
            extensions={"code": LIMIT_EXCEEDED, "cost": requested, "budget": settings.max_query_cost},
        )

    def get_results(self) -> dict[str, Any]:
        return {"cost": self.cost.as_extension()} if self.cost is not None else {}
