import numpy as np
import pytest

from causaldiffae.data import DataError
from causaldiffae.data.base import CausalImageDataset
from causaldiffae.graph import CausalGraph

GRAPH = CausalGraph.parse("a -> b")


def dataset(n=3, mean=(0.0, 1.0), std=(1.0, 2.0)) -> CausalImageDataset:
    return CausalImageDataset(np.zeros((n, 4, 4), np.uint8), np.zeros((n, 2)), GRAPH, np.array(mean), np.array(std), name="toy", split="test")


def test_a_split_without_images_is_refused():
    assert len(dataset(3)) == 3
    with pytest.raises(DataError, match="toy/test: the split has no images"):
        dataset(0)


@pytest.mark.parametrize("mean, std", [((np.nan, 1.0), (1.0, 2.0)), ((0.0, 1.0), (np.inf, 2.0)), ((0.0,), (1.0,))])
def test_train_statistics_that_are_not_finite_are_refused(mean, std):
    """A NaN train label would otherwise standardise every other split to NaN."""
    with pytest.raises(DataError, match=r"toy/test: the train split's label mean / std are not 2 finite values"):
        dataset(mean=mean, std=std)


@pytest.mark.parametrize("size, filter_name", [((40, 20), "BOX"), ((20, 40), "BOX"), ((12, 10), "BICUBIC"), ((12, 12), "BICUBIC")])
def test_resize_averages_areas_whenever_a_side_shrinks(size, filter_name):
    """One rule for every loader: a non-square image larger on either side is area-averaged, not
    sampled bicubically (which aliases thin strokes); only an image smaller on both sides is interpolated."""
    from PIL import Image

    from causaldiffae.data.base import resize, resize_images

    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0]), dtype=np.uint8)
    img = Image.fromarray(pixels)
    resized = np.asarray(resize(img, (16, 16)))
    box, bicubic = (np.asarray(img.resize((16, 16), f)) for f in (Image.Resampling.BOX, Image.Resampling.BICUBIC))
    assert not np.array_equal(box, bicubic)
    np.testing.assert_array_equal(resized, box if filter_name == "BOX" else bicubic)
    np.testing.assert_array_equal(resize_images(pixels[None, :, :, None], 16)[0, :, :, 0], resized)


def test_resize_leaves_an_image_of_the_size_alone():
    from PIL import Image

    from causaldiffae.data.base import resize

    img = Image.new("L", (16, 16))
    assert resize(img, (16, 16)) is img
