"""Hidden checks of notebook 01, run only by ``qgait-lab lab grade``: other widths, shapes and test sets."""
from qgait_lab.lab.exercises import gait
from qgait_lab.lab.exercises.core import Wrong


def cut_other_widths(cut_sides):
    """Widths the notebook's checker does not try: 256 and 320 (cut 40, 50), 63 and 20 (no cut); taller frames."""
    return gait.verify_cut(cut_sides, [(1, 64, 256), (2, 64, 320), (2, 64, 63), (2, 128, 88), (1, 32, 20)])


def gei_other_sequences(gei_of):
    """A single frame, frames stored 44 wide (nothing to cut), 128 wide (cut 20) and 128 x 88."""
    cases = [("one frame", gait.walker_frames(1, seed=21)),
             ("frames stored 44 wide", gait.walker_frames(9, width=44, seed=22)),
             ("frames stored 128 wide", gait.walker_frames(6, width=128, seed=23)),
             ("frames of 128 x 88", gait.walker_frames(5, width=88, height=128, seed=24))]
    return gait.verify_gei(gei_of, cases)


def bnneck_other_shapes(bnneck_parameters):
    """GREW-sized K (20,000 classes), other part counts and embedding sizes."""
    return gait.verify_bnneck(bnneck_parameters, [(20000, 16, 256), (3000, 32, 128), (7, 1, 1), (2, 8, 3)])


def rank1_uneven_test_sets(casia_b_rank1):
    """A gallery without one view, subjects missing from some gallery views, integer labels and views."""
    cases = [gait.protocol_case(5, ("000", "054", "090", "126"), 2, 2, view_strength=2.0, seed=31, noise=1.5,
                                gallery_views=("054", "090", "126")),
             gait.protocol_case(6, ("018", "090", "162"), 2, 2, view_strength=2.5, seed=32, noise=1.5,
                                absent=[(0, "090"), (3, "162")]),
             gait.protocol_case(5, (0, 90, 180), 2, 2, view_strength=2.0, seed=33, noise=1.5)]
    return gait.verify_rank1(casia_b_rank1, cases)


def floor_reading_is_one_letter(floor_reading):
    """The choice re-graded from the submitted answer itself, not from the output the notebook showed."""
    if not isinstance(floor_reading, str) or len(floor_reading.strip()) != 1:
        raise Wrong("the answer must be one letter in a string")
    return gait.check_floor_reading.raw(floor_reading)


HIDDEN = {
    "1.1": [cut_other_widths],
    "1.2": [gei_other_sequences],
    "1.3": [bnneck_other_shapes],
    "1.4": [rank1_uneven_test_sets],
    "1.5": [floor_reading_is_one_letter],
}
