"""`geodefect review import`: reviewed images are matched by content, never by bare file name."""

from __future__ import annotations

import csv

from click.testing import CliRunner

from geodefect.cli.main import cli


def _dataset(root, contents: dict[str, bytes], labels: dict[str, int]):
    (root / "images").mkdir(parents=True)
    for name, data in contents.items():
        (root / "images" / name).write_bytes(data)
    _write_csv(root / "labels.csv", ["image", "label"], [[k, v] for k, v in labels.items()])
    return root


def _write_csv(path, header, rows):
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _review(root, rows):
    """review/review.csv + review/images/ for rows of (name, source_path, label)."""
    (root / "images").mkdir(parents=True)
    for name, src, _ in rows:
        (root / "images" / name).write_bytes(src.read_bytes())
    _write_csv(root / "review.csv", ["image", "source", "probability", "predicted", "label"],
               [[name, str(src), "0.5", "1", label] for name, src, label in rows])
    return root / "review.csv"


def _state(dataset):
    return {p.name: p.read_bytes() for p in sorted(dataset.rglob("*")) if p.is_file()}


def invoke(*args):
    return CliRunner().invoke(cli, ["review", "import", *map(str, args)])


def test_same_names_other_images_are_added_not_relabelled(tmp_path):
    """The data-loss bug: new pano_000.jpg relabelled the training set's pano_000.jpg."""
    train = _dataset(tmp_path / "panos", {"pano_000.jpg": b"old-0", "pano_001.jpg": b"old-1"},
                     {"pano_000.jpg": 0, "pano_001.jpg": 0})
    new = tmp_path / "new_panos"
    new.mkdir()
    (new / "pano_000.jpg").write_bytes(b"new-0")
    (new / "pano_001.jpg").write_bytes(b"old-1")  # the same image as the training one
    csv_path = _review(tmp_path / "scored" / "review", [("pano_000.jpg", new / "pano_000.jpg", "1"),
                                                        ("pano_001.jpg", new / "pano_001.jpg", "1")])
    res = invoke(csv_path, "--into", train)
    assert res.exit_code == 0, res.output
    assert "added 1, updated 1" in res.output
    with (train / "labels.csv").open() as f:
        labels = {r["image"]: r["label"] for r in csv.DictReader(f)}
    assert labels["pano_000.jpg"] == "0"  # the other image's label is untouched
    assert labels["pano_001.jpg"] == "1"  # same content: updated
    added = [k for k in labels if k not in ("pano_000.jpg", "pano_001.jpg")]
    assert len(added) == 1 and added[0].startswith("pano_000-") and labels[added[0]] == "1"
    assert (train / "images" / added[0]).read_bytes() == b"new-0"
    assert (train / "images" / "pano_000.jpg").read_bytes() == b"old-0"


def test_ambiguous_name_is_refused_and_nothing_changes(tmp_path):
    train = _dataset(tmp_path / "panos", {"a.jpg": b"a"}, {"a.jpg": 0})
    before = _state(train)
    review = tmp_path / "review"
    (review / "images").mkdir(parents=True)
    (review / "images" / "pano.jpg").write_bytes(b"x")
    _write_csv(review / "review.csv", ["image", "source", "probability", "predicted", "label"],
               [["pano.jpg", "/gone/1/pano.jpg", "0.5", "1", "1"], ["pano.jpg", "/gone/2/pano.jpg", "0.4", "0", "0"]])
    res = invoke(review / "review.csv", "--into", train)
    assert res.exit_code == 1 and "ambiguous" in res.output and "Traceback" not in res.output
    assert _state(train) == before


def test_malformed_csvs_are_one_line_errors(tmp_path):
    train = _dataset(tmp_path / "panos", {"a.jpg": b"a"}, {"a.jpg": 0})
    before = _state(train)
    bad = tmp_path / "review.csv"
    bad.write_text("img;lbl\na.jpg;1\n")
    res = invoke(bad, "--into", train)
    assert res.exit_code == 1 and "lacks column" in res.output and "Traceback" not in res.output
    (train / "labels.csv").write_text("file,class\na.jpg,0\n")  # the dataset's own CSV malformed
    before = _state(train)
    (tmp_path / "src.jpg").write_bytes(b"s")
    good = _review(tmp_path / "r", [("src.jpg", tmp_path / "src.jpg", "1")])
    res = invoke(good, "--into", train)
    assert res.exit_code == 1 and "labels.csv" in res.output and "Traceback" not in res.output
    assert _state(train) == before
