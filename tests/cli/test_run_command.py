"""run_command: permission / full-disk OSErrors are one line naming the path; other errors are not hidden."""

from __future__ import annotations

import errno

import click
import pytest

from geodefect.cli.options import run_command


@pytest.mark.parametrize(("code", "words"), [(errno.EACCES, "permission denied"), (errno.EROFS, "read-only"),
                                             (errno.ENOSPC, "no space left"), (errno.EDQUOT, "quota")])
def test_output_errors_become_one_line(tmp_path, code, words):
    target = tmp_path / "out" / "road_prob.tif"

    def write():
        raise OSError(code, "os message", str(target))

    with pytest.raises(click.ClickException) as info:
        run_command(write)
    message = info.value.message
    assert "\n" not in message and str(target) in message and words in message
    assert info.value.exit_code == 1


def test_other_os_errors_are_not_swallowed():
    def broken():
        raise OSError(errno.EIO, "I/O error")

    with pytest.raises(OSError, match="I/O error"):
        run_command(broken)


def test_a_read_only_output_folder_through_the_cli(tmp_path, monkeypatch):
    """As root chmod does not bite; the writer is made to fail as a read-only mount would."""
    from click.testing import CliRunner

    from geodefect.cli.main import cli
    from geodefect.io import atomic

    def read_only(*a, dir=None, **k):
        raise OSError(errno.EROFS, "Read-only file system", str(dir))

    monkeypatch.setattr(atomic.tempfile, "mkdtemp", read_only)  # the output folder cannot be made
    out = tmp_path / "damage"
    res = CliRunner().invoke(cli, ["synth", "damage", str(out), "--n-images", "1", "--countries", "A"])
    assert res.exit_code == 1 and "read-only" in res.output and "Traceback" not in res.output, res.output
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
