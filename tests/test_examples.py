"""The gallery examples run (so they never rot) and show what they claim."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture()
def run_example(tmp_path, monkeypatch):
    monkeypatch.setenv("GEODEFECT_EXAMPLES_OUT", str(tmp_path))

    def run(name: str) -> dict:
        return runpy.run_path(str(EXAMPLES / name), run_name="__main__")

    return run


def test_tiling_grid_covers_every_pixel_and_filters_by_aoi(run_example, tmp_path):
    g = run_example("plot_tiling_grid.py")
    assert g["coverage"].min() >= 1
    assert 0 < len(g["inside"]) < len(g["windows"])
    assert (tmp_path / "tiling_grid.png").stat().st_size > 10_000


def test_vectorize_mask_recovers_the_road_length(run_example, tmp_path):
    g = run_example("plot_vectorize_mask.py")
    assert g["network"].n_edges > 0
    # skeleton length within 20% of the true centerline length (junction geometry differs)
    assert g["network"].total_length_m / 1000 == pytest.approx(g["truth_km"], rel=0.2)
    assert (tmp_path / "vectorize_mask.png").exists()


def test_hann_blend_removes_the_seams_that_mean_shows(run_example):
    g = run_example("plot_sliding_blend.py")
    assert g["results"]["hann"] < 0.5 * g["results"]["mean"]


# ----------------------------------------------------------------------------- README examples
# Every command of the README's ```bash blocks runs as written, in order, in a fresh folder
# (issue 17). The fast ones (synth, chip, the labelling snippet) run in the default suite; the
# whole sequence, training included, is marked slow. Not run: `make` (the targets wrap these
# commands), `torchrun` (several processes) and the QGIS render (needs the system PyQGIS).

README = EXAMPLES.parent / "README.md"
NOT_RUN = ("make ", "torchrun ", "QT_QPA_PLATFORM=")
FAST_VERBS = ("synth", "chip")


def readme_blocks(lang: str) -> list[tuple[int, str]]:
    """(first line number, text) of each fenced block of ``lang`` in the README."""
    blocks, current, start = [], None, 0
    for n, line in enumerate(README.read_text().splitlines(), start=1):
        if line.startswith("```"):
            if current is None and line.strip() == f"```{lang}":
                current, start = [], n + 1
            elif current is not None:
                blocks.append((start, "\n".join(current)))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def readme_commands() -> list[tuple[int, list[str]]]:
    """(line number, argv) of every README shell command, continuation lines joined, comments cut."""
    import shlex

    commands = []
    for start, text in readme_blocks("bash"):
        joined = text.replace("\\\n", " ")
        for offset, line in enumerate(joined.splitlines()):
            argv = shlex.split(line, comments=True)
            if argv:
                commands.append((start + offset, argv))
    return commands


def _runnable(argv: list[str]) -> bool:
    return not " ".join(argv).startswith(NOT_RUN) and argv[0] == "geodefect"


def _output(argv: list[str]) -> str | None:
    for flag in ("-o", "--out-dir"):
        if flag in argv:
            return argv[argv.index(flag) + 1]
    if len(argv) > 3 and argv[:2] == ["geodefect", "synth"] and not argv[3].startswith("-"):
        return argv[3]
    return None


def test_readme_commands_never_write_the_same_output_twice():
    """A second command writing the same folder is refused (unless it resumes or overwrites)."""
    seen: dict[str, int] = {}
    for line, argv in readme_commands():
        out = _output(argv)
        if out is None or "--resume" in argv:
            continue
        assert out not in seen or "--overwrite" in argv, f"README line {line} writes {out!r} again (line {seen[out]})"
        seen[out] = line


def test_readme_python_snippets_define_every_name():
    """The snippets run as written: no name used that they do not import or assign."""
    import builtins
    import symtable

    for line, code in readme_blocks("python"):
        table = symtable.symtable(code, f"README:{line}", "exec")
        free = [s.get_name() for s in table.get_symbols()
                if s.is_referenced() and not (s.is_assigned() or s.is_imported())
                and not hasattr(builtins, s.get_name())]
        assert not free, f"README line {line}: undefined {free}"


def _dataset_absent(argv: list[str]) -> bool:
    if "--dataset" not in argv:
        return False
    from geodefect.catalog import get_dataset

    names = argv[argv.index("--dataset") + 1].split(",")  # several datasets: a,b,c
    return any(not get_dataset(name.strip()).root.exists() for name in names)


def _run_readme(tmp_path, monkeypatch, *, fast_only: bool) -> list[int]:
    import glob

    from click.testing import CliRunner

    from geodefect.cli.main import cli

    (tmp_path / "examples").symlink_to(EXAMPLES)  # the commands name the repository's examples/
    monkeypatch.chdir(tmp_path)
    ran = []
    for line, argv in readme_commands():
        if not _runnable(argv) or fast_only and argv[1] not in FAST_VERBS or _dataset_absent(argv):
            continue
        args = [m for a in argv[1:] for m in (sorted(glob.glob(a)) or [a] if any(c in a for c in "*?[") else [a])]
        result = CliRunner().invoke(cli, [*args, "-q"] if args[0] != "synth" else args)
        assert result.exit_code == 0, f"README line {line}: {' '.join(argv)}\n{result.output}"
        ran.append(line)
    for line, code in readme_blocks("python"):
        if not fast_only or "out_roads" not in code:
            exec(compile(code, f"README:{line}", "exec"), {})
            ran.append(line)
    return ran


def test_readme_fast_commands_run_in_order_in_a_fresh_folder(tmp_path, monkeypatch):
    ran = _run_readme(tmp_path, monkeypatch, fast_only=True)
    assert len(ran) >= 10
    assert (tmp_path / "chips" / "meta.json").is_file() and (tmp_path / "chips_rail" / "meta.json").is_file()


@pytest.mark.slow
def test_readme_every_command_runs_in_order_in_a_fresh_folder(tmp_path, monkeypatch):
    ran = _run_readme(tmp_path, monkeypatch, fast_only=False)
    assert (tmp_path / "runs" / "roads" / "model.pt").is_file() and (tmp_path / "out_roads" / "roads.gpkg").is_file()
    assert len(ran) >= 35
