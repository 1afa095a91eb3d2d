"""The spec's figures: drawn from the reference by scripts/make_figures.py, committed, linked, and never stale."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIGURES_DIR = ROOT / "spec" / "docs" / "figures"


def _load_script() -> ModuleType:
    location = importlib.util.spec_from_file_location("make_figures", ROOT / "scripts" / "make_figures.py")
    assert location is not None and location.loader is not None
    module = importlib.util.module_from_spec(location)
    location.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def figures() -> ModuleType:
    return _load_script()


@pytest.fixture(scope="module")
def fresh(figures: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("figures")
    figures.render(out)
    return out


def test_committed_figures_are_what_the_reference_draws_now(figures: ModuleType, fresh: Path) -> None:
    committed = json.loads((FIGURES_DIR / figures.MANIFEST).read_text())
    import matplotlib

    # The same matplotlib draws identical pixels; another one may antialias text a little differently.
    tolerance = 0.0 if committed["matplotlib"] == matplotlib.__version__ else 2.0
    problems = figures.differences(FIGURES_DIR, fresh, tolerance=tolerance)
    assert not problems, "stale figures (redraw with `python scripts/make_figures.py`):\n" + "\n".join(problems)
    assert committed["figures"] == sorted(figures.FIGURES)


def test_a_changed_figure_is_reported_stale(figures: ModuleType, fresh: Path, tmp_path: Path) -> None:
    import matplotlib.image as image

    shutil.copytree(fresh, tmp_path / "old")
    # A label of a few pixels, as a changed number would be.
    path = tmp_path / "old" / "ceil_mode.png"
    pixels = image.imread(path)
    pixels[100:108, 200:206, :3] = 0.0
    image.imsave(path, pixels)
    problems = figures.differences(tmp_path / "old", fresh)
    assert len(problems) == 1 and problems[0].startswith("ceil_mode.png: 48 pixels differ")
    (tmp_path / "old" / "groups.png").unlink()
    assert "groups.png: not committed" in figures.differences(tmp_path / "old", fresh)


def test_every_figure_is_linked_from_the_spec_documents(figures: ModuleType) -> None:
    docs = "\n".join(p.read_text() for p in (ROOT / "spec" / "docs").glob("*.md"))
    linked = set(re.findall(r"!\[[^\]]+\]\(figures/([\w.]+\.png)\)", docs))
    assert linked == set(figures.FIGURES)
    assert all((FIGURES_DIR / name).is_file() for name in linked)


def test_what_the_figures_draw_is_read_off_the_reference(figures: ModuleType) -> None:
    # Windows of a dilated kernel: k*k taps, `dilation` apart, moved by `stride`.
    taps = figures.conv_taps((9, 9), (3, 3), (0, 1), stride=2, dilation=2)
    assert taps == [(r, c) for r in (0, 2, 4) for c in (2, 4, 6)]
    # Ceil mode's extra window: its divisor counts the padding (count_include_pad) but never the overhang.
    with_pad = figures.avg_pool_windows(6, 3, 2, 1, ceil_mode=True, count_include_pad=True)
    without = figures.avg_pool_windows(6, 3, 2, 1, ceil_mode=True, count_include_pad=False)
    assert [d for _, d in with_pad] == [3, 3, 3, 2] and [d for _, d in without] == [2, 3, 3, 1]
    assert with_pad[-1][0] == [5]
    # Groups: contiguous blocks.
    connected = figures.group_connections(6, 4, 2)
    assert connected.tolist() == [[True] * 3 + [False] * 3] * 2 + [[False] * 3 + [True] * 3] * 2
    assert np.array_equal(figures.group_connections(6, 6, 6), np.eye(6, dtype=bool))
    # The seed example's last window ends on the last row and column.
    last = figures.conv_taps((28, 28), (4, 4), (12, 12), stride=2)
    assert max(last) == (27, 27) and min(last) == (24, 24)


def test_unknown_figure_name_is_a_one_line_usage_error(figures: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        figures.main(["nope.png"])
    assert exit_info.value.code == 2
    assert "unknown figure(s) nope.png" in capsys.readouterr().err
