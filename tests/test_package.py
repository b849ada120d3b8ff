"""The package as a user installs it: light import, a valid manifest, a working command."""

import subprocess
import sys
from importlib.metadata import entry_points

import napari_faster_rcnn


def run_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_import_loads_neither_torch_nor_qt():
    loaded = run_python(
        "import sys, napari_faster_rcnn;"
        "print(' '.join(m for m in ('torch', 'torchvision', 'lightning', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', "
        "'PySide6', 'napari', 'magicgui') if m in sys.modules))"
    )
    assert loaded.strip() == ""


def test_manifest_is_valid_and_registered():
    from npe2 import PluginManifest

    (entry,) = [e for e in entry_points(group="napari.manifest") if e.name == "napari-faster-rcnn"]
    manifest = PluginManifest.from_distribution("napari-faster-rcnn")
    assert manifest.name == "napari-faster-rcnn"
    assert {w.command for w in manifest.contributions.writers} == {"napari-faster-rcnn.write_boxes"}
    result = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-faster-rcnn"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


def test_console_script_help_and_version():
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "napari-faster-rcnn"]
    assert script.value == "napari_faster_rcnn.cli:main"
    version = subprocess.run(
        [sys.executable, "-m", "napari_faster_rcnn.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.strip() == f"napari-faster-rcnn {napari_faster_rcnn.__version__}"
    help_text = subprocess.run(
        [sys.executable, "-m", "napari_faster_rcnn.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "usage: napari-faster-rcnn" in help_text and "synthetic" in help_text


def test_cli_errors_are_one_line_without_traceback(tmp_path, capsys):
    from napari_faster_rcnn.cli import main

    assert main(["synthetic", str(tmp_path / "d"), "--images", "2"]) == 0
    assert main(["synthetic", str(tmp_path / "d"), "--images", "2"]) == 2
    err = capsys.readouterr().err
    assert "already holds files" in err and "Traceback" not in err
    assert main(["synthetic", str(tmp_path / "e"), "--images", "0"]) == 2
