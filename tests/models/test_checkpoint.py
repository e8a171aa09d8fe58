"""Reading a package's recipe maps the weights instead of reading them, and still reads
legacy (non-zip) torch files and rejects what is not a package."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from geodefect.errors import ModelPackageError
from geodefect.models.checkpoint import FORMAT, FORMAT_VERSION, _read, read_recipe

RECIPE = {"task": "roads", "model": {"name": "x"}}


def _package(path, **save_kwargs):
    obj = {"format": FORMAT, "format_version": FORMAT_VERSION, "recipe": RECIPE,
           "state_dict": {"w": torch.arange(6.0)}}
    torch.save(obj, path, **save_kwargs)
    return path


def test_the_recipe_comes_from_a_mapped_file_and_the_weights_from_a_read(tmp_path, monkeypatch):
    path = _package(tmp_path / "m.pt")
    calls = []
    load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("mmap"))
        return load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    assert read_recipe(path) == RECIPE and calls == [True]
    monkeypatch.undo()
    read = _read(path)["state_dict"]["w"]
    maps = Path("/proc/self/maps")
    if maps.exists():  # Linux: the plain read leaves no mapping of the file; the mapped one does
        assert str(path.resolve()) not in maps.read_text()
        mapped = _read(path, mmap=True)["state_dict"]["w"]
        assert str(path.resolve()) in maps.read_text()
        assert torch.equal(mapped, read)


def test_a_legacy_torch_file_and_garbage(tmp_path):
    legacy = _package(tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    assert read_recipe(legacy) == RECIPE  # mmap needs the zip format: falls back to a plain read
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 10)
    with pytest.raises(ModelPackageError, match="not a readable geodefect model package"):
        read_recipe(bad)
