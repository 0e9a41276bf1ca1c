"""The subset of QuickBooks Online's query language the sandbox understands, parsed and evaluated.

Grammar: ``SELECT *[, field...] | COUNT(*) | field[, field...] FROM Entity [WHERE cond [AND cond]...]
[ORDERBY field [ASC|DESC][, ...]] [STARTPOSITION n] [MAXRESULTS n]``, where a condition is
``path op value`` with op one of ``= < > <= >=``, ``IN (v, ...)`` or ``LIKE '%x%'``. Like QBO, there is no
OR, no joins and no NOT; keywords, entity and field names are case-insensitive.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

DEFAULT_MAX_RESULTS = 100
MAX_MAX_RESULTS = 1000

Literal_ = str | Decimal | bool
Path = tuple[str, ...]


class QuerySyntaxError(ValueError):
    """The query text does not parse; the message reads like QBO's QueryParserError detail."""


@dataclass(frozen=True)
class Condition:
    """One `path op value` test of a WHERE clause; for IN, `value` is a tuple of literals."""

    path: Path
    op: str
    value: Literal_ | tuple[Literal_, ...]


@dataclass(frozen=True)
class Select:
    """A parsed query."""

    entity: str
    count: bool
    fields: tuple[Path, ...] | None
    where: tuple[Condition, ...]
    order: tuple[tuple[Path, bool], ...]  # (path, descending)
    start_position: int
    max_results: int

    def mentions(self, name: str) -> bool:
        """True when the WHERE clause tests the top-level field `name` (case-insensitive)."""
        return any(cond.path[0].lower() == name.lower() for cond in self.where)


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:\\.|''|[^'\\])*')
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op><=|>=|<>|!=|=|<|>)
      | (?P<punct>[(),*])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    column: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    stripped_end = len(text.rstrip())
    while pos < stripped_end:
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise QuerySyntaxError(
                f'QueryParserError: Encountered " {text[pos:].split()[0]!r} " at line 1, column {pos + 1}.'
            )
        kind = match.lastgroup or ""
        tokens.append(_Token(kind, match.group(kind), match.start(kind) + 1))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def fail(self, expecting: str) -> QuerySyntaxError:
        token = self.peek()
        if token is None:
            return QuerySyntaxError(
                f'QueryParserError: Encountered "<EOF>" at line 1, column {len(self.text) + 1}. '
                f"Was expecting: {expecting}"
            )
        return QuerySyntaxError(
            f'QueryParserError: Encountered " {token.text} " at line 1, column {token.column}. '
            f"Was expecting: {expecting}"
        )

    def next(self, expecting: str) -> _Token:
        token = self.peek()
        if token is None:
            raise self.fail(expecting)
        self.pos += 1
        return token

    def keyword(self, *words: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "word" and token.text.upper() in words:
            self.pos += 1
            return True
        return False

    def expect_keyword(self, word: str) -> None:
        if not self.keyword(word):
            raise self.fail(word)

    def expect_punct(self, char: str) -> None:
        token = self.peek()
        if token is None or token.kind != "punct" or token.text != char:
            raise self.fail(f'"{char}"')
        self.pos += 1

    def path(self) -> Path:
        token = self.next("<IDENTIFIER>")
        if token.kind != "word" or token.text.upper() in _KEYWORDS:
            self.pos -= 1
            raise self.fail("<IDENTIFIER>")
        parts = tuple(token.text.split("."))
        if any(not part for part in parts):
            raise QuerySyntaxError(f"QueryParserError: Invalid property name {token.text!r}")
        return parts

    def literal(self) -> Literal_:
        token = self.next("<STRING> | <NUMBER> | true | false")
        if token.kind == "string":
            return _unquote(token.text)
        if token.kind == "number":
            return Decimal(token.text)
        if token.kind == "word" and token.text.lower() in ("true", "false"):
            return token.text.lower() == "true"
        self.pos -= 1
        raise self.fail("<STRING> | <NUMBER> | true | false")

    def integer(self, what: str) -> int:
        token = self.next(f"<INTEGER> after {what}")
        if token.kind != "number" or not token.text.lstrip("-").isdigit():
            self.pos -= 1
            raise self.fail(f"<INTEGER> after {what}")
        return int(token.text)

    def parse(self) -> Select:
        self.expect_keyword("SELECT")
        count = False
        fields: tuple[Path, ...] | None = None
        token = self.peek()
        if token is not None and token.kind == "punct" and token.text == "*":
            self.pos += 1
            # QBO accepts fields after the star (`SELECT *, Sku FROM Item`, as python-quickbooks sends);
            # the star already selects them.
            while self._comma():
                self.path()
        elif self.keyword("COUNT"):
            self.expect_punct("(")
            self.expect_punct("*")
            self.expect_punct(")")
            count = True
        else:
            chosen = [self.path()]
            while self._comma():
                chosen.append(self.path())
            fields = tuple(chosen)
        self.expect_keyword("FROM")
        entity_token = self.next("<ENTITY>")
        if entity_token.kind != "word" or entity_token.text.upper() in _KEYWORDS:
            self.pos -= 1
            raise self.fail("<ENTITY>")
        where: list[Condition] = []
        if self.keyword("WHERE"):
            where.append(self.condition())
            while self.keyword("AND"):
                where.append(self.condition())
            if self.keyword("OR"):
                raise QuerySyntaxError("QueryParserError: OR is not supported; use IN or separate queries")
        order: list[tuple[Path, bool]] = []
        if self.keyword("ORDERBY") or (self.keyword("ORDER") and self._by()):
            order.append(self.order_item())
            while self._comma():
                order.append(self.order_item())
        start, max_results = 1, DEFAULT_MAX_RESULTS
        if self.keyword("STARTPOSITION"):
            start = max(1, self.integer("STARTPOSITION"))
        if self.keyword("MAXRESULTS"):
            max_results = self.integer("MAXRESULTS")
            if max_results < 0:
                raise QuerySyntaxError("QueryParserError: MAXRESULTS must not be negative")
            max_results = min(max_results, MAX_MAX_RESULTS)
        if self.peek() is not None:
            raise self.fail("<EOF>")
        return Select(entity_token.text, count, fields, tuple(where), tuple(order), start, max_results)

    def _comma(self) -> bool:
        token = self.peek()
        if token is not None and token.kind == "punct" and token.text == ",":
            self.pos += 1
            return True
        return False

    def _by(self) -> bool:
        self.expect_keyword("BY")
        return True

    def order_item(self) -> tuple[Path, bool]:
        path = self.path()
        if self.keyword("DESC"):
            return path, True
        self.keyword("ASC")
        return path, False

    def condition(self) -> Condition:
        path = self.path()
        if self.keyword("IN"):
            self.expect_punct("(")
            values = [self.literal()]
            while self._comma():
                values.append(self.literal())
            self.expect_punct(")")
            return Condition(path, "IN", tuple(values))
        if self.keyword("LIKE"):
            value = self.literal()
            if not isinstance(value, str):
                raise QuerySyntaxError("QueryParserError: LIKE needs a quoted string pattern")
            return Condition(path, "LIKE", value)
        token = self.next("<OPERATOR>")
        if token.kind != "op" or token.text in ("<>", "!="):
            self.pos -= 1
            raise self.fail('"=" | "<" | ">" | "<=" | ">=" | "IN" | "LIKE"')
        return Condition(path, token.text, self.literal())


_KEYWORDS = frozenset(
    {"SELECT", "FROM", "WHERE", "AND", "OR", "ORDERBY", "ORDER", "BY", "ASC", "DESC"}
    | {"STARTPOSITION", "MAXRESULTS", "IN", "LIKE", "COUNT"}
)


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)|''", lambda m: m.group(1) if m.group(1) is not None else "'", body)


def parse(text: str) -> Select:
    """Parse a QBO query, raising QuerySyntaxError with a QBO-like detail on bad syntax."""
    return _Parser(text).parse()


# --- evaluation ---------------------------------------------------------------------------------------


def resolve(row: dict[str, Any], path: Path) -> Any:
    """The value at a dotted path, matching keys case-insensitively (QBO field names are)."""
    value: Any = row
    for part in path:
        if not isinstance(value, dict):
            return None
        if part in value:
            value = value[part]
            continue
        lowered = part.lower()
        for key, item in value.items():
            if key.lower() == lowered:
                value = item
                break
        else:
            return None
    # QBO compares a reference by its id and an e-mail or phone object by its text, as the API docs show
    # (`CustomerRef = '12'`, `PrimaryEmailAddr = 'a@b.com'`).
    if isinstance(value, dict):
        for inner in ("value", "Address", "FreeFormNumber"):
            if inner in value:
                return value[inner]
    return value


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _instant(text: str) -> datetime | None:
    if not _DATE.match(text):
        return None
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time())
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _as_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal | int):
        return Decimal(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value.strip()):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            return None
    return None


def _compare(left: Any, right: Literal_) -> int | None:
    """-1/0/1 comparing a stored value with a literal, or None when they cannot be compared."""
    if left is None:
        return None
    if isinstance(left, bool) or isinstance(right, bool):
        lbool = left if isinstance(left, bool) else str(left).lower() == "true"
        rbool = right if isinstance(right, bool) else str(right).lower() == "true"
        return 0 if lbool == rbool else (1 if lbool else -1)
    lnum, rnum = _as_decimal(left), _as_decimal(right)
    if lnum is not None and rnum is not None:
        return (lnum > rnum) - (lnum < rnum)
    if isinstance(left, str) and isinstance(right, str):
        ltime, rtime = _instant(left), _instant(right)
        if ltime is not None and rtime is not None:
            # A bare date or naive timestamp is read in the other side's offset (the company's).
            if ltime.tzinfo is None and rtime.tzinfo is not None:
                ltime = ltime.replace(tzinfo=rtime.tzinfo)
            elif rtime.tzinfo is None and ltime.tzinfo is not None:
                rtime = rtime.replace(tzinfo=ltime.tzinfo)
            return (ltime > rtime) - (ltime < rtime)
        lfold, rfold = left.casefold(), right.casefold()
        return (lfold > rfold) - (lfold < rfold)
    if isinstance(left, dict) and "value" in left:  # a reference: compare its id
        return _compare(left["value"], right)
    return None


def matches(row: dict[str, Any], cond: Condition) -> bool:
    """True when the stored row satisfies the condition."""
    value = resolve(row, cond.path)
    if cond.op == "IN":
        assert isinstance(cond.value, tuple)  # noqa: S101 - the parser guarantees it
        return any(_compare(value, option) == 0 for option in cond.value)
    if cond.op == "LIKE":
        if not isinstance(value, str) or not isinstance(cond.value, str):
            return False
        pattern = ".*".join(re.escape(part) for part in cond.value.split("%"))
        return re.fullmatch(pattern, value, re.IGNORECASE | re.DOTALL) is not None
    assert not isinstance(cond.value, tuple)  # noqa: S101 - the parser guarantees it
    result = _compare(value, cond.value)
    if result is None:
        return False
    return {
        "=": result == 0,
        "<": result < 0,
        ">": result > 0,
        "<=": result <= 0,
        ">=": result >= 0,
    }[cond.op]


def _sort_key(value: Any) -> tuple[int, Any]:
    """Numbers before timestamps before text, missing values last, so mixed columns still sort."""
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    if value is None:
        return (3, "")
    number = _as_decimal(value)
    if number is not None:
        return (0, number)
    if isinstance(value, str):
        instant = _instant(value)
        if instant is not None:
            aware = instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)
            return (1, aware.timestamp())
        return (2, value.casefold())
    return (2, str(value))


def _order_key(path: Path) -> Callable[[dict[str, Any]], tuple[int, Any]]:
    return lambda row: _sort_key(resolve(row, path))


def run(select: Select, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Filter, order and page rows (already restricted to the queried entity)."""
    found = [row for row in rows if all(matches(row, cond) for cond in select.where)]
    found.sort(key=_order_key(("Id",)))
    for path, descending in reversed(select.order):
        found.sort(key=_order_key(path), reverse=descending)
    start = select.start_position - 1
    return found[start : start + select.max_results]


def project(row: dict[str, Any], fields: tuple[Path, ...]) -> dict[str, Any]:
    """Keep only the selected top-level fields, as QBO does for a projection (plus Id, marked sparse)."""
    kept: dict[str, Any] = {}
    for path in fields:
        head = path[0]
        for key, value in row.items():
            if key.lower() == head.lower():
                kept[key] = value
    if "Id" in row:
        kept.setdefault("Id", row["Id"])
    kept["domain"] = row.get("domain", "QBO")
    kept["sparse"] = True
    return kept
