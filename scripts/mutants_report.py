"""Print the share of mutants killed per module and list the survivors (`make mutants`).

Reads what `mutmut run` (3.x) left under mutants/: for each mutated module `<path>.meta` holds the
exit code of the tests per mutant, and `<path>` itself holds the original function
(`x_name__mutmut_orig`, methods `xǁClassǁname__mutmut_orig`) beside each mutated copy
(`..._mutmut_N`). A survivor is printed as `file:line` of the original source with the line as
written and as mutated.

    python scripts/mutants_report.py [--min PERCENT] [MODULE_PATH ...]

Exit status 1 when a module is below --min (default 0: report only).
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

MUTANTS = Path("mutants")
# mutmut's exit codes (mutmut/__main__.py status_by_exit_code), grouped the way this report counts
KILLED = {1, 3}  # a test failed; 3 = pytest internal error, also a kill
TIMEOUT = {24, -24, 36, 152, 255}  # the tests ran past their time: counted as killed
TYPE_CHECK = {37}  # caught by the type checker: counted as killed
SURVIVED = {0}
NO_TESTS = {5, 33}  # no test reaches the function: a survivor too
# anything else (None: not checked, 34: skipped, 35: suspicious, segfaults) is "other"


@dataclass
class Survivor:
    key: str
    status: str
    line: int
    before: str
    after: str


@dataclass
class ModuleReport:
    path: str
    killed: int = 0
    survived: int = 0
    no_tests: int = 0
    other: int = 0
    survivors: list[Survivor] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.killed + self.survived + self.no_tests + self.other

    @property
    def share(self) -> float:
        return 100.0 * self.killed / self.total if self.total else 100.0


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    """Top-level functions and methods by name; methods as `Class.method`."""
    found: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found[node.name] = node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    found[f"{node.name}.{item.name}"] = item
    return found


def _split_key(key: str) -> tuple[str, str, str]:
    """A mutant's key as (where its copies are, which copy, the original function).

    `pkg.mod.xǁCǁm__mutmut_3` -> (`C.xǁCǁm`, `3`, `C.m`);
    `pkg.mod.x_f__mutmut_3` -> (`x_f`, `3`, `f`).
    """
    mangled, _, number = key.rsplit(".", 1)[1].rpartition("__mutmut_")
    if mangled.startswith("xǁ"):
        _, cls, method = mangled.split("ǁ", 2)
        return f"{cls}.{mangled}", number, f"{cls}.{method}"
    return mangled, number, mangled.removeprefix("x_")


def _source_lines(source: str, node: ast.AST) -> list[str]:
    segment = ast.get_source_segment(source, node, padded=True) or ""
    return segment.splitlines()


def _locate(
    key: str,
    mutated_source: str,
    mutated_defs: dict[str, ast.FunctionDef | ast.AsyncFunctionDef],
    original_defs: dict[str, ast.FunctionDef | ast.AsyncFunctionDef],
) -> tuple[int, str, str]:
    """(line in the original file, the line there, the mutated line) of one mutant."""
    copies, number, name = _split_key(key)
    orig_node = mutated_defs.get(f"{copies}__mutmut_orig")
    mut_node = mutated_defs.get(f"{copies}__mutmut_{number}")
    original = original_defs.get(name)
    if orig_node is None or mut_node is None or original is None:
        return 0, "?", "?"
    before = _source_lines(mutated_source, orig_node)
    after = _source_lines(mutated_source, mut_node)
    matcher = difflib.SequenceMatcher(a=before[1:], b=after[1:], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            old = " / ".join(s.strip() for s in before[1 + i1 : 1 + i2]) or "(nothing)"
            new = " / ".join(s.strip() for s in after[1 + j1 : 1 + j2]) or "(removed)"
            return original.lineno + 1 + i1, old, new
    # only the def line differs (a default argument)
    return original.lineno, before[0].strip(), after[0].strip()


def module_report(path: str) -> ModuleReport:
    meta = json.loads((MUTANTS / f"{path}.meta").read_text())
    codes: dict[str, int | None] = meta["exit_code_by_key"]
    mutated_source = (MUTANTS / path).read_text()
    mutated_defs = _functions(ast.parse(mutated_source))
    original_defs = _functions(ast.parse(Path(path).read_text()))
    report = ModuleReport(path)
    for key, code in sorted(codes.items(), key=lambda kv: _sort_key(kv[0])):
        if code in KILLED or code in TIMEOUT or code in TYPE_CHECK:
            report.killed += 1
            continue
        if code in SURVIVED:
            report.survived += 1
            status = "survived"
        elif code in NO_TESTS:
            report.no_tests += 1
            status = "no tests"
        else:
            report.other += 1
            status = f"other ({code})"
        line, before, after = _locate(key, mutated_source, mutated_defs, original_defs)
        report.survivors.append(Survivor(key, status, line, before, after))
    report.survivors.sort(key=lambda s: (s.line, _sort_key(s.key)))
    return report


def _sort_key(key: str) -> tuple[str, int]:
    head, _, number = key.rpartition("__mutmut_")
    return head, int(number) if number.isdigit() else 0


def mutated_paths() -> list[str]:
    return sorted(
        str(meta.relative_to(MUTANTS)).removesuffix(".meta") for meta in MUTANTS.rglob("*.py.meta")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("paths", nargs="*", help="modules (default: every mutated one)")
    parser.add_argument("--min", type=float, default=0.0, help="fail below this share killed")
    parser.add_argument("--quiet", action="store_true", help="figures only, no survivor list")
    args = parser.parse_args(argv)
    if not MUTANTS.is_dir():
        print("no mutants/ here: run `make mutants` (or `mutmut run`) first", file=sys.stderr)
        return 2
    reports = [module_report(p) for p in (args.paths or mutated_paths())]
    if not args.quiet:
        for report in reports:
            for s in report.survivors:
                print(f"{report.path}:{s.line}: {s.status}: {s.before}  ->  {s.after}  [{s.key}]")
        print()
    print(f"{'module':<32} {'killed':>7} {'total':>6} {'share':>7}  survived  no-tests  other")
    failing = False
    for r in reports:
        print(
            f"{r.path:<32} {r.killed:>7} {r.total:>6} {r.share:>6.1f}%"
            f"  {r.survived:>8}  {r.no_tests:>8}  {r.other:>5}"
        )
        failing = failing or r.share < args.min
    killed = sum(r.killed for r in reports)
    total = sum(r.total for r in reports)
    print(f"{'all':<32} {killed:>7} {total:>6} {100.0 * killed / max(total, 1):>6.1f}%")
    return 1 if failing else 0


if __name__ == "__main__":
    raise SystemExit(main())
