import hashlib

import pytest
import torch

from nas_impl.data import Vocabulary, batchify, get_batch, load_ptb
from nas_impl.errors import DataError


@pytest.fixture(scope="module")
def ptb(shared_data):
    return load_ptb(shared_data)


def test_real_ptb_counts(ptb):
    assert (len(ptb.train), len(ptb.valid), len(ptb.test)) == (929_589, 73_760, 82_430)
    assert len(ptb.vocab) == 10_000 and "<unk>" in ptb.vocab and "<eos>" in ptb.vocab
    assert ptb.train.dtype == torch.int64 and int(ptb.train.max()) == 9_999
    assert ptb.vocab.decode(ptb.train[:1]) == ["aer"]


def test_batchify_and_get_batch():
    tokens = torch.arange(23)
    data = batchify(tokens, 4)
    assert data.shape == (5, 4)  # 3 tokens dropped
    assert data[:, 1].tolist() == [5, 6, 7, 8, 9]  # each column is a contiguous stretch
    inputs, targets = get_batch(data, 0, 3)
    assert torch.equal(inputs, data[0:3]) and torch.equal(targets, data[1:4])
    inputs, targets = get_batch(data, 3, 3)  # last chunk is shorter
    assert inputs.shape == (1, 4) and torch.equal(targets, data[4:5])


def test_vocabulary():
    vocab = Vocabulary("a b a <eos> c".split())
    assert len(vocab) == 4 and vocab.word_to_id == {"a": 0, "b": 1, "<eos>": 2, "c": 3}
    assert vocab.encode(["c", "a"]).tolist() == [3, 0] and vocab.decode([1, 2]) == ["b", "<eos>"]


def write_ptb(folder, valid_text):
    folder.mkdir()
    texts = {"ptb.train.txt": " the cat sat \n the dog \n", "ptb.valid.txt": valid_text, "ptb.test.txt": " the cat \n"}
    for name, text in texts.items():
        (folder / name).write_text(text)
    return {name: hashlib.md5(text.encode()).hexdigest() for name, text in texts.items()}


def test_tiny_ptb_and_unknown_word(tmp_path):
    md5 = write_ptb(tmp_path / "ptb", " the dog sat \n")
    data = load_ptb(tmp_path, md5=md5)
    assert data.vocab.decode(data.train) == "the cat sat <eos> the dog <eos>".split()
    assert data.vocab.decode(data.valid) == "the dog sat <eos>".split()
    (tmp_path / "ptb" / "ptb.valid.txt").write_text(" the dog \n the bird \n")
    md5["ptb.valid.txt"] = hashlib.md5(b" the dog \n the bird \n").hexdigest()
    with pytest.raises(DataError, match=r"ptb.valid.txt line 2: word 'bird' does not occur in ptb.train.txt"):
        load_ptb(tmp_path, md5=md5)


def test_wrong_checksum_and_missing_file(tmp_path):
    write_ptb(tmp_path / "ptb", " the \n")
    with pytest.raises(DataError, match="ptb.train.txt: wrong md5 checksum: expected f26c4b92c5fdc7b3f8c7cdcb991d8420"):
        load_ptb(tmp_path)
    with pytest.raises(DataError, match=r"ptb.train.txt: file not found.*simple-examples"):
        load_ptb(tmp_path / "elsewhere")


def test_unreadable_ptb_files_are_named(tmp_path):
    md5 = write_ptb(tmp_path / "ptb", " the dog \n")
    train = tmp_path / "ptb" / "ptb.train.txt"
    train.unlink()
    train.mkdir()
    with pytest.raises(DataError, match=r"ptb\.train\.txt: is a folder, not a file\. Copy .* into .*/ptb/"):
        load_ptb(tmp_path, md5=md5)
    train.rmdir()
    train.write_bytes(b" the cat \xff sat \n")
    md5["ptb.train.txt"] = hashlib.md5(train.read_bytes()).hexdigest()
    with pytest.raises(DataError, match=r"ptb\.train\.txt: not UTF-8 text \(byte 0xff\)"):
        load_ptb(tmp_path, md5=md5)


def test_ptb_is_known_to_prepare_data_but_not_an_image_dataset():
    from nas_impl.data import dataset_info, load_dataset

    with pytest.raises(DataError, match=r"dataset 'ptb' \(Penn Treebank\) is text, not images"):
        load_dataset("ptb")
    with pytest.raises(DataError, match=r"dataset 'ptb' \(Penn Treebank\) is text"):
        dataset_info("ptb")
    with pytest.raises(DataError, match=r"unknown dataset 'penn'; known datasets: .*; text: ptb \(Penn Treebank\)"):
        load_dataset("penn")


# -- nasrepro prepare-data --dataset ptb ---------------------------------------------------------
def test_prepare_data_ptb_summarises_the_real_copy(shared_data, tmp_path, capsys):
    import json

    from nas_impl.cli import main

    out = tmp_path / "ptb.json"
    code = main(["prepare-data", "--dataset", "ptb", "--data-root", str(shared_data), "--out", str(out)])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert json.loads(out.read_text()) == summary
    # Mikolov's split: 887,521 / 70,390 / 78,669 words plus one <eos> per line (42,068 / 3,370 /
    # 3,761 lines) = 929,589 / 73,760 / 82,430 tokens; 10,000 word types including <eos>.
    assert summary["tokens"] == {"train": 929_589, "valid": 73_760, "test": 82_430}
    assert summary["vocab_size"] == 10_000 and summary["dataset"] == "ptb" and summary["verify_s"] >= 0
    assert not {"train_images", "input_size", "mean", "std", "num_classes"} & set(summary)


def test_prepare_data_ptb_without_the_files_is_one_line(tmp_path, capsys):
    from nas_impl.cli import main

    code = main(["prepare-data", "--dataset", "ptb", "--data-root", str(tmp_path)])
    _, stderr = capsys.readouterr()
    assert code == 2 and stderr.count("\n") == 1 and "Traceback" not in stderr
    assert stderr.startswith("nasrepro prepare-data: error: ") and str(tmp_path / "ptb" / "ptb.train.txt") in stderr
    assert f"into {tmp_path / 'ptb'}/" in stderr
