import pytest

from causaldiffae.data import DataError, check_outside


def test_a_dataset_folder_refuses_outputs_inside_it(tmp_path, monkeypatch):
    user = tmp_path / "user"
    user.mkdir()
    (user / "labels.csv").write_text("file,a\n")
    (user / "graph.yaml").write_text("variables: [a]\nedges: []\n")
    for out in (user, user / "run", user / "deep" / "grid.png"):
        with pytest.raises(DataError, match="lies inside the dataset folder"):
            check_outside(out, user)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="lies inside the dataset folder"):
        check_outside("user/../user/run", "user")  # relative and roundabout paths alike
    check_outside(tmp_path / "user-runs", user)  # a sibling whose name starts the same is outside
    generated = tmp_path / "pendulum"  # its files are fixed, but `data pendulum --force` replaces the folder
    generated.mkdir()
    (generated / "pendulum.json").write_text('{"format": "pendulum"}')
    with pytest.raises(DataError, match="lies inside the dataset folder .*, which regenerating it with --force would delete"):
        check_outside(generated / "runs" / "x", generated)
    other = tmp_path / "notes"  # not a dataset: loading it will say so
    other.mkdir()
    check_outside(other / "run", other)
