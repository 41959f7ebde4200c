"""Workflow jobs that only read YAML and tables start in a fraction of a second: they must not
import torch (about 2-5 s of every such job) or, for tables, matplotlib."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
from nas_impl.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in ("torch", "matplotlib", "torchvision") if m in sys.modules)
print("HEAVY=" + json.dumps(heavy), file=sys.stderr)
sys.exit(code)
"""


def imported_heavy(args: list[str], cwd: Path) -> list[str]:
    result = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stderr.rsplit("HEAVY=", 1)[1])


@pytest.mark.parametrize("args", [
    ["recipe", "--replication", "replications/baselines", "--name", "cifar", "--scale", "smoke"],
    ["recipe", "--replication", "replications/tas", "--search", "tas-C010-ResNet20", "--scale", "smoke"],
    ["recipe", "--replication", "replications/autoslim", "--search", "autoslim-MBv2x0.35-C10", "--scale", "smoke",
     "--set", "epochs=1"],
], ids=["training-recipe", "tas-search-recipe", "autoslim-search-recipe"])
def test_recipe_verbs_do_not_import_torch(tmp_path, args):
    assert imported_heavy([*args, "--out", str(tmp_path / "recipe.yaml")], REPO) == []
    assert (tmp_path / "recipe.yaml").is_file()


def test_compare_and_regress_do_not_import_torch_or_matplotlib(tmp_path):
    results = tmp_path / "smoke" / "baselines"
    compare = ["compare", "--replication", str(REPO / "replications/baselines"), "--results", str(results),
               "--scale", "smoke", "--table", "cifar10-resnets", "--out-dir", str(results / "tables")]
    assert imported_heavy(compare, REPO) == []
    reference = tmp_path / "reference"
    (reference / "baselines" / "tables").mkdir(parents=True)
    table = (results / "tables" / "cifar10-resnets.csv").read_text()
    (reference / "baselines" / "tables" / "cifar10-resnets.csv").write_text(table)
    assert imported_heavy(["regress", str(tmp_path / "smoke"), str(reference)], REPO) == []
