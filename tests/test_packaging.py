"""A regular (non-editable) install, as on Colab, ships every data file the chapters read."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_wheel_ships_every_data_file(tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "src", tree / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", str(tree), "-w", str(tmp_path)], check=True)
    (wheel,) = tmp_path.glob("normlab-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    data = ROOT / "src" / "normlab" / "data"
    files = {f"normlab/{p.relative_to(data.parent).as_posix()}" for p in data.rglob("*")
             if p.is_file()}
    assert any("benchmarks/codegen/" in f for f in files)  # the compile report is among them
    assert files <= shipped, f"not in the wheel: {sorted(files - shipped)}"


def test_top_level_imports_only_the_math():
    """``import normlab`` loads the math, not the lab (experiments, figures, bench, ...)."""
    import subprocess
    import sys

    code = "import sys, normlab; print(' '.join(m for m in sys.modules if 'normlab.' in m))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.split()
    lab = ("experiments", "figures", "bench", "checks", "kernels", "nb")
    assert [m for m in loaded if m.split(".")[1] in lab] == []
