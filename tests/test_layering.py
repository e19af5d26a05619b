"""Dependencies point one way, checked on the source (AST, imports inside functions included):
core <- adapters <- training / prior / reconstruct <- demo <- commands / CLI. Only ``hit_decoder.adapters``
imports ``taming``; the core imports neither adapters, training, the prior nor taming."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hit_decoder"

#: the core: decoder maths, configs, files, tiling, sampling maths
CORE = {"hit_decoder.config", "hit_decoder.layers", "hit_decoder.decoder", "hit_decoder.registry",
        "hit_decoder.serialization", "hit_decoder.tiling", "hit_decoder.sampling", "hit_decoder.configfile",
        "hit_decoder.fileio", "hit_decoder.metadata", "hit_decoder.flops", "hit_decoder.images",
        "hit_decoder.checkpoints", "hit_decoder.targets"}
#: what the core must not import (nor anything below these names)
NOT_FROM_CORE = ("hit_decoder.adapters", "hit_decoder.training", "hit_decoder.prior", "hit_decoder.commands", "hit_decoder.demo",
                 "hit_decoder.cli", "hit_decoder.reconstruct", "hit_decoder.runs", "taming", "pytorch_lightning",
                 "lightning")
#: what the adapters must not import
NOT_FROM_ADAPTERS = ("hit_decoder.training", "hit_decoder.prior", "hit_decoder.commands", "hit_decoder.cli",
                     "hit_decoder.reconstruct", "hit_decoder.demo")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports, at any depth of its code."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)  # `from . import adapters` imports a module
    return out


def _modules() -> dict[str, set[str]]:
    return {_module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def _hits(imported: set[str], banned: tuple[str, ...]) -> list[str]:
    return sorted(m for m in imported if any(m == b or m.startswith(b + ".") for b in banned))


def test_the_walker_sees_relative_and_nested_imports():
    found = imports_of(PACKAGE / "training" / "module.py")
    assert "hit_decoder.adapters" in found  # `from .. import adapters` inside a function
    assert "hit_decoder.training.config" in found


def test_only_the_adapters_import_taming():
    wrong = {m: _hits(imps, ("taming",)) for m, imps in _modules().items() if not m.startswith("hit_decoder.adapters")}
    assert not {m: h for m, h in wrong.items() if h}, "taming imported outside hit_decoder.adapters"


@pytest.mark.parametrize("module", sorted(CORE))
def test_core_imports_nothing_above_it(module):
    modules = _modules()
    assert module in modules, f"{module} is listed as core but does not exist"
    assert _hits(modules[module], NOT_FROM_CORE) == []


def test_adapters_do_not_import_training_prior_or_commands():
    wrong = {m: _hits(i, NOT_FROM_ADAPTERS) for m, i in _modules().items() if m.startswith("hit_decoder.adapters")}
    assert not {m: h for m, h in wrong.items() if h}


def test_only_the_cli_imports_commands():
    wrong = {m: _hits(i, ("hit_decoder.commands",)) for m, i in _modules().items()
             if not (m == "hit_decoder.cli" or m.startswith("hit_decoder.commands"))}
    assert not {m: h for m, h in wrong.items() if h}


def test_only_the_commands_import_the_demo():
    wrong = {m: _hits(i, ("hit_decoder.demo",)) for m, i in _modules().items()
             if not (m.startswith("hit_decoder.commands") or m.startswith("hit_decoder.demo"))}
    assert not {m: h for m, h in wrong.items() if h}


def test_the_shared_run_level_does_not_import_training_or_the_prior():
    """``runs`` and ``common/`` sit below stage-1 training and the prior, which both use them."""
    above = ("hit_decoder.training", "hit_decoder.prior", "hit_decoder.reconstruct", "hit_decoder.demo",
             "hit_decoder.commands", "hit_decoder.cli")
    wrong = {m: _hits(i, above) for m, i in _modules().items()
             if m == "hit_decoder.runs" or m.startswith("hit_decoder.common")}
    assert not {m: h for m, h in wrong.items() if h}


def test_benchmark_helpers_are_not_in_the_package():
    assert not (PACKAGE / "benchmarking.py").exists()
    assert not any("benchmarking" in i for imps in _modules().values() for i in imps)


def test_every_subpackage_ships_in_the_wheel(pyproject):
    listed = set(pyproject["tool"]["setuptools"]["packages"])
    found = {_module_name(p) for p in PACKAGE.rglob("__init__.py")}
    assert listed == found, "pyproject.toml [tool.setuptools] packages must list every package under hit_decoder/"


def test_checkpoint_target_and_run_helpers_do_not_import_taming_or_lightning(tmp_path):
    """Reading a checkpoint safely, checking config targets and resolving a resume file are plain
    torch / strings: in a fresh interpreter they leave taming and Lightning unimported."""
    import subprocess
    import sys

    code = f"""
import sys, types, torch
from hit_decoder.checkpoints import load_checkpoint_state, read_checkpoint
from hit_decoder.targets import check_targets
from hit_decoder.runs import prepare_out_dir, resolve_resume
path = {str(tmp_path / "last.ckpt")!r}
torch.save({{"state_dict": {{"encoder.w": torch.ones(2)}}, "global_step": 3}}, path)
assert read_checkpoint(path).payload["global_step"] == 3
assert list(load_checkpoint_state(path)) == ["encoder.w"]
check_targets({{"target": "taming.models.vqgan.VQModel", "params": {{}}}}, "model")
assert str(resolve_resume(types.SimpleNamespace(resume=path, out_dir={str(tmp_path)!r}))) == path
print(sorted(m for m in sys.modules if m.split(".")[0] in ("taming", "pytorch_lightning", "lightning", "lightning_fabric")))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]", res.stdout


def test_the_shared_run_level_sits_below_training_and_prior():
    """``hit_decoder.common`` (data, metrics, seeding, checkpoints) is what training, the prior,
    reconstruction and the demo share: it imports none of them, nor taming."""
    wrong = {m: _hits(i, ("hit_decoder.training", "hit_decoder.prior", "hit_decoder.demo", "hit_decoder.commands",
                          "hit_decoder.cli", "hit_decoder.reconstruct", "hit_decoder.adapters", "taming"))
             for m, i in _modules().items() if m.startswith("hit_decoder.common")}
    assert not {m: h for m, h in wrong.items() if h}


def test_prior_and_reconstruction_use_no_stage_one_internals():
    """A change to the stage-1 trainer cannot break the prior or reconstruction: from ``training``
    they use only the public config loader and model builder (the prior's untrained first stage is
    a stage-1 model by design)."""
    allowed = {"hit_decoder.training", "hit_decoder.training.load_train_config", "hit_decoder.training.models",
               "hit_decoder.training.models.build_models"}
    wrong = {m: sorted(set(_hits(i, ("hit_decoder.training",))) - allowed) for m, i in _modules().items()
             if m.startswith("hit_decoder.prior") or m == "hit_decoder.reconstruct"}
    assert not {m: h for m, h in wrong.items() if h}
