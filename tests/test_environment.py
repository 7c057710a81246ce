"""environment.yml (conda) and pyproject.toml (pip) describe the same environment."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _norm(req: str) -> tuple[str, str]:
    m = re.match(r"\s*([A-Za-z0-9_.\-\[\]]+)\s*(.*)", req)
    name, spec = m.group(1), m.group(2).replace(" ", "")
    return re.sub(r"[-_.]+", "-", name.lower()), spec


def pyproject_requirements() -> dict[str, str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"])
    for extra in ("book", "test", "backends"):
        reqs += meta["optional-dependencies"][extra]
    return dict(_norm(r) for r in reqs)


def conda_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out = {}
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            name, spec = _norm(item)
            if name in ("python", "pip"):
                continue
            out[name] = spec
    return out


def test_environment_yml_matches_pyproject():
    pip, conda = pyproject_requirements(), conda_requirements()
    assert set(conda) == set(pip), (
        f"only in environment.yml: {sorted(set(conda) - set(pip))}; "
        f"only in pyproject.toml: {sorted(set(pip) - set(conda))}")
    for name, spec in pip.items():
        assert conda[name] == spec, f"{name}: pyproject says {spec!r}, environment.yml {conda[name]!r}"


def test_environment_python_and_jupyter_book_pin():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    [python] = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    from packaging.specifiers import SpecifierSet

    spec = SpecifierSet(python.split("#")[0].strip()[len("python"):])
    assert "3.11" in spec and "3.12" in spec, python      # here, and Colab's
    # Jupyter Book 2 reads neither _config.yml nor _toc.yml: the 1.x line is pinned
    assert pyproject_requirements()["jupyter-book"] == ">=1.0.4.post1,<2"
