"""The `map` command line: reports, files written, and user errors (one line, exit 2)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from spinnaker2_backend import MappingError, map_network, synthetic_network
from spinnaker2_backend.cli import build_parser, main


@pytest.fixture(scope="module")
def small_artifact(tmp_path_factory):
    net = synthetic_network(layer_sizes=(30, 20), input_size=10, sparsity=0.8, seed=0)
    return net.save(tmp_path_factory.mktemp("cli") / "net.npz")


def test_map_prints_the_report(small_artifact, capsys):
    assert main(["map", str(small_artifact), "--max-units-per-pe", "8"]) == 0
    out = capsys.readouterr().out
    expected = map_network(str(small_artifact), max_units_per_pe=8)
    assert f"PEs used: {expected.num_pes_used} (4 + 3 per layer)" in out
    assert "fullest PE" in out and "fits: yes" in out
    assert main(["map", str(small_artifact), "--per-pe"]) == 0
    assert "receive_" in capsys.readouterr().out


def test_map_json_synthetic_dvs(capsys):
    rc = main(["map", "--synthetic", "paper-dvs", "--weight-format", "dense", "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["weight_format"] == "dense"
    assert report["layer_sizes"] == [256, 256]
    assert report["fits"] is True
    assert report["pes_used"] == len(report["pes"]) <= 152
    assert report["fullest"]["utilisation"] <= 1.0


def test_map_writes_placement_and_heatmap(small_artifact, tmp_path, capsys):
    placement = tmp_path / "placement.csv"
    png = tmp_path / "memory.png"
    rc = main(
        ["map", str(small_artifact), "--chips", "2", "--clock-mhz", "300", "--record-steps", "7",
         "--save-placement", str(placement), "--plot", str(png)]
    )  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "2 chip(s), 304 PEs, PE clock 300 MHz" in out
    assert "recorded steps: 7" in out
    rows = list(csv.DictReader(placement.open()))
    assert rows and {"pe", "chip", "qx", "qy", "unit_start", "key_offset"} <= set(rows[0])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_file_is_one_line_and_exit_2(tmp_path, capsys):
    rc = main(["map", str(tmp_path / "missing.npz")])
    assert rc == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert "error: no artifact at" in lines[0] and "Traceback" not in captured.err


def test_network_that_does_not_fit_is_one_line_and_exit_2(small_artifact, capsys):
    argv = ["map", str(small_artifact), "--max-units-per-pe", "10", "--record-steps", "3000"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "data memory needs" in err[0] and "--record-steps <=" in err[0]
    assert main(["map", str(small_artifact), "--record-steps", "100000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "even a PE holding only unit" in err[0] and "--record-steps <=" in err[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["map"], "give a deployment artifact"),
        (["map", "x.npz", "--synthetic", "paper-lm"], "not both"),
        (["map", "--synthetic", "paper-dvs", "--pes-per-layer", "a,b"], "--pes-per-layer"),
        (["map", "--synthetic", "paper-dvs", "--plot", "heat.jpg"], ".png"),
        (["map", "--synthetic", "paper-dvs", "--chips", "0"], "--chips"),
    ],
)
def test_other_user_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_verbose_shows_the_exception(small_artifact):
    with pytest.raises(MappingError):
        main(["-v", "map", str(small_artifact), "--weight-format", "dense", "--record-steps",
              "100000"])  # fmt: skip


def test_help_reads_well(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["map", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "--synthetic paper-lm" in text
    assert (
        "--weight-format {csr,event,dense,csr-int8,event-int8,mac-int8}" in text
        and "exit status" in text
    )


def test_python_dash_m_runs_without_torch(small_artifact):
    code = (
        "import sys, runpy; sys.argv = ['spinnaker2_backend', 'map', sys.argv[1]];\n"
        "try:\n    runpy.run_module('spinnaker2_backend', run_name='__main__')\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'lava' not in sys.modules, 'lava was imported'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(small_artifact)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "fits: yes" in proc.stdout


@pytest.mark.parametrize("flag,name", [("--plot", "heat.png"), ("--save-placement", "p.csv")])
def test_map_never_replaces_an_output_file_without_overwrite(
    small_artifact, tmp_path, capsys, flag, name
):
    target = tmp_path / name
    target.write_bytes(b"the user's own file")
    assert main(["map", str(small_artifact), flag, str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{flag} {target} exists: pass --overwrite" in err[0]
    assert target.read_bytes() == b"the user's own file"
    assert main(["map", str(small_artifact), flag, str(target), "--overwrite"]) == 0
    assert target.read_bytes() != b"the user's own file"


def test_run_never_replaces_plots_without_overwrite(small_artifact, tmp_path, capsys):
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "packets.png").write_bytes(b"kept")
    (tmp_path / "profile.png").write_bytes(b"kept")
    base = ["run", str(small_artifact), "--steps", "3"]
    for extra, flag in (
        (["--plot-dir", str(plots)], "--plot-dir"),
        (["--plot", str(tmp_path / "profile.png")], "--plot"),
    ):
        assert main(base + extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and flag in err[0] and "pass --overwrite" in err[0]
    assert (plots / "packets.png").read_bytes() == b"kept"
    assert (tmp_path / "profile.png").read_bytes() == b"kept"
    assert main(base + ["--plot-dir", str(plots), "--overwrite"]) == 0
    assert (plots / "packets.png").read_bytes() != b"kept"
