"""Detection boxes in the views (rendered pixels): a slice view draws the rectangle where its plane
cuts a box, coloured by score, and nothing for a plane that misses it; the 3D view draws every
box's edges; the score threshold, visibility and selection change what is drawn."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.model import Boxes, BoxesLayer, Scene, Volume, layer_for, score_color
from viewer.render.offscreen import render_scene

BOX = [-10.0, -10.0, -5.0, 10.0, 5.0, 5.0]  # RAS mm: 20 x 15 x 10 around (0, -2.5, 0)


def _scene(cursor, score: float = 0.95, **display) -> tuple[Scene, BoxesLayer]:
    scene = Scene()
    # an 80 mm cube of dark voxels centred on the origin frames every view
    vol = Volume(np.full((80, 80, 80), -1000, np.int16), np.array(
        [[1, 0, 0, -39.5], [0, 1, 0, -39.5], [0, 0, 1, -39.5], [0, 0, 0, 1.0]]), modality="CT")
    scene.add(layer_for(vol))
    boxes = BoxesLayer(Boxes([BOX], [score], ["lesion"]), **display)
    scene.add(boxes)
    scene.cursor = np.asarray(cursor, float)
    return scene, boxes


def _score_pixels(img: np.ndarray, score: float) -> np.ndarray:
    """Pixels of the colour the score is drawn in."""
    want = np.array(score_color(score)) * 255
    return np.all(np.abs(img.astype(int) - want) < 40, axis=-1)


@pytest.mark.parametrize("view, cursor, drawn", [
    ("axial", (0, 0, 0), True),          # the plane S = 0 cuts the box (S -5..5)
    ("axial", (0, 0, 30), False),        # S = 30: far above it
    ("coronal", (0, -2.5, 0), True),     # A = -2.5: through its centre
    ("coronal", (0, 25, 0), False),      # A = 25: in front of it
    ("sagittal", (9.0, 0, 0), True),     # R = 9: inside its R -10..10
    ("sagittal", (-30, 0, 0), False),
], ids=["axial-cut", "axial-far", "coronal-cut", "coronal-far", "sagittal-cut", "sagittal-far"])
def test_slice_view_draws_only_where_the_plane_cuts(view, cursor, drawn):
    scene, _ = _scene(cursor)
    img = render_scene(scene, view, (300, 300))
    n = _score_pixels(img, 0.95).sum()
    assert (n > 150) == drawn, n


def test_rectangle_has_the_box_extent():
    """Axial at S = 0: a rectangle 20 mm (R) by 15 mm (A) on a 300 px view of 88 mm."""
    scene, _ = _scene((0, 0, 0))
    scene_img = render_scene(scene, "axial", (300, 300))
    ys, xs = np.nonzero(_score_pixels(scene_img, 0.95))
    mm_per_px = 80.0 * 1.1 / 300
    width, height = (xs.max() - xs.min()) * mm_per_px, (ys.max() - ys.min()) * mm_per_px
    assert abs(width - 20.0) < 3.0, width
    # the score's text sits on the top edge, so the coloured pixels reach a little above it
    assert 14.0 < height < 22.0, height


@pytest.mark.parametrize("display", [{"visible": False}, {"min_score": 0.99}],
                         ids=["hidden", "below-threshold"])
def test_hidden_or_filtered_boxes_are_not_drawn(display):
    scene, _ = _scene((0, 0, 0), **display)
    for view in ("axial", "3d"):
        assert _score_pixels(render_scene(scene, view, (300, 300)), 0.95).sum() == 0, view


def test_3d_view_draws_the_box_edges_in_its_score_colour():
    for score in (0.95, 0.1):
        scene, _ = _scene((0, 0, 30), score=score)
        img = render_scene(scene, "3d", (300, 300))
        assert _score_pixels(img, score).sum() > 80, score


def test_moving_the_plane_off_the_box_clears_the_live_view():
    """The same view, the cursor moved: the rectangle goes (the view recuts on cursor events)."""
    import pyvista as pv

    from viewer.render.slice_view import SliceView

    scene, layer = _scene((0, 0, 0))
    plotter = pv.Plotter(off_screen=True, window_size=[300, 300])
    try:
        view = SliceView(plotter.renderer, scene, "axial")
        view.reset_camera()
        assert view.cuts[id(layer)].cut == [0]
        before = _score_pixels(_shot(plotter)[..., :3], 0.95).sum()
        scene.cursor = (0, 0, 20)
        assert view.cuts[id(layer)].cut == []
        after = _score_pixels(_shot(plotter)[..., :3], 0.95).sum()
        layer.selected_box = 0  # restyles without error when nothing is cut
        view.close()
    finally:
        plotter.close()
    assert before > 150 and after == 0, (before, after)


def _shot(plotter) -> np.ndarray:
    plotter.render()
    return np.asarray(plotter.screenshot(return_img=True))


def test_3d_visual_follows_the_layer():
    """Scores as text on and off, a threshold, a selected box drawn as its own (thicker) actor."""
    import pyvista as pv

    from viewer.render.box_visuals import SELECTED_WIDTH
    from viewer.render.view3d import View3D

    scene, _ = _scene((0, 0, 0))
    layer = BoxesLayer(Boxes([BOX, [20.0, 20.0, 20.0, 30.0, 30.0, 30.0]], [0.3, 0.8]))
    scene.add(layer)
    plotter = pv.Plotter(off_screen=True, window_size=[200, 200])
    try:
        view = View3D(plotter.renderer, scene)

        def kinds():
            props = view.props[id(layer)]
            texts = [p for p in props if p.IsA("vtkBillboardTextActor3D")]
            widths = sorted(p.GetProperty().GetLineWidth() for p in props if p.IsA("vtkActor"))
            return len(texts), widths

        assert kinds() == (2, [2.0])
        layer.show_scores = False
        assert kinds() == (0, [2.0])
        layer.selected_box = 1
        assert kinds() == (0, [2.0, SELECTED_WIDTH])
        layer.show_scores, layer.min_score = True, 0.5  # the 0.3 box goes, the selected 0.8 one stays
        assert kinds() == (1, [SELECTED_WIDTH])
        scene.remove(layer)
        assert id(layer) not in view.props
        view.close()
    finally:
        plotter.close()
