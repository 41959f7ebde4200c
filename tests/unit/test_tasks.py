"""The two tasks: image classification (its evaluation equals a plain top-k count) and language
modelling (token windows, perplexity from the summed NLL, LSTM MACs counted analytically)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from nas_impl.data.ptb import batchify
from nas_impl.metrics import count_macs
from nas_impl.models import build_model, natural_input
from nas_impl.tasks import TASKS, get_task, task_for_dataset, task_of
from nas_impl.tasks.language import TokenWindows


def test_datasets_and_models_name_their_task():
    assert task_for_dataset("ptb").name == "language-modelling"
    assert task_for_dataset("cifar10").name == task_for_dataset("fashion-mnist").name == "image-classification"
    assert task_of(build_model("lstm-lm-small")).name == "language-modelling"
    assert task_of(build_model("resnet20-cifar")).name == "image-classification"


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_logs_its_headline(name):
    task = get_task(name)
    assert f"{task.monitor_split}_{task.headline}" in task.log_columns()
    assert task.best([3.0, 1.0, 2.0]) == (3.0 if task.higher_is_better else 1.0)


def test_image_evaluation_counts_top1_and_top5_by_hand():
    torch.manual_seed(0)
    logits = torch.randn(37, 7)
    labels = torch.randint(0, 7, (37,))
    model = nn.Identity()
    loader = [(logits[:20], labels[:20]), (logits[20:], labels[20:])]
    out = get_task("image-classification").evaluate(model, loader, torch.device("cpu"), bf16=False)
    ranks = [(logits[i] > logits[i, labels[i]]).sum().item() for i in range(37)]
    assert out["top1"] == pytest.approx(100 * sum(r == 0 for r in ranks) / 37)
    assert out["top5"] == pytest.approx(100 * sum(r < 5 for r in ranks) / 37)
    nll = -torch.log_softmax(logits.double(), 1)[torch.arange(37), labels].mean().item()
    assert out["loss"] == pytest.approx(nll) and out["n"] == 37


def test_token_windows_cover_the_stream_with_targets_shifted_by_one():
    tokens = torch.arange(103)
    windows = TokenWindows(tokens, batch_size=4, bptt=6)
    pairs = list(windows)
    assert len(pairs) == len(windows) == math.ceil((103 // 4 - 1) / 6)
    columns = batchify(tokens, 4)
    xs = torch.cat([x for x, _ in pairs], dim=1)
    ys = torch.cat([y for _, y in pairs], dim=1)
    assert torch.equal(xs, columns[:-1].t()) and torch.equal(ys, columns[1:].t())
    assert all(x.shape[0] == 4 for x, _ in pairs)


def test_perplexity_is_the_exponent_of_the_mean_token_nll_with_state_carried():
    torch.manual_seed(0)
    model = build_model({"family": "lstm-lm", "vocab_size": 50, "embedding_dim": 8, "hidden_dim": 8, "layers": 1})
    tokens = torch.randint(0, 50, (121,))
    out = get_task("language-modelling").evaluate(model, TokenWindows(tokens, 3, 5), torch.device("cpu"), bf16=False)
    # the same by hand: one pass over the whole column stream (state carried = no windows at all)
    columns = batchify(tokens, 3).t()
    with torch.no_grad():
        logits, _ = model(columns[:, :-1])
    nll = nn.functional.cross_entropy(logits.reshape(-1, 50).double(), columns[:, 1:].reshape(-1))
    assert out["n"] == columns[:, 1:].numel()
    assert out["ppl"] == pytest.approx(math.exp(nll.item()), rel=1e-5)


def test_lstm_lm_macs_count_every_gate_and_the_decoder():
    spec = {"family": "lstm-lm", "vocab_size": 1000, "embedding_dim": 30, "hidden_dim": 40, "layers": 2, "seq_len": 7}
    assert natural_input(spec) == (7,)
    per_token = 4 * 40 * (30 + 40) + 4 * 40 * (40 + 40) + 40 * 1000  # two LSTM layers' gates + decoder
    assert count_macs(build_model(spec), natural_input(spec)) == 7 * per_token


def test_tied_weights_share_the_embedding():
    model = build_model({"family": "lstm-lm", "vocab_size": 100, "embedding_dim": 16, "hidden_dim": 16,
                         "tie_weights": True})
    assert model.decoder.weight is model.embedding.weight
    with pytest.raises(Exception, match="tie_weights"):
        build_model({"family": "lstm-lm", "embedding_dim": 16, "hidden_dim": 32, "tie_weights": True})


# ---------------------------------------------------------------- a language model through the verbs

LM_SPEC = {"family": "lstm-lm", "vocab_size": 10_000, "embedding_dim": 16, "hidden_dim": 16, "layers": 1, "seq_len": 20}
LM_RECIPE = {"epochs": 2, "batch_size": 16, "eval_batch_size": 16, "optimizer": "adam", "lr": 3e-3,
             "weight_decay": 0.0, "schedule": "constant", "grad_clip": 0.25, "train_subset": 24_000,
             "test_subset": 4_000}


def _lm_files(tmp_path):
    import yaml

    arch, recipe = tmp_path / "lm.yaml", tmp_path / "recipe.yaml"
    arch.write_text(yaml.safe_dump(LM_SPEC))
    recipe.write_text(yaml.safe_dump(LM_RECIPE))
    return arch, recipe


def test_a_language_model_trains_resumes_and_evaluates_on_penn_treebank(tmp_path, shared_data, capsys):
    import csv
    import json

    from nas_impl.cli import main

    arch, recipe = _lm_files(tmp_path)
    common = ["train", "--arch", str(arch), "--recipe", str(recipe), "--dataset", "ptb", "--data-root",
              str(shared_data), "--device", "cpu"]
    assert main([*common, "--out", str(tmp_path / "whole")]) == 0, capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "parts"), "--stop-after", "1"]) == 0
    assert main([*common, "--out", str(tmp_path / "parts"), "--resume"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    whole, parts = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("whole", "parts"))
    assert whole["ppl"] == parts["ppl"]  # interrupted and resumed == uninterrupted
    rows = list(csv.DictReader((tmp_path / "whole" / "train_log.csv").open()))
    assert {"train_ppl", "valid_ppl", "tokens_per_s"} <= set(rows[0])  # training monitors the validation split
    first, last = float(rows[0]["valid_ppl"]), float(rows[-1]["valid_ppl"])
    assert max(first, last) < 2_000  # it learned: a uniform guess over the vocabulary scores 10,000
    assert whole["best_ppl"] == min(float(r["valid_ppl"]) for r in rows) and whole["split"] == "valid"
    assert whole["architecture"]["macs"] == 20 * (4 * 16 * (16 + 16) + 16 * 10_000)
    assert whole["record"]["train_tokens"] == 24_000
    code = main(["evaluate", "--checkpoint", str(tmp_path / "whole" / "checkpoint.pt"), "--data-root",
                 str(shared_data), "--device", "cpu", "--split", "valid"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["ppl"] == pytest.approx(last) and out["tokens"] == 4_000 // 16 * 16 - 16
    assert math.exp(out["loss"]) == pytest.approx(out["ppl"])


def test_a_language_model_refuses_an_image_dataset_and_the_reverse(tmp_path, capsys):
    from nas_impl.cli import main

    arch, recipe = _lm_files(tmp_path)
    assert main(["train", "--arch", str(arch), "--recipe", str(recipe), "--dataset", "fashion-mnist",
                 "--out", str(tmp_path / "o"), "--device", "cpu"]) == 2
    assert "family 'lstm-lm' is a language-modelling network" in capsys.readouterr().err
    assert main(["train", "--arch", "resnet20-cifar", "--recipe", str(recipe), "--dataset", "ptb",
                 "--out", str(tmp_path / "o"), "--device", "cpu"]) == 2
    assert "is a image-classification network, but dataset 'ptb'" in capsys.readouterr().err


def test_a_language_model_experiment_goes_through_archs_and_compare(tmp_path, capsys):
    """A replication with a Penn Treebank experiment: `archs` fits the spec to the vocabulary and
    counts it on its token window; `compare` judges a ppl row from eval.json."""
    import csv
    import json

    import yaml

    from nas_impl.cli import main

    root = tmp_path / "lm"
    (root / "archs").mkdir(parents=True)
    (root / "archs/lstm.yaml").write_text(yaml.safe_dump({"family": "lstm-lm", "vocab_size": 50, "seq_len": 35}))
    (root / "published.csv").write_text("table,dataset,model,metric,value,unit,source,note\n"
                                        "t,ptb,LSTM,ppl,114.5,count,a toy row for this test,\n")
    manifest = {"title": "toy LM", "datasets": {"ptb": {"smoke": "ptb", "reduced": "ptb", "paper": "ptb"}},
                "accuracy_scales": ["smoke"], "tolerances": {"accuracy": 1.0},
                "recipes": {"r": {"smoke": {"epochs": 1}, "reduced": {"epochs": 1}, "paper": {"epochs": 1}}},
                "experiments": {"lstm": {"arch": "lstm", "dataset": "ptb", "recipe": "r",
                                         "claims": [{"table": "t", "model": "LSTM"}]}}}
    (root / "replication.yaml").write_text(yaml.safe_dump(manifest))
    results = tmp_path / "results"
    assert main(["archs", "--replication", str(root), "--results", str(results), "--experiment", "lstm",
                 "--seed", "0"]) == 0, capsys.readouterr().err
    run = results / "lstm/seed0"
    spec = yaml.safe_load((run / "arch.yaml").read_text())
    assert spec["vocab_size"] == 10_000  # fitted to Penn Treebank's vocabulary
    measured = json.loads((run / "arch_metrics.json").read_text())
    assert measured["input_size"] == [35] and measured["macs"] == 35 * (2 * 4 * 200 * 400 + 200 * 10_000)
    (run / "eval.json").write_text(json.dumps({"ppl": 115.0, "loss": math.log(115.0), "dataset": "ptb"}))
    capsys.readouterr()
    assert main(["compare", "--replication", str(root), "--results", str(results), "--scale", "smoke",
                 "--out-dir", str(tmp_path / "tables")]) == 0, capsys.readouterr().err
    row = next(csv.DictReader((tmp_path / "tables/t.csv").open()))
    assert (row["paper"], row["metric"], float(row["reproduced_mean"])) == ("lm", "ppl", 115.0)
    assert row["verdict"] == "reproduced"  # |115.0 - 114.5| within the 1.0 tolerance
