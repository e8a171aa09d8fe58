"""`geodefect explain` with a road model: a one-line refusal, nothing written (issue 17)."""

from __future__ import annotations

from click.testing import CliRunner

from geodefect.cli.main import cli


def test_explain_refuses_a_road_model(road_model, tiny_scene, tmp_path):
    out = tmp_path / "explain"
    result = CliRunner().invoke(cli, ["explain", str(road_model), str(tiny_scene.image), "--layer", "encoder",
                                      "-o", str(out)])
    assert result.exit_code == 1, result.output
    assert "explains crack and rail models" in result.output and "'roads'" in result.output
    assert "Traceback" not in result.output and not out.exists()
