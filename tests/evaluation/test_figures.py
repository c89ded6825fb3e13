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
