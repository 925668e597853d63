"""Config presets, the trainer, resume, and a short run of every method on a tiny SynthGait."""
import dataclasses
import json

import pytest
import torch

from qgait_lab.errors import ConfigError
from qgait_lab.training.config import available_presets, load_config
from qgait_lab.experiments.pipeline import Experiment, build_float_model
from qgait_lab.training.trainer import Trainer, TrainingDivergedError

TINY = ["data.synth={n_ids: 8, n_train: 5, frames: 10, views: ['018', '090']}",
        "data.batch_p=3", "data.batch_k=2", "data.frames=6",
        "full_precision.iterations=3", "stage1.iterations=2", "stage2.iterations=2",
        "stage2.k.every=1", "runtime.save_every=1", "runtime.log_every=1",
        "runtime.progress=false"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("train")


def tiny_config(workdir, *extra):
    return load_config("tiny-cpu", TINY + [f"data.synth_dir={workdir / 'data'}",
                                           f"runtime.runs_dir={workdir / 'runs'}", *extra])


@pytest.mark.parametrize("preset", available_presets())
def test_every_preset_parses(preset):
    cfg = load_config(preset)
    assert cfg.full_precision.optim.name == "sgd"
    assert cfg.stage1.optim.name == "adam" and cfg.stage1.optim.lr == pytest.approx(1e-4)
    assert cfg.stage2.gradient == "soft" and cfg.stage2.distill.kind == "idd"


def test_paper_presets_carry_opengait_settings():
    casia, gait3d = load_config("casia-b"), load_config("gait3d")
    assert (casia.data.batch_p, casia.data.batch_k, casia.data.frames) == (8, 16, 30)
    assert casia.full_precision.optim.milestones == [20000, 40000, 50000]
    assert (gait3d.data.batch_p, gait3d.data.batch_k, gait3d.data.frames_mode) == (32, 4, "unfixed")
    assert load_config("grew").stage1.iterations == 180000
    assert load_config("oumvlp").stage2.iterations == 2000


def test_unknown_names_get_suggestions():
    with pytest.raises(ConfigError, match="did you mean 'tiny-cpu'"):
        load_config("tiny-cpx")
    with pytest.raises(ConfigError, match="did you mean 'batch_p'"):
        load_config("tiny-cpu", ["data.batch_q=3"])
    with pytest.raises(ConfigError, match="stage2.gradient"):
        load_config("tiny-cpu", ["stage2.gradient=hard"])
    with pytest.raises(ConfigError, match="expects int"):
        load_config("tiny-cpu", ["data.frames=many"])


def test_partial_stage_override_keeps_that_stages_defaults():
    cfg = load_config("casia-b", ["stage2.iterations=7"])
    assert cfg.stage2.iterations == 7 and cfg.stage2.k.kind == "grow"


@pytest.mark.parametrize("method", ["fp", "lsq", "dorefa", "pact", "qgait"])
def test_each_method_trains_and_evaluates(workdir, method):
    cfg = tiny_config(workdir, f"method={method}")
    result = Experiment(cfg).run()
    for key in ("rank1", "mAP", "mINP", "NM", "BG", "CL"):
        assert 0.0 <= result.metrics[key] <= 100.0
    expected = {"fp": 1, "qgait": 3}.get(method, 3)   # baselines get the equal-budget stage
    assert len(result.stages) == expected
    records = [json.loads(l) for l in (result.stages[-1].run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any(r["kind"] == "eval" for r in records)
    if method == "qgait":
        ks = [r["k"] for r in records if r["kind"] == "train"]
        assert ks == [1.0, 1.2]          # GROW: +0.2 every iteration here
    assert result.bitops > 0


def test_finished_stages_are_reused_not_retrained(workdir):
    cfg = tiny_config(workdir, "method=lsq")
    first = Experiment(cfg).run()
    again = Experiment(cfg).run()
    assert [s.run_dir for s in first.stages] == [s.run_dir for s in again.stages]
    assert first.metrics == again.metrics
    # QGait shares the LSQ stage 1 folder.
    q = Experiment(tiny_config(workdir, "method=qgait")).run()
    assert q.stages[1].run_dir == first.stages[1].run_dir


def test_a_teacher_from_a_checkpoint_is_loaded_not_trained(workdir):
    """``full_precision.checkpoint``: QAT starts from that file's weights (ours or an
    OpenGait-style ``{"model": ...}`` saved from DDP), keyed by the file's content."""
    trained = Experiment(tiny_config(workdir, "method=fp")).run()
    ckpt = trained.stages[0].checkpoint
    state = torch.load(ckpt, weights_only=True)["model"]
    opengait = workdir / "GaitBase_opengait.pt"
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "iteration": 3}, opengait)

    cfg = tiny_config(workdir, "method=lsq", f"full_precision.checkpoint={opengait}")
    exp = Experiment(cfg)
    teacher, fp_stage, fingerprint = exp.full_precision(evaluate=False)
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert fp_stage.iterations == 0 and fp_stage.metrics == {}
    assert not (fp_stage.run_dir / "metrics.jsonl").exists()    # nothing was trained
    lsq = exp.run()
    assert lsq.stages[0].checkpoint == opengait and len(lsq.stages) == 3
    fp = exp.run("fp")                  # asked for, the loaded teacher is evaluated
    assert fp.metrics == trained.metrics

    # Another file is another teacher: the stages on top of it get new folders.
    torch.save({"model": {k: v + 0.01 if v.is_floating_point() else v for k, v in state.items()}},
               opengait)
    other = Experiment(cfg).run()
    assert other.stages[0].run_dir != lsq.stages[0].run_dir
    assert other.stages[1].run_dir != lsq.stages[1].run_dir


@pytest.mark.parametrize("bad, message", [("missing.pt", "does not exist"),
                                          ("notes.txt", "cannot be read as a safe checkpoint")])
def test_a_bad_teacher_checkpoint_is_named(workdir, bad, message):
    (workdir / "notes.txt").write_text("not a checkpoint")
    cfg = tiny_config(workdir, "method=lsq", f"full_precision.checkpoint={workdir / bad}")
    with pytest.raises(ConfigError, match=f"full_precision.checkpoint: .*{bad}.*{message}"):
        Experiment(cfg).run()
    with pytest.raises(ConfigError, match="stage1.checkpoint must be a file path"):
        tiny_config(workdir, "stage1.checkpoint=3")


def _train(cfg, exp, run_dir, iterations):
    stage = dataclasses.replace(cfg.full_precision, iterations=iterations)
    torch.manual_seed(0)
    model = build_float_model(cfg, exp.num_classes)
    trainer = Trainer(stage, model, run_dir, torch.device("cpu"), loss=cfg.loss, runtime=cfg.runtime,
                      name="full_precision")
    trainer.fit(exp.batches)
    return model


def test_resume_continues_exactly_where_it_stopped(workdir):
    cfg = tiny_config(workdir)
    exp = Experiment(cfg)
    straight = _train(cfg, exp, workdir / "straight", 5)
    _train(cfg, exp, workdir / "interrupted", 3)      # stops after iteration 3 ...
    resumed = _train(cfg, exp, workdir / "interrupted", 5)   # ... and continues to 5
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    lines = (workdir / "interrupted" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["iteration"] for l in lines] == [1, 2, 3, 4, 5]


def test_non_finite_loss_stops_with_iteration_and_keeps_checkpoint(workdir, monkeypatch):
    cfg = tiny_config(workdir)
    exp = Experiment(cfg)
    model = build_float_model(cfg, exp.num_classes)
    run_dir = workdir / "nan"
    trainer = Trainer(cfg.full_precision, model, run_dir, torch.device("cpu"), loss=cfg.loss,
                      runtime=cfg.runtime, name="full_precision")
    real = trainer.losses
    calls = {"n": 0}

    def poisoned(batch):
        calls["n"] += 1
        loss, parts = real(batch)
        return (loss * float("nan") if calls["n"] == 3 else loss), parts

    monkeypatch.setattr(trainer, "losses", poisoned)
    with pytest.raises(TrainingDivergedError, match="iteration 3"):
        trainer.fit(exp.batches)
    saved = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert saved["iteration"] == 2
    assert all(torch.isfinite(v).all() for v in saved["model"].values() if v.is_floating_point())


def test_narrow_strided_convolutions_keep_nchw_instead_of_crashing(tmp_path):
    """PyTorch's CPU channels_last backward corrupts the heap for strided 1x1 convolutions
    with 1-8 input channels (a 4-channel GaitBase crashed the benchmark, an 8-channel one
    make test); the trainer's layout switch leaves such models in NCHW.  Run in a child
    process: the failure mode is a crash, not an exception."""
    import subprocess
    import sys

    script = tmp_path / "narrow.py"
    script.write_text(
        "import warnings, torch\n"
        "from qgait_lab.training.config import load_config\n"
        "from qgait_lab.experiments.pipeline import build_float_model\n"
        "for channels in ('[4, 8, 8, 16]', '[8, 16, 32, 64]'):\n"
        "    cfg = load_config('tiny-cpu', [f'model.arguments.gaitbase.channels={channels}'])\n"
        "    with warnings.catch_warnings(record=True) as caught:\n"
        "        warnings.simplefilter('always')\n"
        "        model = build_float_model(cfg, 8)\n"
        "    assert any('channels_last' in str(w.message) for w in caught), channels\n"
        "    x = (torch.rand(4, 8, 32, 22) > 0.5).float()\n"
        "    for _ in range(3):\n"
        "        out = model(x)\n"
        "        (out['training_feat']['softmax']['logits'].mean()\n"
        "         + out['inference_feat']['embeddings'].pow(2).mean()).backward()\n"
        "print('survived')\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0 and "survived" in proc.stdout, proc.stderr[-2000:]
    wide = build_float_model(load_config("tiny-cpu"), 8)
    conv = next(m for m in wide.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
