"""``qgait-lab demo`` end to end on a tiny budget: the report has the table, Fig. 4's number with
QGait paired against LSQ, and the integer model run by onnxruntime."""
from qgait_lab.experiments.demo import run_demo

TINY = ["data.synth={n_ids: 8, n_train: 5, frames: 10, views: ['018', '090']}",
        "data.batch_p=3", "data.batch_k=2", "data.frames=6",
        "full_precision.iterations=2", "stage1.iterations=2", "stage2.iterations=2",
        "stage2.k.every=1", "runtime.progress=false"]


def test_the_demo_reports_the_table_the_distances_and_the_deployed_model(tmp_path, monkeypatch):
    monkeypatch.setenv("QGAIT_DATA_DIR", str(tmp_path / "data"))
    report = run_demo(overrides=TINY + [f"runtime.runs_dir={tmp_path / 'runs'}"])
    text = report.report_path.read_text()
    for label in ("GEI + 1-NN", "FP32", "LSQ-4", "QGait-4"):
        assert f"| {label} |" in report.table
    distances = text.split("## Inter-class distances against full precision")[1].split("##")[0]
    rows = [line for line in distances.splitlines() if line.startswith(("| LSQ-4 |", "| QGait-4 |"))]
    assert len(rows) == 2
    for row in rows:
        correlation, change = (float(c) for c in row.strip("|").split("|")[1:])
        assert -1 <= correlation <= 1 and change >= 0
    assert "QGait-4 − LSQ-4 (one seed, paired" in distances
    assert "integer (onnxruntime)" in text and report.deployed.path.is_file()
    assert all(p.is_file() for p in report.figures)
