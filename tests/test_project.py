"""Project-level checks: packaging files agree, the CLI explains itself, configs validate."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

from rstn_core import cli
from rstn_core.config import DataConfig, InferenceConfig, ModelConfig, StageConfig, TrainConfig

ROOT = Path(__file__).resolve().parents[1]

# conda-forge names that differ from PyPI names
CONDA_NAMES = {"torch": "pytorch"}


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].strip().lower() for r in requirements}


def test_environment_yml_lists_every_dependency_of_pyproject():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _names(meta["dependencies"])
    for extra in meta["optional-dependencies"].values():
        wanted |= _names(extra)
    env_text = (ROOT / "environment.yml").read_text()
    listed = {m.group(1).lower() for m in re.finditer(r"^\s*-\s*([A-Za-z0-9_.\-]+)", env_text, re.M)}
    missing = {n for n in wanted if CONDA_NAMES.get(n, n) not in listed}
    assert not missing, f"environment.yml lacks {sorted(missing)}"


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, re.S)
    assert blocks, "README has no command block"
    commands = [line for line in blocks[0].splitlines() if line.strip() and not line.startswith("#")]
    assert commands == ["make app", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_cli_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out
        with pytest.raises(SystemExit):
            cli.main([name, "--help"])
        assert "usage: rstn " + name in capsys.readouterr().out


@pytest.mark.parametrize(
    "factory, message",
    [
        (lambda: DataConfig(hu_min=10, hu_max=0), "hu_max"),
        (lambda: DataConfig(target_labels=()), "target_labels"),
        (lambda: DataConfig(target_labels=(0,)), "positive"),
        (lambda: ModelConfig(width=0), "width"),
        (lambda: ModelConfig(saliency="7x7"), "7x7"),
        (lambda: ModelConfig.from_preset("huge"), "huge"),
        (lambda: InferenceConfig(fusion="max"), "max"),
        (lambda: InferenceConfig(threshold=1.5), "1.5"),
        (lambda: StageConfig("X", 10), "'X'"),
        (lambda: TrainConfig(unroll=0), "unroll"),
        (lambda: TrainConfig(method="unet"), "unet"),
    ],
)
def test_invalid_configs_are_refused_with_the_offending_value(factory, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        factory()


@pytest.mark.parametrize(
    "config",
    [DataConfig(target_labels=(7,), spacing=(1.0, 1.0, 2.5)), ModelConfig.from_preset("cpu-small"),
     InferenceConfig(fusion="vote", max_rounds=3), TrainConfig(method="c2f", stages=(StageConfig("coarse", 5),))],
)
def test_configs_round_trip_through_plain_dicts(config):
    assert type(config).from_dict(config.to_dict()) == config


def test_unknown_config_keys_are_refused():
    with pytest.raises(ValueError, match="unknown keys"):
        ModelConfig.from_dict({"width": 1.0, "depth": 3})


def _make_recipe(target: str) -> tuple[list[str], list[str]]:
    """(prerequisites, recipe lines) of ``target`` in the Makefile."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return lines[start].split(":", 1)[1].split(), recipe


def test_make_test_fast_skips_slow_tests_and_make_test_runs_every_marker():
    _, fast = _make_recipe("test-fast")
    assert any('-m "not ui and not slow"' in line for line in fast)
    needs, _ = _make_recipe("test")
    selections = [line for target in needs for line in _make_recipe(target)[1] if "pytest" in line]
    assert sorted(selections) == sorted(['$(BIN)/python -m pytest -m "not ui"', "$(BIN)/python -m pytest -m ui"])


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize(
    "files, forbidden",
    [
        ("rstn_core/inference/*.py", "rstn_core.evaluation"),  # inference sits below evaluation
        ("rstn_core/models/fcn.py", "rstn_core.models.weights"),  # weights builds on fcn, not the reverse
        ("rstn_core/**/*.py", "panel"),  # the library never imports the GUI
    ],
)
def test_imports_point_down_the_layers(files, forbidden):
    offenders = sorted(f"{p.relative_to(ROOT)}: {m}" for p in ROOT.glob(files) for m in _imports(p)
                       if m == forbidden or m.startswith(forbidden + "."))
    assert not offenders
