from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from churnclv.plotting import plot_calibration, plot_gain, plot_importance, save


def test_plots_draw_on_given_axes_and_save(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=500)
    y = (rng.uniform(size=500) < p).astype(float)
    ax = Figure().add_subplot()
    assert plot_calibration({"m": (y, p)}, ax=ax) is ax
    assert len(ax.lines) == 2  # diagonal + model
    gain = plot_gain({"m": (y, p)})
    _, ys = gain.lines[1].get_data()
    assert ys[-1] == 1.0 and np.all(np.diff(ys) >= 0)
    imp = plot_importance({"a": 3.0, "b": 1.0, "c": 2.0}, top=2)
    assert [t.get_text() for t in imp.get_yticklabels()] == ["c", "a"]
    out = save(imp, tmp_path / "imp.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
