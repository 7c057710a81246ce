"""The publishing workflow (.github/workflows/publish.yml): it parses, every command it runs is a
make target that `make test` runs too, and it publishes where _config.yml and the Makefile say."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from gdlbook import colab

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "publish.yml"


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def steps() -> list[dict]:
    [job] = workflow()["jobs"].values()
    return job["steps"]


def makefile_graph() -> dict[str, set[str]]:
    """target -> the targets it runs: its prerequisites and the `$(MAKE) X` of its recipe."""
    graph: dict[str, set[str]] = {}
    current = None
    for line in (ROOT / "Makefile").read_text().splitlines():
        rule = re.match(r"^([\w.-]+)\s*:(?!=)\s*(.*)$", line)
        if rule and not line.startswith("\t"):
            current = rule.group(1)
            graph.setdefault(current, set()).update(
                t for t in rule.group(2).split() if not t.startswith("$"))
        elif line.startswith("\t") and current:
            graph[current].update(re.findall(r"\$\(MAKE\)\s+([\w-]+)", line))
        elif line.strip() and not line.startswith(("\t", "#", "ifeq", "else", "endif")):
            current = None
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        t = todo.pop()
        if t not in seen:
            seen.add(t)
            todo += graph.get(t, ())
    return seen


def test_the_workflow_parses_and_runs_on_pushes_to_main():
    wf = workflow()
    triggers = wf.get("on", wf.get(True))         # YAML 1.1 reads a bare `on` as True
    assert triggers["push"]["branches"] == ["main"]
    assert wf["permissions"]["pages"] == "write"


def test_every_command_is_a_make_target_that_the_tests_run():
    graph = makefile_graph()
    tested = reachable(graph, "test")
    commands = [s["run"] for s in steps() if "run" in s]
    assert commands, "the workflow runs nothing"
    for command in commands:
        words = shlex.split(command)
        assert words[0] == "make" and len(words) >= 2, command
        target, *settings = words[1:]
        assert all(re.fullmatch(r"[A-Z_]+=\S*", s) for s in settings), command
        assert target in tested, f"`{command}`: make {target} is not run by make test"
    assert {"book", "colab"} <= {shlex.split(c)[1] for c in commands}


def test_it_publishes_where_the_book_and_the_badges_expect():
    uses = {s["uses"].split("@")[0]: s.get("with", {}) for s in steps() if "uses" in s}
    assert uses["actions/upload-pages-artifact"]["path"] == "_build/html"   # make book's output
    push = uses["peaceiris/actions-gh-pages"]
    assert push["publish_branch"] == colab.settings(ROOT).branch
    assert push["publish_dir"] == colab.DEFAULT_OUT.as_posix()
    assert f"--out {colab.DEFAULT_OUT.as_posix()}" in (ROOT / "Makefile").read_text()


def test_the_publishing_python_is_one_the_package_accepts():
    python = next(s["with"]["python-version"] for s in steps()
                  if s.get("uses", "").startswith("actions/setup-python"))
    requires = re.search(r'requires-python\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text())
    from packaging.specifiers import SpecifierSet

    assert python in SpecifierSet(requires.group(1))
