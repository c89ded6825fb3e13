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
