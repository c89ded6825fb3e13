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
def test_resize_square_averages_areas_whenever_a_side_shrinks(size, filter_name):
    """One rule for every loader: a non-square image larger on either side is area-averaged, not
    sampled bicubically (which aliases thin strokes); only an image smaller on both sides is interpolated."""
    from PIL import Image

    from causaldiffae.data.base import resize_images, resize_square

    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0]), dtype=np.uint8)
    img = Image.fromarray(pixels)
    resized = np.asarray(resize_square(img, 16))
    box, bicubic = (np.asarray(img.resize((16, 16), f)) for f in (Image.Resampling.BOX, Image.Resampling.BICUBIC))
    assert not np.array_equal(box, bicubic)
    np.testing.assert_array_equal(resized, box if filter_name == "BOX" else bicubic)
    np.testing.assert_array_equal(resize_images(pixels[None, :, :, None], 16)[0, :, :, 0], resized)


def test_resize_square_leaves_an_image_of_the_size_alone():
    from PIL import Image

    from causaldiffae.data.base import resize_square

    img = Image.new("L", (16, 16))
    assert resize_square(img, 16) is img


def test_edge_brightness_reads_the_frame_of_the_colour_channels():
    """The outer two pixels only, in [0, 1]; alpha (the last of 2 or 4 channels) is not a colour."""
    from causaldiffae.data.base import edge_brightness

    images = np.zeros((3, 8, 8, 4), np.uint8)
    images[0, 2:6, 2:6] = 255  # a bright centre inside the frame
    images[1, 0, :, :3] = 255  # one of the frame's 48 pixels' rows: 8 pixels white
    images[2, ..., 3] = 255  # opaque, black
    np.testing.assert_allclose(edge_brightness(images), [0.0, 8 / 48, 0.0])
    grey = np.full((1, 8, 8, 2), 51, np.uint8)
    grey[..., 1] = 255
    np.testing.assert_allclose(edge_brightness(grey), [0.2])


def test_centroid_offset_is_the_brightness_centroids_distance_from_the_centre_over_the_height():
    from causaldiffae.data.base import centroid_offset

    images = np.zeros((4, 8, 8, 2), np.uint8)
    images[0, 3:5, 3:5, 0] = 200  # centred
    images[1, 0, 0, 0] = 10  # one corner pixel: (3.5, 3.5) px away
    images[2, 3:5, 3:5, 0] = 200
    images[2, 3:5, 6:8, 0] = 200  # as much again 3 px to the right: the centroid moves 1.5 px
    images[..., 1] = 255  # alpha is not brightness
    images[3, ..., 1] = 0  # all black: no centroid, offset 0
    np.testing.assert_allclose(centroid_offset(images), [0.0, np.hypot(3.5, 3.5) / 8, 1.5 / 8, 0.0])


def test_extent_is_the_larger_side_of_the_box_at_half_the_peak_over_the_image_side():
    from causaldiffae.data.base import extent

    images = np.zeros((4, 8, 10, 4), np.uint8)
    images[0, 2:6, 3:5, 0] = 200  # 4 rows by 2 columns: 4 of 8 rows is the larger fraction
    images[1, 1, 1:9, 2] = 90  # one row of 8 of 10 columns, in the blue channel
    images[1, 4, 5, 2] = 200  # the peak: the row at 90 falls below its half
    images[2, 0:8, 0, :3] = 255  # a full column, and alpha is not brightness
    images[..., 3] = 255
    images[3, ..., :3] = 0  # all black: no extent
    np.testing.assert_allclose(extent(images), [4 / 8, 1 / 8, 1.0, 0.0])
    images[1, 1, 1:9, 2] = 100  # at half the peak or more
    assert extent(images)[1] == 8 / 10
