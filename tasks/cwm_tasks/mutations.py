"""AST mutations of Python source, of the kinds CWM's mutate-fix tasks use (CWM.md 4.1): remove part or all
of a function body, remove or reorder a call's arguments, swap two variables, remove an import or a return,
replace a binary, unary or boolean operator.

Each mutation edits only the bytes of the node it changes (the rest of the file keeps its formatting), must
parse, and must change the file's AST. The source is parsed, never run.
"""

import ast
import dataclasses
import difflib
import hashlib
from collections.abc import Iterator

KINDS = (
    "remove_body",
    "remove_statement",
    "remove_argument",
    "reorder_arguments",
    "swap_variables",
    "remove_import",
    "remove_return",
    "binary_operator",
    "unary_operator",
    "boolean_operator",
)

_BINARY = {
    ast.Add: ("+", "-"),
    ast.Sub: ("-", "+"),
    ast.Mult: ("*", "/"),
    ast.Div: ("/", "*"),
    ast.FloorDiv: ("//", "/"),
    ast.Mod: ("%", "//"),
    ast.Pow: ("**", "*"),
    ast.LShift: ("<<", ">>"),
    ast.RShift: (">>", "<<"),
    ast.BitAnd: ("&", "|"),
    ast.BitOr: ("|", "&"),
    ast.BitXor: ("^", "|"),
}
_COMPARE = {
    ast.Lt: ("<", "<="),
    ast.LtE: ("<=", "<"),
    ast.Gt: (">", ">="),
    ast.GtE: (">=", ">"),
    ast.Eq: ("==", "!="),
    ast.NotEq: ("!=", "=="),
}
_BOOLEAN = {ast.And: ("and", "or"), ast.Or: ("or", "and")}


@dataclasses.dataclass(frozen=True)
class Mutation:
    path: str  # relative to the repository
    kind: str
    line: int
    column: int
    description: str
    mutated: str  # the file's text after the mutation

    @property
    def key(self) -> str:
        """Names the mutation among a repository's: file, kind, place, change, and a digest of the result (two
        edits of one node, `a + b + c` say, share the rest)."""
        digest = hashlib.sha256(self.mutated.encode(errors="surrogateescape")).hexdigest()[:8]
        return f"{self.path}:{self.line}:{self.column}:{self.kind}:{self.description}:{digest}"


def mutations_of(path: str, source: str) -> list[Mutation]:
    """Every mutation of one file that parses and changes its AST (none if the file does not parse)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    data = source.encode()
    offsets = [0]
    for line in data.splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    original = ast.dump(tree)
    found, seen = [], set()
    for kind, node, start, end, replacement, description in _candidates(tree, data, offsets):
        mutated = (data[:start] + replacement.encode() + data[end:]).decode()
        try:
            changed = ast.dump(ast.parse(mutated)) != original
        except (SyntaxError, ValueError):
            continue
        if changed and mutated not in seen:
            seen.add(mutated)
            found.append(Mutation(path, kind, node.lineno, node.col_offset, description, mutated))
    return found


def _position(offsets, line: int, col: int) -> int:
    return offsets[line - 1] + col  # ast columns are UTF-8 byte offsets


def _span(node, offsets) -> tuple[int, int]:
    return _position(offsets, node.lineno, node.col_offset), _position(offsets, node.end_lineno, node.end_col_offset)


def _text(node, data, offsets) -> str:
    start, end = _span(node, offsets)
    return data[start:end].decode()


def _operator_between(left, right, data, offsets, symbol: str, new: str):
    """(start, end, replacement) replacing `symbol` between two nodes, if only it, spaces and brackets lie
    there (a comment or line continuation there is left alone)."""
    start, end = _position(offsets, left.end_lineno, left.end_col_offset), _span(right, offsets)[0]
    between = data[start:end].decode()
    if between.strip(" ()") != symbol:
        return None
    return start, end, between.replace(symbol, new, 1)


def _candidates(tree, data, offsets) -> Iterator[tuple]:
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for function in functions:
        body = function.body
        first = 1 if body and _is_docstring(body[0]) else 0
        if len(body) > first and not (len(body) == first + 1 and isinstance(body[first], ast.Pass)):
            start, end = _span(body[first], offsets)[0], _span(body[-1], offsets)[1]
            yield "remove_body", function, start, end, "pass", f"{function.name}: body removed"
        for block in _blocks(function):
            if len(block) > 1:
                for stmt in block[:-1]:
                    if _is_docstring(stmt) or isinstance(stmt, ast.Return):
                        continue
                    start, end = _span(stmt, offsets)
                    yield "remove_statement", stmt, start, end, "pass", f"{function.name}: line {stmt.lineno} removed"
        for node in ast.walk(function):
            if isinstance(node, ast.Return) and node.value is not None:
                start, end = _span(node, offsets)
                yield "remove_return", node, start, end, "pass", f"{function.name}: return removed"
    for stmt in tree.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)) and getattr(stmt, "module", None) != "__future__":
            start, end = _span(stmt, offsets)
            yield "remove_import", stmt, start, end, "pass", f"`{' '.join(_text(stmt, data, offsets).split())}` removed"
    for node in ast.walk(tree):
        yield from _expression_candidates(node, data, offsets)


def _expression_candidates(node, data, offsets) -> Iterator[tuple]:
    if isinstance(node, ast.Call) and not any(isinstance(a, ast.Starred) for a in node.args):
        args = [*node.args, *node.keywords]
        for i in range(len(args)):
            changed = ast.Call(
                node.func, [a for a in node.args if a is not args[i]], [k for k in node.keywords if k is not args[i]]
            )
            start, end = _span(node, offsets)
            yield (
                "remove_argument",
                node,
                start,
                end,
                _unparse_call(changed, node, data, offsets),
                f"argument {i + 1} removed",
            )
        for i in range(len(node.args) - 1):
            a, b = node.args[i], node.args[i + 1]
            if ast.dump(a) != ast.dump(b):
                swapped = list(node.args)
                swapped[i], swapped[i + 1] = b, a
                start, end = _span(node, offsets)
                changed = ast.Call(node.func, swapped, node.keywords)
                yield (
                    "reorder_arguments",
                    node,
                    start,
                    end,
                    _unparse_call(changed, node, data, offsets),
                    f"arguments {i + 1} and {i + 2} swapped",
                )
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        symbol, new = _BINARY[type(node.op)]
        edit = _operator_between(node.left, node.right, data, offsets, symbol, new)
        if edit:
            yield "binary_operator", node, *edit, f"{symbol} -> {new}"
        if isinstance(node.left, ast.Name) and isinstance(node.right, ast.Name) and node.left.id != node.right.id:
            yield from _swap(node, node.left, node.right, data, offsets)
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
        symbol, new = _COMPARE[type(node.ops[0])]
        edit = _operator_between(node.left, node.comparators[0], data, offsets, symbol, new)
        if edit:
            yield "binary_operator", node, *edit, f"{symbol} -> {new}"
        right = node.comparators[0]
        if isinstance(node.left, ast.Name) and isinstance(right, ast.Name) and node.left.id != right.id:
            yield from _swap(node, node.left, right, data, offsets)
    if isinstance(node, ast.BoolOp):
        symbol, new = _BOOLEAN[type(node.op)]
        for left, right in zip(node.values, node.values[1:], strict=False):
            edit = _operator_between(left, right, data, offsets, symbol, new)
            if edit:
                yield "boolean_operator", node, *edit, f"{symbol} -> {new}"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub, ast.Invert)):
        start, end = _span(node, offsets)
        name = {ast.Not: "not", ast.USub: "-", ast.Invert: "~"}[type(node.op)]
        yield "unary_operator", node, start, end, f"({_text(node.operand, data, offsets)})", f"{name} removed"


def _swap(node, a, b, data, offsets) -> Iterator[tuple]:
    """The two names of a binary operation or comparison swapped, in place."""
    (a_start, a_end), (b_start, b_end) = _span(a, offsets), _span(b, offsets)
    middle = data[a_end:b_start].decode()
    yield "swap_variables", node, a_start, b_end, f"{b.id}{middle}{a.id}", f"{a.id} and {b.id} swapped"


def _unparse_call(call: ast.Call, original: ast.Call, data, offsets) -> str:
    """The call with its function's text as written and its arguments as the AST gives them."""
    arguments = [_text(a, data, offsets) for a in call.args]
    arguments += [
        f"{k.arg}={_text(k.value, data, offsets)}" if k.arg else f"**{_text(k.value, data, offsets)}"
        for k in call.keywords
    ]
    return f"{_text(original.func, data, offsets)}({', '.join(arguments)})"


def _is_docstring(stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _blocks(function) -> Iterator[list]:
    """The statement lists inside a function (its body and every nested block), not nested functions'."""
    stack = [function.body]
    while stack:
        block = stack.pop()
        yield block
        for stmt in block:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            for field in ("body", "orelse", "finalbody"):
                inner = getattr(stmt, field, None)
                if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                    stack.append(inner)
            for handler in getattr(stmt, "handlers", []):
                stack.append(handler.body)


def unified_patch(path: str, before: str, after: str) -> str:
    """A git-style diff turning `before` into `after` for the file at `path` (what `git apply` takes)."""
    lines = difflib.unified_diff(_with_newline_marks(before), _with_newline_marks(after), f"a/{path}", f"b/{path}", n=3)
    return f"diff --git a/{path} b/{path}\n" + "".join(lines)


def _with_newline_marks(text: str) -> list[str]:
    lines = text.split("\n")  # lines as git counts them: a form feed or U+2028 ends no line
    lines = [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines
