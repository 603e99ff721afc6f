"""Terraform's wiring, checked without providers: `terraform validate` needs the Google
provider, which CI machines cannot install, so this test parses every configuration
with python-hcl2 and checks what validate would check between our own files: every
`var.`, `local.`, `module.` and resource reference names something declared; every
module call passes only variables its module declares, and all those without a default;
every path the environments hand to modules exists. Run by `cargo xtask infra check`."""

from __future__ import annotations

import re
from pathlib import Path

import hcl2
import pytest

TERRAFORM = Path(__file__).resolve().parent.parent
CONFIGS = sorted(
    [p for p in (TERRAFORM / "modules").iterdir() if p.is_dir()]
    + [p for p in (TERRAFORM / "environments").iterdir() if p.is_dir()]
)
META_ARGUMENTS = {"source", "depends_on", "providers", "count", "for_each", "version"}


class Config:
    """Everything one folder of .tf files declares, and every expression it holds."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.variables: dict[str, bool] = {}  # name -> has a default
        self.outputs: set[str] = set()
        self.locals: set[str] = set()
        self.modules: dict[str, dict] = {}
        self.resources: set[str] = set()
        self.expressions: list[str] = []
        for path in sorted(folder.glob("*.tf")):
            with path.open() as f:
                parsed = hcl2.load(f)
            for block in parsed.get("variable", []):
                for name, body in block.items():
                    self.variables[name] = "default" in body
            for block in parsed.get("output", []):
                self.outputs.update(block)
            for block in parsed.get("locals", []):
                self.locals.update(block)
            for block in parsed.get("module", []):
                self.modules.update(block)
            for block in parsed.get("resource", []):
                for kind, named in block.items():
                    self.resources.update(f"{kind}.{name}" for name in named)
            self.expressions.extend(strings(parsed))


def strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def references(config: Config, prefix: str) -> set[str]:
    """Names after `prefix.` inside interpolations, such as var.region -> region."""
    found = set()
    for text in config.expressions:
        for expression in re.findall(r"\$\{(.*?)\}", text):
            found.update(re.findall(rf"(?<![\w.]){prefix}\.([A-Za-z_][\w-]*)", expression))
    return found


@pytest.fixture(scope="module", params=CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def config(request) -> Config:
    return Config(request.param)


def test_every_variable_and_local_used_is_declared(config):
    assert references(config, "var") <= set(config.variables), config.folder
    assert references(config, "local") <= config.locals, config.folder


def test_every_resource_referenced_is_declared(config):
    used = set()
    for text in config.expressions:
        for expression in re.findall(r"\$\{(.*?)\}", text):
            used.update(
                f"{kind}.{name}"
                for kind, name in re.findall(r"(?<![\w.])(google_[a-z_]+)\.([a-z_]+)", expression)
            )
    assert used <= config.resources, config.folder


def test_module_calls_match_their_modules(config):
    for name, call in config.modules.items():
        target = Config((config.folder / call["source"]).resolve())
        assert target.folder.is_dir(), (config.folder, call["source"])
        arguments = set(call) - META_ARGUMENTS
        assert arguments <= set(target.variables), (name, arguments - set(target.variables))
        required = {v for v, has_default in target.variables.items() if not has_default}
        assert required <= arguments, (name, required - arguments)
        for text in config.expressions:
            for output in re.findall(rf"module\.{name}\.([A-Za-z_]\w*)", text):
                assert output in target.outputs, (name, output)


def test_the_environments_hand_the_generated_ddl_to_the_stack():
    for env in ("dev", "prod"):
        config = Config(TERRAFORM / "environments" / env)
        ddl = config.modules["music_analytics"]["ddl_dir"].replace("${path.root}", str(config.folder))
        folder = Path(ddl).resolve()
        assert (folder / "tables.json").is_file() and (folder / "views.json").is_file(), folder


def test_the_references_are_really_found():
    stack = Config(TERRAFORM / "modules" / "music_analytics")
    assert {"project_id", "region", "protect"} <= references(stack, "var")
    assert "gke" in stack.modules and "bigquery" in stack.modules
