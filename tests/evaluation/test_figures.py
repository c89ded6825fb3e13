import numpy as np
import pytest
from PIL import Image

from causaldiffae.evaluation.figures import image_grid, to_display


def _png_width(path) -> int:
    """The width of a PNG file (from its header, the file closed again)."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size[0]


@pytest.mark.parametrize("channels, shape", [(1, (6, 5)), (2, (6, 5)), (3, (6, 5, 3)), (4, (6, 5, 3))])
def test_every_channel_count_the_loaders_accept_is_drawn(tmp_path, channels, shape):
    image = np.random.default_rng(channels).uniform(-1, 1, (channels, 6, 5))
    shown = to_display(image)
    assert shown.shape == shape
    colour, alpha = (image[0] + 1) / 2, (image[-1] + 1) / 2 if channels in (2, 4) else 1.0
    np.testing.assert_allclose(shown[..., 0] if shown.ndim == 3 else shown, colour * alpha + (1 - alpha))  # over white
    path = image_grid([[image, image]], tmp_path / f"grid{channels}.png", col_titles=["a", "b"])
    assert _png_width(path) > 20


def test_training_curves_skip_a_cut_line_and_wait_for_the_first_record(tmp_path):
    import json

    from causaldiffae.evaluation.figures import read_metrics, training_curves

    log = tmp_path / "metrics.jsonl"
    assert training_curves(log, tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()
    rows = [{"step": s, "loss": 1 / s, "mse": 0.9 / s, "kl_u": 0.1 * s, "kl_label": 0.5, "grad_norm": 2.0} for s in (10, 20, 30)]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 40, "loss": 0.')  # a killed run's last line
    assert [r["step"] for r in read_metrics(log)] == [10, 20, 30]
    path = training_curves(log, tmp_path / "curves.png")
    assert _png_width(path) > 500


def test_figures_leave_the_callers_matplotlib_backend_and_figures_alone(tmp_path):
    """train() draws curves at every checkpoint, and evaluate() may run in a notebook."""
    import json

    import matplotlib

    from causaldiffae.evaluation.figures import latent_scatter, line_plot, training_curves

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        import matplotlib.pyplot as plt

        mine = plt.figure()
        (tmp_path / "m.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0, "mse": 1.0, "kl_u": 0.1, "kl_label": 0.1, "grad_norm": 1.0}) + "\n")
        rng = np.random.default_rng(0)
        paths = [
            training_curves(tmp_path / "m.jsonl", tmp_path / "c.png"),
            image_grid([[np.zeros((1, 4, 4))]], tmp_path / "g.png"),
            line_plot([1, 2], {"a": [0.1, 0.2]}, tmp_path / "l.png", xlabel="x", ylabel="y", baselines={"null": 0.3}),
            latent_scatter(rng.normal(size=(20, 4)), rng.normal(size=(20, 2)), ["a", "b"], tmp_path / "s.png"),
        ]
        assert all(_png_width(p) > 0 for p in paths)
        assert matplotlib.get_backend() == "svg" and plt.get_fignums() == [mine.number]
        plt.close(mine)
    finally:
        matplotlib.use(before)


def test_line_plots_label_each_point_by_its_value(tmp_path, monkeypatch):
    """A log axis of DDIM steps read 10^1, 2x10^1; composition's m read 1.5, 2.5."""
    from causaldiffae.evaluation import figures

    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.append(fig) or path)
    figures.line_plot([10, 20, 50, 100], {"a": [0.3, 0.2, 0.2, 0.1]}, tmp_path / "s.png", xlabel="steps", ylabel="MAE", logx=True)
    figures.line_plot([1, 2, 3], {"l1": [0.0, 0.0, 0.0]}, tmp_path / "c.png", xlabel="m", ylabel="L1")
    for fig, labels in zip(drawn, (["10", "20", "50", "100"], ["1", "2", "3"])):
        ax = fig.axes[0]
        assert [t.get_text() for t in ax.get_xticklabels()] == labels
        assert not ax.xaxis.get_minor_ticks() or not any(t.label1.get_text() for t in ax.xaxis.get_minor_ticks())


def test_transparency_is_shown_over_white():
    red = -np.ones((4, 2, 2))
    red[0] = 1.0  # red everywhere; alpha: opaque, half, transparent, opaque
    red[3] = np.array([[1.0, 0.0], [-1.0, 1.0]])
    shown = to_display(red)
    np.testing.assert_allclose(shown[0, 0], [1, 0, 0])
    np.testing.assert_allclose(shown[0, 1], [1, 0.5, 0.5])
    np.testing.assert_allclose(shown[1, 0], [1, 1, 1])


def test_resample_strips_draw_each_series_row_by_row_and_skip_missing_rows(tmp_path, monkeypatch):
    """A strip per criterion and series where there are resamples, spanning their 2.5-97.5% range; the bar at 1."""
    from causaldiffae.evaluation import figures

    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.append(fig) or path)
    rng = np.random.default_rng(0)
    model = [rng.normal(0.2, 0.01, 500), rng.normal(2.5, 0.1, 500)]
    truth = [rng.normal(0.05, 0.005, 500), None]
    figures.resample_strips(["first", "second"], {"model": model, "true counterfactual": truth}, tmp_path / "b.png", title="t")
    ax = drawn[0].axes[0]
    spans = [line.get_xdata() for line in ax.get_lines() if len(line.get_xdata()) == 2 and line.get_linewidth() == 1 and line.get_linestyle() == "-"]
    assert len(spans) == 3  # two model rows, one true-counterfactual row
    assert spans[1][0] == pytest.approx(np.percentile(model[1], 2.5)) and spans[1][1] == pytest.approx(np.percentile(model[1], 97.5))
    assert any(list(line.get_xdata()) == [1.0, 1.0] for line in ax.get_lines())  # the bar
    assert [t.get_text() for t in ax.get_yticklabels()] == ["first", "second"] and ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["model", "true counterfactual", "the bar (holds at or left of it)"]
    monkeypatch.undo()
    figures.resample_strips(["first"], {"model": [model[0]]}, tmp_path / "real.png")
    assert _png_width(tmp_path / "real.png") > 100


@pytest.mark.parametrize("low, majors", [(0.05, [0.05, 0.1, 0.2, 0.5, 1, 2]), (0.003, [0.01, 0.1, 1])])
def test_log_axes_label_1_2_5_per_decade_and_only_powers_of_ten_beyond_two_decades(low, majors):
    """Labels that fit: 1-2-5 over two decades or less; beyond, 0.005 and 0.01 would collide."""
    from matplotlib.figure import Figure

    from causaldiffae.evaluation.figures import _plain_log_ticks

    ax = Figure().subplots()
    ax.plot([low, 3.0], [0, 1])
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis)
    lo, hi = ax.get_xlim()
    shown = [v for v in ax.xaxis.get_major_locator().tick_values(lo, hi) if lo <= v <= hi]
    assert shown == pytest.approx(majors)
    assert ax.xaxis.get_major_formatter()(0.01, 0) == "0.01"  # plain numbers, not 10^-2


def test_a_grid_shows_every_image_at_its_place_with_its_titles(tmp_path, monkeypatch):
    """One picture of all cells (the demo's grids took 1-2 s each as one axes per cell)."""
    from causaldiffae.evaluation import figures

    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.append(fig) or path)
    rng = np.random.default_rng(0)
    rows = [[rng.uniform(-1, 1, (1, 32, 32)) for _ in range(3)], [rng.uniform(-1, 1, (1, 32, 32))]]  # the second row is short
    figures.image_grid(rows, tmp_path / "g.png", col_titles=["original", "thickness=2.5, intensity=120", "c"], row_titles=["r0", "r1"],
                       title="do(thickness)")
    (fig,) = drawn
    (ax,) = fig.axes
    (shown,) = ax.get_images()
    canvas = np.asarray(shown.get_array())
    gap = 2  # 32 // 16
    assert canvas.shape == (2 * 32 + gap, 3 * 32 + 2 * gap)
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            top, left = i * (32 + gap), j * (32 + gap)
            np.testing.assert_allclose(canvas[top : top + 32, left : left + 32], to_display(image))
    assert np.all(canvas[32 + gap :, 32 + gap :] == 1.0)  # no cell: white
    (frames,) = ax.collections
    assert len(frames.get_paths()) == 4  # a frame around each image, none around the missing cells
    texts = [t.get_text() for t in ax.texts]
    assert texts[0] == "original" and "intensity=120" in texts[1] and "\n" in texts[1]  # a long title wraps
    assert {"r0", "r1", "do(thickness)"} <= set(texts)
