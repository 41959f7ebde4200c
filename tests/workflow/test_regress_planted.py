"""Planted regressions are caught by `nasrepro regress` against the committed smoke reference
(results/reference/smoke), and the unplanted chain is not flagged: the check is sensitive to what
is a regression and robust to what is not."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from nas_impl.cli import main
from nas_impl.replication import load_replication

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "results/reference/smoke"
TABLE = "baselines/tables/cifar10-resnets.csv"


def cli(*argv: str) -> None:
    assert main([str(a) for a in argv]) == 0


def regress_lines(results: Path, reference: Path, capsys) -> list[str]:
    capsys.readouterr()
    code = main(["regress", str(results), str(reference)])
    err = capsys.readouterr().err
    return [] if code == 0 else [line.strip() for line in err.splitlines()[1:]]


def reference_of(tmp_path: Path, table: str = TABLE) -> Path:
    """The committed reference, narrowed to one table (the others are not rerun here)."""
    out = tmp_path / "reference"
    (out / Path(table).parent).mkdir(parents=True)
    shutil.copy(REFERENCE / table, out / table)
    return out


def arch_and_tables(replication: Path, results: Path) -> None:
    rep = load_replication(replication)
    reference = [e for e in rep.experiments_at("smoke") if rep.experiments[e].search is None]
    cli("archs", "--replication", replication, "--results", results / "baselines", "--experiment", *reference,
        "--seed", "0")
    cli("compare", "--replication", replication, "--results", results / "baselines", "--scale", "smoke",
        "--table", "cifar10-resnets", "--out-dir", results / "baselines/tables")


def test_a_changed_mac_count_is_caught_and_only_where_it_changed(tmp_path, capsys):
    replication = tmp_path / "replications/baselines"
    shutil.copytree(REPO / "replications/baselines", replication)
    spec = replication / "archs/resnet20-cifar.yaml"
    spec.write_text(yaml.safe_dump({**yaml.safe_load(spec.read_text()), "base_width": 17}))
    arch_and_tables(replication, tmp_path / "results")
    lines = regress_lines(tmp_path / "results", reference_of(tmp_path), capsys)
    macs = [line for line in lines if line.split(":")[0].endswith((" macs", " params"))]
    assert macs and all("ResNet-20 " in line for line in macs), lines
    assert any(line.startswith(f"{TABLE} ResNet-20 macs: ") for line in macs)
