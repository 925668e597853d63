"""``qgait-lab reproduce`` end to end on a tiny budget: tables are produced and reported honestly."""
import pytest

from qgait_lab.experiments.reproduce import grow_schedules, run_reproduce

TINY = ["data.synth={n_ids: 8, n_train: 5, frames: 10, views: ['018', '090']}",
        "data.batch_p=3", "data.batch_k=2", "data.frames=6",
        "full_precision.iterations=2", "stage1.iterations=2", "stage2.iterations=2",
        "stage2.k.every=1", "runtime.progress=false"]


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("QGAIT_DATA_DIR", str(tmp_path / "data"))
    return TINY + [f"runtime.runs_dir={tmp_path / 'runs'}"]


def test_grow_schedules_rescale_to_the_finetune_length():
    s = grow_schedules(60, 5.0)
    assert s["GROW-2"].every == 6 and s["GROW-2"].k_at(59) == pytest.approx(2.8)
    assert s["GROW-3"].every == 60 and s["FIXED"].k_at(0) == 5.0
    assert grow_schedules(1000, 3.0)["GROW-1"].every == 100     # the paper's own numbers


def _row(text, label):
    return next(line for line in text.splitlines() if line.startswith(f"| {label} |"))


@pytest.mark.slow
def test_table1_over_two_seeds_reports_mean_and_std(tiny, tmp_path):
    report = run_reproduce("table1", seeds=2, overrides=tiny)
    text = report.path.read_text()
    for label in ("DOREFA-4", "PACT-4", "LSQ-4", "QGait-4", "DOREFA-8", "QGait-8"):
        assert " ± " in _row(text, label)
    # One shared teacher, trained once: its row has no spread, and no seed trains another.
    assert " ± " not in _row(text, "FP32") and "fine-tunes one full-precision teacher" in text
    root = tmp_path / "runs" / "reproduce-table1"
    assert len(list((root / "teacher").glob("fp-*/checkpoints/last.pt"))) == 1
    for seed in ("seed0", "seed1"):
        assert list((root / seed).glob("fp-*")) == [] and list((root / seed).glob("lsq-w4a4-*"))
    verdicts = [line for line in text.splitlines() if line.startswith("- w")]
    assert len(verdicts) == 2         # the ordering verdict is stated for each bit-width, either way
    assert all(("holds here" in v) != ("does NOT hold" in v) for v in verdicts)
    # Paired by seed: QGait against each baseline at each bit-width, with an interval and a verdict.
    paired = text.split("## Paired by seed", 1)[1]
    for other in ("LSQ-4", "PACT-4", "DOREFA-4", "LSQ-8"):
        qgait = "QGait-8" if other.endswith("-8") else "QGait-4"
        line = next(l for l in paired.splitlines() if l.startswith(f"- {qgait} − {other} (Rank-1)"))
        assert "95 % interval" in line and " of 2 seeds: " in line


def test_the_table1_verdict_follows_the_paired_interval():
    from qgait_lab.experiments.reproduce import _ordering_notes
    from qgait_lab.experiments.statistics import paired_difference

    rows = [{"method": "PACT-4", "bits": "w4/a4", "rank1": (68.28, 1.5)},
            {"method": "QGait-4", "bits": "w4/a4", "rank1": (68.78, 1.5)}]
    # Unpaired, 0.50 is within the spread; every seed has QGait 0.4-0.6 ahead, so paired it is not.
    pairs = [paired_difference([67.0, 68.9, 70.44], [66.6, 68.3, 69.94], "QGait-4", "PACT-4")]
    (w4,) = _ordering_notes("table1", rows, pairs)
    assert "paired by seed QGait-4 − PACT-4 is +0.50" in w4 and "which separates them" in w4
    assert w4.endswith("holds here.")
    (unpaired,) = _ordering_notes("table1", rows)
    assert unpaired.endswith("holds here, but only in the mean.")


def test_the_table1_verdict_says_when_seeds_cannot_separate_the_leaders():
    from qgait_lab.experiments.reproduce import _ordering_notes

    rows = [{"method": "FP32", "bits": "32", "rank1": 71.3},
            {"method": "PACT-4", "bits": "w4/a4", "rank1": (68.28, 0.34)},
            {"method": "QGait-4", "bits": "w4/a4", "rank1": (68.56, 1.32)},
            {"method": "LSQ-8", "bits": "w8/a8", "rank1": (72.44, 0.42)},
            {"method": "QGait-8", "bits": "w8/a8", "rank1": (71.94, 0.10)}]
    w4, w8 = _ordering_notes("table1", rows)
    assert "0.28 ahead of PACT-4" in w4 and "do not separate" in w4
    assert w4.endswith("holds here, but only in the mean.")
    assert "0.50 ahead of QGait-8" in w8 and "separate" not in w8 and "does NOT hold here" in w8


@pytest.mark.slow
def test_table4_trains_each_model_from_its_own_teacher(tiny, tmp_path):
    report = run_reproduce("table4", seeds=1, overrides=tiny)
    text = report.path.read_text()
    for model in ("GaitSet", "GaitPart", "GaitBase"):
        assert " ± " not in _row(text, f"{model} FP32")           # one shared teacher per model
        for bits in (4, 8):
            _row(text, f"{model} QGait-{bits}")
        assert text.count(f"- {model} QGait-4 − {model} FP32 (") == 3   # NM, BG and CL, paired
    root = tmp_path / "runs" / "reproduce-table4"
    for model in ("gaitset", "gaitpart", "gaitbase"):
        assert len(list((root / f"teacher-{model}").glob("fp-*/checkpoints/last.pt"))) == 1
    assert "(paper -0.67)" in text      # GaitSet-4 NM: 95.12 - 95.79, beside ours


def test_table3b_and_fig5_run(tiny):
    t3b = run_reproduce("table3b", seeds=1, overrides=tiny)
    assert all(f"| {row} |" in t3b.markdown
               for row in ("baseline (STE)", "+KD", "+IDD", "+IDD+FT", "+IDD as printed"))
    # Each variant against the STE baseline of the same seed (one seed: no interval yet).
    assert "- +IDD as printed − baseline (STE) (Rank-1):" in t3b.markdown
    assert "no interval from one seed" in t3b.markdown
    # Fig. 4's number per row, against the teacher, and QGait (+IDD+FT) paired with LSQ on it.
    head = next(line for line in t3b.markdown.splitlines() if line.startswith("| Method |"))
    assert head.endswith("| Dist. corr. with FP | Dist. change |")
    change = float(_row(t3b.markdown, "+IDD+FT").split("|")[-2].split("±")[0])
    assert 0 <= change < 1
    assert "- +IDD+FT − baseline (STE) (distance change from FP):" in t3b.markdown
    fig5 = run_reproduce("fig5", seeds=1, overrides=tiny)
    assert (fig5.path.parent / "fig5_loss_curves.png").is_file()
    assert "from scratch, k=10" in fig5.markdown


@pytest.mark.slow
def test_table1_in_two_worker_processes_leaves_the_stages_a_serial_run_reuses(tiny):
    """Two workers train each seed's units side by side; a serial run afterwards finds
    every stage finished under the same fingerprints and reports identical rows."""
    parallel = run_reproduce("table1", seeds=2, overrides=tiny, jobs=2, teacher="per-seed")
    assert "2 worker processes" in parallel.markdown
    assert " ± " in _row(parallel.markdown, "FP32")      # a teacher per seed has a spread
    serial = run_reproduce("table1", seeds=2, overrides=tiny, jobs=1, teacher="per-seed")
    strip = lambda text: [line for line in text.splitlines() if "wall time" not in line]  # noqa: E731
    assert strip(serial.markdown) == strip(parallel.markdown)
    assert serial.seconds < parallel.seconds      # nothing was trained again


@pytest.mark.parametrize("bad", [0, -1, "two", 1.5])
def test_bad_jobs_are_refused_by_name(bad):
    from qgait_lab.errors import ConfigError
    from qgait_lab.experiments.reproduce import resolve_jobs

    with pytest.raises(ConfigError, match="--jobs"):
        resolve_jobs(bad)
    assert resolve_jobs("auto", "cuda") == 1 and resolve_jobs(3) == 3


def test_a_bad_teacher_choice_is_refused_by_name():
    from qgait_lab.errors import ConfigError

    with pytest.raises(ConfigError, match="--teacher must be one of"):
        run_reproduce("table1", seeds=1, teacher="each")


@pytest.mark.slow
def test_a_single_unit_runs_in_this_process(tiny):
    """fig5 with one seed is one unit: it runs here, not in a one-thread worker."""
    report = run_reproduce("fig5", seeds=1, overrides=tiny, jobs=2)
    assert "1 worker process." in report.markdown


def test_variation_trains_seed_zero_under_each_float_order(tiny):
    report = run_reproduce("variation", seeds=2, overrides=tiny, jobs=2)
    text = report.markdown
    assert "each unit in a fresh one" in text
    orders = [line for line in text.splitlines() if line.startswith("| model | seed 0,")]
    assert len(orders) == 3                         # Rank-1, mAP and the distance change
    assert "range over float orders | std over seeds" in orders[0]
    assert _row(text, "QGait-4").count("(2 seeds)") == 1
    names = {p.name for p in (report.path.parent / "seed0").iterdir()}     # a folder per order
    assert "threads1" in names and any(n.endswith("-isaAVX2") for n in names) and len(names) >= 2
