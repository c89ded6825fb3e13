"""The framing measures kept with a run's weights, and files redrawn to them."""

import json

import numpy as np
import pytest


def test_edge_brightness_reads_the_frame_of_the_colour_channels():
    """The outer two pixels only, in [0, 1]; alpha (the last of 2 or 4 channels) is not a colour."""
    from causaldiffae.data.framing import edge_brightness

    images = np.zeros((3, 8, 8, 4), np.uint8)
    images[0, 2:6, 2:6] = 255  # a bright centre inside the frame
    images[1, 0, :, :3] = 255  # one of the frame's 48 pixels' rows: 8 pixels white
    images[2, ..., 3] = 255  # opaque, black
    np.testing.assert_allclose(edge_brightness(images), [0.0, 8 / 48, 0.0])
    grey = np.full((1, 8, 8, 2), 51, np.uint8)
    grey[..., 1] = 255
    np.testing.assert_allclose(edge_brightness(grey), [0.2])


def test_centroid_offset_is_the_brightness_centroids_distance_from_the_centre_over_the_height():
    from causaldiffae.data.framing import centroid_offset

    images = np.zeros((4, 8, 8, 2), np.uint8)
    images[0, 3:5, 3:5, 0] = 200  # centred
    images[1, 0, 0, 0] = 10  # one corner pixel: (3.5, 3.5) px away
    images[2, 3:5, 3:5, 0] = 200
    images[2, 3:5, 6:8, 0] = 200  # as much again 3 px to the right: the centroid moves 1.5 px
    images[..., 1] = 255  # alpha is not brightness
    images[3, ..., 1] = 0  # all black: no centroid, offset 0
    np.testing.assert_allclose(centroid_offset(images), [0.0, np.hypot(3.5, 3.5) / 8, 1.5 / 8, 0.0])


def test_extent_is_the_larger_side_of_the_box_at_half_the_peak_over_the_image_side():
    from causaldiffae.data.framing import extent

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


def test_reframe_is_the_window_in_which_the_inked_box_spans_the_size_about_the_centroid():
    """A 5 px square near a corner framed to 5/7: the 7 px window about its centroid; an all-black image and
    one already so framed come back unchanged; a window past the image's edge is black there, alpha opaque."""
    from causaldiffae.data.framing import centroid_offset, extent, reframe

    images = np.zeros((3, 28, 28, 2), np.uint8)
    images[..., 1] = 255
    images[0, 2:7, 3:8, 0] = 255  # 5 px square near the top-left corner: centroid (4, 5)
    images[2, 4:24, 9:19, 0] = 200  # 20 rows by 10 columns about the centre: extent 20/28
    images[2, 13, 13, 0] = 255  # its peak (a 200 stroke is above half of it)
    window = reframe(images[0], 5 / 7)
    np.testing.assert_array_equal(window, images[0, 1:8, 2:9])
    assert extent(window[None])[0] == 5 / 7 and centroid_offset(window[None])[0] == 0
    np.testing.assert_array_equal(reframe(images[1], 0.5), images[1])
    np.testing.assert_array_equal(reframe(images[2], 20 / 28), images[2])
    wide = reframe(images[0], 0.25)  # a 20 px window about (4, 5): 6 rows and 4 columns of it lie outside
    assert wide.shape == (20, 20, 2) and (wide[..., 1] == 255).all() and extent(wide[None])[0] == 0.25
    np.testing.assert_array_equal(wide[8:13, 7:12, 0], 255)  # rows 2-6 and columns 3-7 of the image
    assert wide[..., 0].sum() == 25 * 255


def test_reframe_takes_a_square_window_of_a_wide_image():
    from causaldiffae.data.framing import centroid_offset, extent, reframe

    image = np.zeros((40, 60, 1), np.uint8)
    image[30:36, 50:53] = 255  # 6 rows by 3 columns in the lower right
    window = reframe(image, 0.5)
    assert window.shape == (12, 12, 1) and extent(window[None])[0] == 0.5
    assert centroid_offset(window[None])[0] * 12 <= 0.5


def test_reframe_fills_past_the_edge_with_the_images_background():
    """A page not yet inverted stays a white page (so the notes can still call it inverted), not a white page
    on black."""
    from causaldiffae.data.framing import edge_brightness, reframe

    page = np.full((20, 20, 1), 255, np.uint8)
    page[8:12, 8:12] = 0  # a dark mark: the bright part is the page itself
    window = reframe(page, 0.5)
    assert window.shape == (40, 40, 1) and edge_brightness(window[None])[0] == 1.0


def test_edge_width_counts_the_partly_bright_pixels_per_border_pixel_of_the_bright_part():
    from causaldiffae.data.framing import edge_width

    images = np.zeros((3, 16, 16, 1), np.uint8)
    images[0, 5:11, 5:11] = 255  # a sharp 6 px square: no partly bright pixels
    images[1, 4:12, 4:12] = 100  # the same square in a ring below half its peak: 28 partly bright pixels
    images[1, 5:11, 5:11] = 255  # ... against the 20 on the square's border
    np.testing.assert_allclose(edge_width(images), [0.0, 28 / 20, 0.0])


def test_frame_file_smooths_a_sharp_drawing_until_its_edges_rise_as_the_runs_do():
    """A sharp pen-drawn bar on a large page, framed to a run whose edges rise over 1.36 px, comes out
    smoothed to within the softenings' step of that; with no edge width kept it is only framed and resized."""
    from causaldiffae.data.base import resize_images
    from causaldiffae.data.framing import Framing, edge_width, frame_file, reframe

    page = np.zeros((224, 224, 1), np.uint8)
    yy, xx = np.mgrid[:224, :224]
    page[((yy - 100) ** 2 + (xx - 120) ** 2 <= 70**2) & ((yy - 100) ** 2 + (xx - 120) ** 2 >= 50**2)] = 255  # a ring
    plain, levelled = frame_file(page, Framing(20 / 28), 28)
    assert levelled is None
    np.testing.assert_array_equal(plain, resize_images(reframe(page, 20 / 28)[None], 28)[0])
    smoothed, _ = frame_file(page, Framing(20 / 28, 1.36), 28)
    before, after = edge_width(np.stack([plain, smoothed]))
    assert before < 1.0 and abs(after - 1.36) < 0.2, (before, after)
    assert frame_file(page, Framing(20 / 28, 0.0), 28)[0].tolist() == plain.tolist()  # the sharpest is the plain one


def test_frame_file_sharpens_a_soft_drawing_until_its_edges_rise_as_the_runs_do_and_never_past_its_own_range():
    """A ring blurred by 5/8 of a pixel of the run's is softer than the run's images; framed it comes out sharpened to
    within the sharpenings' step of their edge width, its brightest pixel no brighter than the file's."""
    from scipy import ndimage

    from causaldiffae.data.framing import Framing, edge_width, frame_file

    page = np.zeros((224, 224, 1), np.float64)
    yy, xx = np.mgrid[:224, :224]
    page[((yy - 110) ** 2 + (xx - 115) ** 2 <= 75**2) & ((yy - 110) ** 2 + (xx - 115) ** 2 >= 50**2)] = 200
    page = ndimage.gaussian_filter(page, (5, 5, 0)).round().astype(np.uint8)
    plain, _ = frame_file(page, Framing(20 / 28), 28)
    sharpened, _ = frame_file(page, Framing(20 / 28, 1.36), 28)
    before, after = edge_width(np.stack([plain, sharpened]))
    assert before > 1.8 and abs(after - 1.36) < 0.25, (before, after)
    assert sharpened.max() <= page.max() and sharpened.min() >= page.min()
    softer, _ = frame_file(page, Framing(20 / 28, 2.5), 28)  # a run softer still: smoothed further, never sharpened
    assert edge_width(softer[None])[0] >= before


def test_a_file_at_the_runs_resolution_framed_as_theirs_is_not_cut_again():
    """Cut again, a 28-px digit would be resampled by a fraction of a pixel; framed as the run's images are
    (extent and centroid within theirs) it is kept pixel for pixel, and one drawn too small is still cut."""
    from causaldiffae.data.framing import Framing, extent, frame_file

    digit = np.zeros((28, 28, 1), np.uint8)
    digit[5:24, 11:17] = 255  # 19 px tall, centred
    framing = Framing(20 / 28, None, None, (16 / 28, 22 / 28), 0.06)
    assert framing.holds(digit) and frame_file(digit, framing, 28)[0].tolist() == digit.tolist()
    assert not Framing(20 / 28).holds(digit)  # a run that kept neither range: the digit is cut as before
    assert extent(frame_file(digit, Framing(20 / 28), 28)[0][None])[0] == 20 / 28
    small = np.zeros((28, 28, 1), np.uint8)
    small[10:18, 12:16] = 255
    assert not framing.holds(small) and extent(frame_file(small, framing, 28)[0][None])[0] == 20 / 28


def test_summarise_keeps_the_measures_quantiles_under_their_names_and_framing_reads_them_back():
    """Eleven centred squares of sides 8..18 on black: edges all black, extents 8/28..18/28 (median 13/28),
    hard edges; the summary is JSON (plain floats) and ``Framing.of_run`` draws files at its median."""
    from causaldiffae.data.framing import KEPT, Framing, edge_width, summarise

    images = np.zeros((11, 28, 28, 1), np.uint8)
    for i, side in enumerate(range(8, 19)):
        start = 14 - side // 2
        images[i, start:start + side, start:start + side] = 255
    kept = summarise(images)
    assert tuple(kept) == KEPT and json.loads(json.dumps(kept)) == kept
    assert kept["edge_brightness"] == [0.0, 0.0] and kept["centroid_offset"] == round(np.hypot(0.5, 0.5) / 28, 4)  # odd sides: half a pixel off
    assert kept["extent"] == [round(np.quantile(np.arange(8, 19) / 28, q), 4) for q in (0.005, 0.5, 0.995)]
    assert kept["extent"][1] == round(13 / 28, 4)
    assert kept["edge_width"] == [round(np.quantile(edge_width(images), q), 4) for q in (0.005, 0.5, 0.995)]
    framing = Framing.of_run(kept)
    assert framing is not None and framing.size == kept["extent"][1] and framing.sizes == (kept["extent"][0], kept["extent"][2])
    assert framing.holds(images[5]) and not framing.holds(np.roll(images[5], 9, axis=1))


def test_framing_of_a_runs_metadata():
    from causaldiffae.data.framing import Framing

    meta = {"extent": [0.57, 0.71, 0.79], "edge_width": [1.16, 1.35, 1.96], "edge_brightness": [0.0, 0.02], "centroid_offset": 0.057}
    assert Framing.of_run(meta) == Framing(0.71, 1.35, (0.0, 0.02), (0.57, 0.79), 0.057)
    assert Framing.of_run({"extent": [0.57, 0.71, 0.79]}) == Framing(0.71, None, None, (0.57, 0.79), None)
    assert Framing.of_run({"edge_brightness": [0.0, 0.02]}) is None


def test_likeness_names_the_measures_beyond_the_runs_and_compares_only_what_it_keeps():
    """A centred bar like the run's images; it inverted (its edges past theirs: nothing else compared); a
    blank image; a small block off centre. Hard edges rise over 0 px, sharper than a run with soft edges."""
    from causaldiffae.data.framing import centroid_offset, edge_brightness, extent, likeness

    images = np.zeros((4, 28, 28, 1), np.uint8)
    images[0, 5:24, 11:17] = 255  # 19 px tall, centred
    images[1] = 255 - images[0]
    images[3, 14:22, 15:19] = 255  # 8 px tall, its centroid 4.3 px from the centre
    kept = {"edge_brightness": [0.0, 0.02], "centroid_offset": 0.06, "extent": [0.57, 0.71, 0.79]}
    seen = likeness(images, kept)
    assert [s.unlike for s in seen] == [(), ("edge_brightness",), ("blank",), ("centroid_offset", "extent")]
    np.testing.assert_allclose([(s.edge, s.offset, s.size) for s in seen],
                               np.stack([edge_brightness(images), centroid_offset(images), extent(images)], axis=1))
    soft = likeness(images, {**kept, "edge_width": [1.1, 1.3, 1.9]})
    assert [s.unlike for s in soft] == [("edge_width",), ("edge_brightness",), ("blank",), ("centroid_offset", "extent", "edge_width")]
    assert [s.unlike for s in likeness(images, {"edge_brightness": [0.0, 0.02], "centroid_offset": 0.06})][3] == ("centroid_offset",)
    assert likeness(images, {"extent": [0.57, 0.71, 0.79]}) == []  # a run trained before its weights kept its framing


def test_frame_file_smooths_a_large_window_at_most_smoothed_at_pixels_per_run_pixel():
    """A phone photo's window is shrunk (by area) before it is smoothed; the result is what smoothing it at its
    own resolution gives, to within 3 grey levels on a sharp white ring, in a fraction of the time."""
    from scipy import ndimage

    from causaldiffae.data.base import resize_images
    from causaldiffae.data.framing import SMOOTHED_AT, SOFTENINGS, Framing, edge_width, frame_file, reframe

    page = np.zeros((700, 700, 1), np.uint8)
    yy, xx = np.mgrid[:700, :700]
    page[((yy - 350) ** 2 + (xx - 340) ** 2 <= 250**2) & ((yy - 350) ** 2 + (xx - 340) ** 2 >= 200**2)] = 255
    framed, _ = frame_file(page, Framing(20 / 28, 1.36), 28)
    window = reframe(page, 20 / 28)
    assert window.shape[0] > SMOOTHED_AT * 28
    direct = np.stack([resize_images(ndimage.gaussian_filter(window.astype(np.float64), (s * window.shape[0] / 28,) * 2 + (0,))
                                     .round().clip(0, 255).astype(np.uint8)[None], 28)[0] for s in SOFTENINGS])
    nearest = direct[np.argmin(np.abs(edge_width(direct) - 1.36))]
    assert np.abs(framed.astype(int) - nearest).max() <= 3


def test_level_takes_a_grey_page_to_the_runs_background_and_keeps_the_inks_extreme():
    """An inverted photograph (ink 210 on a page of 50) on a run whose edges are 0.01-0.02 bright: the page goes
    to 0.01 (3 grey levels), the brightest ink stays 210 and the ink between moves linearly with it."""
    from causaldiffae.data.framing import level

    image = np.full((20, 20, 1), 50, np.uint8)
    image[5:15, 8:12] = 210
    image[5:15, 12] = 130  # a half-bright edge
    out, was = level(image, (0.01, 0.02))
    assert was == pytest.approx(50 / 255)
    assert out[0, 0, 0] == 3 and out[6, 9, 0] == 210
    assert out[6, 12, 0] == round(210 + (130 - 210) * (2.55 - 210) / (50 - 210))


def test_level_takes_a_page_lit_from_one_side_to_black_across():
    """A page brightening from 40 at the right to 60 at the left (lit from the left), ink 220 in the middle: the
    page under the ink is the plane through its sides, so the whole page goes to black, not just its middle."""
    from causaldiffae.data.framing import level, page_surface

    page = np.broadcast_to(np.linspace(60, 40, 21)[None, :, None], (15, 21, 1)).round().astype(np.uint8)
    np.testing.assert_allclose(page_surface(page), page, atol=0.5)
    image = page.copy()
    image[4:11, 9:12] = 220
    out, was = level(image, (0.0, 0.02))
    assert was == pytest.approx(50 / 255)
    assert out[..., 0][image[..., 0] < 220].max() == 0 and (out[4:11, 9:12] == 220).all()


def test_page_surface_leaves_out_ink_along_most_of_one_side_of_a_tight_crop():
    """The page lit from the left as above, cropped so tightly that a stroke of ink (220) covers 17 of the top
    row's 21 pixels: the fitted surface is the page's still, and levelling takes all of the page to black."""
    from causaldiffae.data.framing import level, page_surface

    page = np.broadcast_to(np.linspace(60, 40, 21)[None, :, None], (15, 21, 1)).round().astype(np.uint8)
    image = page.copy()
    image[:3, 2:19] = 220
    image[3:11, 9:12] = 220
    np.testing.assert_allclose(page_surface(image), page, atol=0.5)
    out, was = level(image, (0.0, 0.02))
    assert was == pytest.approx(50 / 255, abs=0.5 / 255)
    assert out[..., 0][image[..., 0] < 220].max() == 0 and (out[image[..., 0] == 220] == 220).all()


def test_level_takes_a_vignetted_dark_page_under_light_ink_to_black():
    """Light ink (205) on a dark board (45) photographed through a lens, the page darker by 30 grey levels
    towards the corners with the square of the distance from a point left of the centre: not inverted, the page
    under the digit is brighter than any line through its edges, and only a bowl through them takes it to black."""
    from causaldiffae.data.framing import level, page_surface

    down, across = np.mgrid[0:30, 0:40]
    page = (45 - 30 * ((down - 14.5) ** 2 + (across - 16) ** 2) / (14.5**2 + 23.5**2)).round().astype(np.uint8)[..., None]
    np.testing.assert_allclose(page_surface(page), page, atol=1)  # the page rounded to grey levels
    image = page.copy()
    image[8:22, 14:19] = 205
    out, was = level(image, (0.0, 0.02))
    assert was == pytest.approx(page.mean() / 255, abs=0.5 / 255)
    assert out[..., 0][image[..., 0] < 205].max() <= 1 and (out[8:22, 14:19] == 205).all()


def test_page_surface_of_a_border_in_two_colours_is_fitted_through_all_of_it_within_the_pixels_range():
    """Red above, green below: no border pixel is near their median, so every one is fitted, and the surface runs
    from red at the top to green at the bottom without passing 0 or 255 at the corners."""
    from causaldiffae.data.framing import page_surface

    image = np.zeros((8, 8, 3), np.uint8)
    image[:4, :, 0], image[4:, :, 1] = 255, 255
    plane = page_surface(image)
    assert plane.min() >= 0 and plane.max() <= 255 and (plane[..., 2] == 0).all()
    assert plane[0, 3, 0] > 200 > plane[7, 3, 0] and plane[7, 3, 1] > 200 > plane[0, 3, 1]


def test_a_page_looks_inverted_past_mid_grey_from_the_runs():
    from causaldiffae.data.framing import looks_inverted

    assert looks_inverted(0.9, (0.0, 0.02)) and looks_inverted(0.6, (0.0, 0.02)) and not looks_inverted(0.3, (0.0, 0.02))
    assert looks_inverted(0.2, (0.9, 1.0)) and not looks_inverted(0.7, (0.9, 1.0))


def test_level_leaves_a_page_like_the_runs_and_one_that_looks_inverted():
    """A page within the run's span is left, as is a white page on a dark-paged run (it wants --invert, which
    levelling would hide); a light-paged run's page is levelled from the other side, keeping the darkest ink."""
    from causaldiffae.data.framing import level

    black = np.zeros((12, 12, 3), np.uint8)
    black[4:8, 4:8] = 255
    assert level(black, (0.0, 0.02)) == (black, None)
    white = 255 - black
    assert level(white, (0.0, 0.02)) == (white, None)
    grey = np.where(white == 255, 204, 30).astype(np.uint8)  # dark ink on a page darker than the run's white
    out, was = level(grey, (0.9, 1.0))
    assert was == pytest.approx(0.8) and out[0, 0].tolist() == [255] * 3 and out[5, 5].tolist() == [30] * 3


@pytest.mark.parametrize("magnified", [1, 8])
def test_even_ink_brings_lighter_strokes_to_the_strongest_and_leaves_the_page(magnified):
    """Three bars 10 px thick, at 200, 100 and 40 (a fifth: brightened the most, four times), on a page with
    grain: the lighter two reach the strongest's level and the page between them keeps its pixels. Eight times
    larger, the strokes' levels are read at the digit's size ``--frame`` smooths at and the gain enlarged."""
    from causaldiffae.data.framing import EVEN_MOST, even_ink

    image = np.random.default_rng(0).integers(0, 7, (112, 112, 1)).astype(np.uint8)
    for rows, ink in ((slice(10, 20), 200), (slice(50, 60), 100), (slice(90, 100), 40)):
        image[rows, 10:100] = ink
    image = image.repeat(magnified, axis=0).repeat(magnified, axis=1)
    out = even_ink(image, 28 if magnified == 1 else 4, 0.7).astype(int)
    at = magnified * 5  # the bars' middles, clear of their edges
    bars = [int(np.median(out[top * magnified + at - 2 : top * magnified + at + 2, 20 * magnified : 90 * magnified])) for top in (10, 50, 90)]
    assert abs(bars[0] - 200) <= 3 and abs(bars[1] - 200) <= 6 and abs(bars[2] - 40 * EVEN_MOST) <= 6
    page = slice(33 * magnified, 37 * magnified)  # 13 px from the bars on either side
    assert np.array_equal(out[page], image[page])


def test_frame_file_evens_a_photographs_ink_on_either_runs_page_and_leaves_a_file_on_the_runs_own():
    """Two bars, one pressed half as hard: photographed on a grey page (levelled), framed for a run of white
    digits on black, and dark ink on a light page for a run on white, both come back as evenly inked; on the
    dark run's own black page the file is not a photograph and keeps its ink as drawn."""
    from causaldiffae.data.framing import Framing, frame_file

    drawn = np.zeros((120, 120, 1), np.uint8)
    drawn[20:100, 30:44], drawn[20:100, 76:90] = 210, 105

    def levels(framed: np.ndarray) -> list[int]:
        return [int(np.median(framed[8:20, col])) for col in (10, 17)]  # the bars' middles at 28 px

    photo = np.where(drawn > 0, drawn, 50).astype(np.uint8)
    framed, was = frame_file(photo, Framing(20 / 28, None, (0.0, 0.02)), 28)
    left, right = levels(framed)
    assert was == pytest.approx(50 / 255) and abs(left - right) <= 0.05 * left
    on_white = 255 - photo
    framed, was = frame_file(on_white, Framing(20 / 28, None, (0.98, 1.0)), 28)
    left, right = levels(255 - framed)
    assert was == pytest.approx(205 / 255) and abs(left - right) <= 0.05 * left
    framed, was = frame_file(drawn, Framing(20 / 28, None, (0.0, 0.02)), 28)
    left, right = levels(framed)
    assert was is None and right < 0.6 * left


def test_frame_file_evens_a_file_on_the_runs_own_page_when_asked_and_never_one_that_looks_inverted():
    """``even`` evens the two bars on the dark run's own black page, and on the light run's own white one
    (a pressure-sensitive pen on a plain canvas); a file on the other side of mid-grey from the run's page
    (dark ink on a white page half in shadow, for the dark run) is framed as without it; a run whose page is
    unknown cannot tell ink from page and refuses."""
    from causaldiffae.data.framing import Framing, frame_file

    drawn = np.zeros((120, 120, 1), np.uint8)
    drawn[20:100, 30:44], drawn[20:100, 76:90] = 210, 105
    dark, light = Framing(20 / 28, None, (0.0, 0.02)), Framing(20 / 28, None, (0.98, 1.0))

    def levels(framed: np.ndarray) -> list[int]:
        return [int(np.median(framed[8:20, col])) for col in (10, 17)]

    framed, was = frame_file(drawn, dark, 28, even=True)
    left, right = levels(framed)
    assert was is None and abs(left - right) <= 0.05 * left
    framed, was = frame_file(255 - drawn, light, 28, even=True)
    left, right = levels(255 - framed)
    assert was is None and abs(left - right) <= 0.05 * left
    unlit = np.where(drawn > 0, 20, 255).astype(np.uint8)
    unlit[:, 60:] //= 2  # a white page half in shadow: evened as if bright ink, its shadow would be lifted
    assert frame_file(unlit, dark, 28, even=True)[0].tolist() == frame_file(unlit, dark, 28)[0].tolist()
    with pytest.raises(ValueError, match="framing.background"):
        frame_file(drawn, Framing(20 / 28), 28, even=True)


def test_frame_file_levels_the_page_before_it_centres_on_the_ink():
    """A grey page's brightness would pull the centroid towards the page's centre; levelled first, the window
    is centred on the ink and its margin is the run's black."""
    from causaldiffae.data.framing import Framing, centroid_offset, frame_file

    page = np.full((100, 100, 1), 60, np.uint8)
    page[10:40, 10:20] = 220  # a bar in the top-left corner
    framed, was = frame_file(page, Framing(20 / 28, None, (0.0, 0.02)), 28)
    assert was == pytest.approx(60 / 255)
    assert framed[:3].max() == 0 and centroid_offset(framed[None])[0] * 28 <= 0.75  # the run's black margin, the ink centred
    unlevelled, none = frame_file(page, Framing(20 / 28), 28)
    assert none is None and unlevelled.max() == 60  # unlevelled, the page's weight pulls the window off the bar altogether

