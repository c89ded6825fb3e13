import numpy as np
import pytest
from PIL import Image

from causaldiffae.evaluation.figures import image_grid, to_display


@pytest.mark.parametrize("channels, shape", [(1, (6, 5)), (2, (6, 5)), (3, (6, 5, 3)), (4, (6, 5, 3))])
def test_every_channel_count_the_loaders_accept_is_drawn(tmp_path, channels, shape):
    image = np.random.default_rng(channels).uniform(-1, 1, (channels, 6, 5))
    shown = to_display(image)
    assert shown.shape == shape
    np.testing.assert_allclose(shown[..., 0] if shown.ndim == 3 else shown, (image[0] + 1) / 2)  # colour kept, alpha dropped
    path = image_grid([[image, image]], tmp_path / f"grid{channels}.png", col_titles=["a", "b"])
    assert Image.open(path).size[0] > 20


def test_training_curves_skip_a_cut_line_and_wait_for_the_first_record(tmp_path):
    import json

    from causaldiffae.evaluation.figures import read_metrics, training_curves

    log = tmp_path / "metrics.jsonl"
    assert training_curves(log, tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()
    rows = [{"step": s, "loss": 1 / s, "mse": 0.9 / s, "kl_u": 0.1 * s, "kl_label": 0.5, "grad_norm": 2.0} for s in (10, 20, 30)]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 40, "loss": 0.')  # a killed run's last line
    assert [r["step"] for r in read_metrics(log)] == [10, 20, 30]
    import matplotlib

    before = matplotlib.get_backend()
    matplotlib.use("svg")  # a caller's own backend (a notebook's, say) is left as it was
    try:
        path = training_curves(log, tmp_path / "curves.png")
        assert Image.open(path).size[0] > 500 and matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)
