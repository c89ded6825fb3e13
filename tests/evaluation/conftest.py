import pytest
from squares_data import make_squares


@pytest.fixture(scope="session")
def squares():
    train = make_squares(384, 0, "train")
    test = make_squares(128, 1, "test", stats=(train.label_mean, train.label_std))
    return train, test
